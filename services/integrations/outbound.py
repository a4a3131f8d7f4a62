"""Outbound checks with an SSRF guard: provider tests and connector validation.

The guard sits in the HTTP client's network backend, so it sees the address the socket is about to open
(after DNS resolution, on every connection, redirects included) and the socket is opened to the very
address it checked — a second resolution cannot swap in an internal one.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpcore
import httpx
from sqlalchemy.engine import URL

Resolver = Callable[[str, int], Awaitable[list[str]]]
IP = ipaddress.IPv4Address | ipaddress.IPv6Address
# Cloud metadata endpoints (AWS, GCP, Azure's IMDS; Azure's wireserver): refused even where private
# networks are allowed.
METADATA = {ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "168.63.129.16")}
# IPv6 forms that carry, translate to or tunnel to an IPv4 address: the host the packets reach is not the
# address the guard sees, so these are refused whatever they embed.
EMBEDDING = tuple(
    ipaddress.ip_network(n)
    for n in (
        "64:ff9b::/96",  # NAT64, well-known prefix
        "64:ff9b:1::/48",  # NAT64, local use
        "2002::/16",  # 6to4
        "2001::/32",  # Teredo
        "::ffff:0:0/96",  # IPv4-mapped
        "::ffff:0:0:0/96",  # IPv4-translated (SIIT)
    )
)
# IPv4-compatible (::a.b.c.d, deprecated): ::/96 apart from :: (unspecified) and ::1 (loopback).
COMPATIBLE = ipaddress.ip_network("::/96")


class Refused(Exception):
    """The destination is not allowed for outbound checks."""


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True)
class Guard:
    allow_loopback: bool = False
    allow_private: bool = False
    resolver: Resolver = system_resolver

    def permits(self, address: IP) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and _embeds_ipv4(address):
            return False
        if address in METADATA or address.is_link_local or address.is_multicast or address.is_unspecified:
            return False
        if address.is_loopback:
            return self.allow_loopback
        return address.is_global or self.allow_private

    async def resolve(self, host: str, port: int) -> str:
        """The address to connect to; Refused when the name resolves to any address the guard forbids."""
        try:
            addresses = [ipaddress.ip_address(host.strip("[]"))]
        except ValueError:
            try:
                addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in await self.resolver(host, port)]
            except OSError as exc:
                raise Refused(f"cannot resolve {host}") from exc
        if not addresses:
            raise Refused(f"cannot resolve {host}")
        for address in addresses:
            if not self.permits(address):
                raise Refused(f"{host} resolves to a non-public address")
        return str(addresses[0])


def _embeds_ipv4(address: ipaddress.IPv6Address) -> bool:
    if any(address in network for network in EMBEDDING):
        return True
    return address in COMPATIBLE and int(address) > 1


class GuardedBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, guard: Guard, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._guard, self._inner = guard, inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        address = await self._guard.resolve(host, port)
        return await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise Refused("unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def client(guard: Guard, timeout: float, inner: httpcore.AsyncNetworkBackend | None = None) -> httpx.AsyncClient:
    """An httpx client whose every connection passes the guard; no proxies from the environment."""
    transport = httpx.AsyncHTTPTransport(trust_env=False)
    # httpx (pinned 0.28.1) has no public hook for the network backend; its pool is this one attribute.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(), network_backend=GuardedBackend(guard, inner)
    )
    return httpx.AsyncClient(transport=transport, timeout=timeout, trust_env=False, follow_redirects=False)


@dataclass(frozen=True)
class Outcome:
    health_state: str  # healthy, degraded or failing
    message: str
    latency_ms: int

    @property
    def passed(self) -> bool:
        return self.health_state == "healthy"


def classify(status: int) -> tuple[str, str]:
    if 200 <= status < 300:
        return "healthy", f"validated (HTTP {status})"
    if status in (401, 403):
        return "failing", f"credential rejected (HTTP {status})"
    if status == 429 or status >= 500:
        return "degraded", f"endpoint unavailable (HTTP {status})"
    return "failing", f"unexpected answer (HTTP {status})"


async def probe_http(http: httpx.AsyncClient, url: str, headers: dict[str, str]) -> Outcome:
    """One GET; Refused propagates (the caller turns it into a refusal, not a health state)."""
    started, deadline = time.monotonic(), http.timeout.read or 5.0
    try:
        # One deadline for the whole exchange: httpx's timeouts are per phase and per read, so a server
        # trickling bytes could otherwise hold the check open.
        async with asyncio.timeout(deadline):
            reply = await http.get(url, headers=headers)
        state, message = classify(reply.status_code)
    except (httpx.TimeoutException, TimeoutError):
        state, message = "degraded", f"timed out after {deadline}s"
    except httpx.HTTPError as exc:
        state, message = "degraded", f"unreachable ({type(exc).__name__})"
    return Outcome(state, message, round((time.monotonic() - started) * 1000))


# Provider → (default base URL, path of its models-list call). base_url from config wins.
PROVIDERS = {
    "openai": ("https://api.openai.com/v1", "/models"),
    "anthropic": ("https://api.anthropic.com/v1", "/models"),
    "azure_openai": ("", "/openai/models?api-version=2024-10-21"),
    "bedrock": ("https://bedrock.{region}.amazonaws.com", "/foundation-models"),
    "custom": ("", "/models"),
}


def provider_request(provider: str, config: dict[str, Any], credential: str) -> tuple[str, dict[str, str]] | None:
    """The provider's standard models-list call; None when the provider has no default endpoint and
    config.base_url is missing."""
    default, path = PROVIDERS[provider]
    base = str(config.get("base_url") or default.format(region=config.get("region") or "us-east-1"))
    if not base:
        return None
    if provider == "anthropic":
        headers = {"x-api-key": credential, "anthropic-version": "2023-06-01"}
    elif provider == "azure_openai":
        headers = {"api-key": credential}
    else:
        headers = {"authorization": f"Bearer {credential}"}
    return base.rstrip("/") + path, {k: v for k, v in headers.items() if credential or k == "anthropic-version"}


async def probe_sql(url: URL, guard: Guard, timeout: float) -> Outcome:
    """Connects to a postgresql:// URL (policy.dsn) and runs SELECT 1; the host passes the same guard (unix
    sockets count as loopback)."""
    started = time.monotonic()
    socket_dir = url.query.get("host")
    kwargs: dict[str, Any] = {
        "user": url.username,
        "password": url.password,
        "database": url.database,
        "port": url.port or 5432,
    }
    if url.host:
        kwargs["host"] = await guard.resolve(url.host, url.port or 5432)
    elif socket_dir and guard.allow_loopback:
        kwargs["host"] = socket_dir if isinstance(socket_dir, str) else socket_dir[0]
    else:
        raise Refused("a local socket is not an allowed destination")
    try:
        connection = await asyncpg.connect(timeout=timeout, **kwargs)
        try:
            await connection.fetchval("SELECT 1", timeout=timeout)
        finally:
            await connection.close(timeout=timeout)
        state, message = "healthy", "connected; SELECT 1 succeeded"
    except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError):
        state, message = "failing", "credential rejected by the database"
    except (TimeoutError, OSError, asyncpg.CannotConnectNowError):
        state, message = "degraded", "database unreachable"
    except asyncpg.PostgresError as exc:
        state, message = "failing", f"database refused the check ({type(exc).__name__})"
    return Outcome(state, message, round((time.monotonic() - started) * 1000))
