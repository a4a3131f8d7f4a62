"""The SSRF guard refuses internal destinations after resolution and before any socket is opened.

No test here sends traffic anywhere but 127.0.0.1: names are resolved by an injected resolver, and the
network backend under the guard records connection attempts instead of connecting (except to loopback)."""

import ipaddress
from collections.abc import Iterable
from typing import Any

import httpcore
import pytest

from services.integrations import outbound
from tests.integrations.conftest import GOOD_KEY, FakeProvider


class Recording(httpcore.AsyncNetworkBackend):
    """Records every connection attempt; really connects only to loopback."""

    def __init__(self) -> None:
        self.attempts: list[str] = []
        self._real = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.attempts.append(host)
        assert ipaddress.ip_address(host).is_loopback, "a test must never leave loopback"
        return await self._real.connect_tcp(host, port, timeout, local_address, socket_options)

    async def sleep(self, seconds: float) -> None:
        await self._real.sleep(seconds)


def resolver(table: dict[str, list[str]]) -> outbound.Resolver:
    async def resolve(host: str, port: int) -> list[str]:
        return table[host]

    return resolve


NAMES = {
    "internal.example": ["10.0.0.1"],
    "metadata.example": ["169.254.169.254"],
    "mixed.example": ["93.184.216.34", "192.168.1.10"],
    "mapped.example": ["::ffff:10.0.0.1"],
    "local.example": ["127.0.0.1"],
}


@pytest.mark.parametrize("host", ["internal.example", "metadata.example", "mixed.example", "mapped.example"])
async def test_names_resolving_to_internal_addresses_are_refused_before_connecting(host: str) -> None:
    backend = Recording()
    guard = outbound.Guard(allow_loopback=True, resolver=resolver(NAMES))
    async with outbound.client(guard, 2.0, inner=backend) as http:
        with pytest.raises(outbound.Refused):
            await outbound.probe_http(http, f"http://{host}/v1/models", {"authorization": "Bearer x"})
    assert backend.attempts == []


async def test_loopback_only_when_allowed(provider: FakeProvider) -> None:
    port = provider.url.rsplit(":", 1)[1]
    backend = Recording()
    closed = outbound.Guard(allow_loopback=False, resolver=resolver(NAMES))
    async with outbound.client(closed, 2.0, inner=backend) as http:
        with pytest.raises(outbound.Refused):
            await outbound.probe_http(http, f"http://local.example:{port}/v1/models", {})
    assert backend.attempts == []
    opened = outbound.Guard(allow_loopback=True, resolver=resolver(NAMES))
    async with outbound.client(opened, 2.0, inner=backend) as http:
        outcome = await outbound.probe_http(
            http, f"http://local.example:{port}/v1/models", {"authorization": f"Bearer {GOOD_KEY}"}
        )
    # The socket went to the address the guard checked, while the request kept its host name.
    assert backend.attempts == ["127.0.0.1"] and outcome.health_state == "healthy"
    assert provider.seen[-1]["headers"]["host"] == f"local.example:{port}"


def test_address_classes() -> None:
    guard = outbound.Guard()
    public = ["93.184.216.34", "2606:4700::1111"]
    internal = ["10.1.2.3", "172.16.0.1", "192.168.0.1", "127.0.0.1", "::1", "169.254.1.1", "fe80::1", "0.0.0.0"]
    internal += ["100.64.0.1", "fd00:ec2::254", "224.0.0.1"]
    assert all(guard.permits(ipaddress.ip_address(a)) for a in public)
    assert not any(guard.permits(ipaddress.ip_address(a)) for a in internal)
    private = outbound.Guard(allow_private=True)
    assert private.permits(ipaddress.ip_address("10.1.2.3"))
    assert not private.permits(ipaddress.ip_address("169.254.169.254"))


def test_status_mapping() -> None:
    assert [outbound.classify(s)[0] for s in (200, 204, 401, 403, 404, 429, 500, 503)] == [
        "healthy",
        "healthy",
        "failing",
        "failing",
        "failing",
        "degraded",
        "degraded",
        "degraded",
    ]


# Issue 11: the guard let these through. Each embeds, translates to or tunnels to an IPv4 address (here
# loopback, private, metadata and a public one alike), or is Azure's wireserver.
EMBEDDED = [
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "64:ff9b::5db8:d822",  # NAT64 of a public address: still refused
    "64:ff9b:1::a00:1",  # NAT64 local-use prefix
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:5db8:d822::1",  # 6to4 of a public address
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    "::7f00:1",  # IPv4-compatible ::127.0.0.1
    "::a00:1",  # IPv4-compatible ::10.0.0.1
    "::5db8:d822",  # IPv4-compatible ::93.184.216.34
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:93.184.216.34",
    "::ffff:0:a00:1",  # IPv4-translated (SIIT) of 10.0.0.1
    "168.63.129.16",  # Azure wireserver
]


@pytest.mark.parametrize("address", EMBEDDED)
def test_ipv4_embedding_forms_and_the_wireserver_are_refused_whatever_is_allowed(address: str) -> None:
    for guard in (outbound.Guard(), outbound.Guard(allow_loopback=True, allow_private=True)):
        assert not guard.permits(ipaddress.ip_address(address)), address


def test_loopback_and_unspecified_are_not_taken_for_ipv4_compatible() -> None:
    assert outbound.Guard(allow_loopback=True).permits(ipaddress.ip_address("::1"))
    assert not outbound.Guard(allow_loopback=True, allow_private=True).permits(ipaddress.ip_address("::"))


@pytest.mark.parametrize("bad", ["64:ff9b::a00:1", "2002:a00:1::1", "::ffff:10.0.0.1", "168.63.129.16", "10.0.0.1"])
async def test_one_refused_address_refuses_the_whole_name(bad: str) -> None:
    """Every resolved address is checked, whatever its position: a name cannot pair a public address with
    an internal one and hope the client picks the second."""
    for addresses in (["93.184.216.34", bad], [bad, "93.184.216.34"], ["2606:4700::1111", bad, "1.1.1.1"]):
        guard = outbound.Guard(resolver=resolver({"two.example": addresses}))
        with pytest.raises(outbound.Refused):
            await guard.resolve("two.example", 443)
    with pytest.raises(outbound.Refused):  # and as a literal in the URL
        await outbound.Guard().resolve(f"[{bad}]" if ":" in bad else bad, 443)


async def test_public_names_resolve_to_their_first_address() -> None:
    guard = outbound.Guard(resolver=resolver({"ok.example": ["93.184.216.34", "2606:4700::1111"]}))
    assert await guard.resolve("ok.example", 443) == "93.184.216.34"
