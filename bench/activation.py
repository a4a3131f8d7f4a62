"""Scenario 3: activation evaluation (what finalize runs: three evidence RPCs at once) vs the slowest single
evidence RPC, at concurrency 1; once on loopback, once with network latency added in front of each source."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import grpc

from aos.account.v1 import account_service_pb2 as account_rpc
from aos.account.v1 import account_service_pb2_grpc
from aos.api_keys.v1 import api_keys_service_pb2 as keys_rpc
from aos.api_keys.v1 import api_keys_service_pb2_grpc
from aos.integrations.v1 import integrations_service_pb2 as integrations_rpc
from aos.integrations.v1 import integrations_service_pb2_grpc
from aos.onboarding.v1 import onboarding_service_pb2 as onboarding_rpc
from aos.onboarding.v1 import onboarding_service_pb2_grpc
from bench.common import Call, Running, measure, row
from cli import stack
from services.common.principal import service_metadata

LATENCY = 0.010  # the second run's added one-way delay between onboarding and each source


class DelayProxy:
    """A loopback TCP proxy that delivers every chunk `delay` seconds after it arrived (order kept)."""

    def __init__(self, upstream: int, delay: float) -> None:
        self.upstream, self.delay, self.port = upstream, delay, 0

    async def start(self) -> None:
        server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        while data := await reader.read(65536):
            loop.call_later(self.delay, writer.write, data)
        loop.call_later(self.delay, writer.close)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.CancelledError, OSError):  # the bench ends with connections open
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))


async def run(running: Running, tenant: str, onboarding_url: str, seconds: float, rounds: int) -> None:
    ports = running.ports
    await compare(tenant, ports, ports["onboarding"], "", running.channel, seconds, rounds)
    # The same with LATENCY of network between onboarding and each source (a delaying proxy in front of
    # each, for a second onboarding process): concurrent asks cost one latency, not three.
    proxies = {svc: DelayProxy(ports[svc], LATENCY) for svc in ("account", "api_keys", "integrations")}
    for proxy in proxies.values():
        await proxy.start()
    proxied = {svc: proxy.port for svc, proxy in proxies.items()}
    peers = {svc: f"127.0.0.1:{p}" for svc, p in proxied.items()}
    second = running.spawn("onboarding", onboarding_url, stack.free_port(), peers, "onboarding-2.log")
    await running.ready()
    await compare(tenant, proxied, second, f", +{LATENCY * 1000:g} ms net", running.channel, seconds, rounds)


def evidence(tenant: str, ports: dict[str, int], channel: Callable[[int, str], grpc.aio.Channel]) -> dict[str, Call]:
    """Each evidence RPC EvaluateActivation makes, asked from here over the same path (as onboarding)."""
    md = service_metadata("onboarding", tenant)
    account = account_service_pb2_grpc.AccountServiceStub(channel(ports["account"], "onboarding"))
    keys_stub = api_keys_service_pb2_grpc.ApiKeysServiceStub(channel(ports["api_keys"], "onboarding"))
    integrations = integrations_service_pb2_grpc.IntegrationsServiceStub(channel(ports["integrations"], "onboarding"))
    return {
        "account": lambda i: account.GetActivationEvidence(
            account_rpc.GetActivationEvidenceRequest(tenant_id=tenant), metadata=md, timeout=10
        ),
        "api_keys": lambda i: keys_stub.GetActivationEvidence(
            keys_rpc.GetActivationEvidenceRequest(tenant_id=tenant), metadata=md, timeout=10
        ),
        "integrations": lambda i: integrations.GetActivationEvidence(
            integrations_rpc.GetActivationEvidenceRequest(tenant_id=tenant), metadata=md, timeout=10
        ),
    }


async def compare(
    tenant: str,
    ports: dict[str, int],
    onboarding_port: int,
    suffix: str,
    channel: Callable[[int, str], grpc.aio.Channel],
    seconds: float,
    rounds: int,
) -> None:
    """EvaluateActivation (asked as account, a caller its rule names) vs each evidence RPC it makes, in
    sequence and at once."""
    md = service_metadata("account", tenant)
    onboarding = onboarding_service_pb2_grpc.OnboardingServiceStub(channel(onboarding_port, "account"))
    sources = evidence(tenant, ports, channel)
    evaluate = onboarding_rpc.EvaluateActivationRequest(tenant_id=tenant)

    async def in_sequence(i: int) -> None:
        for source in sources.values():
            await source(i)

    async def at_once(i: int) -> None:
        await asyncio.gather(*(source(i) for source in sources.values()))

    calls = {
        **sources,
        "sequence": in_sequence,
        "at once": at_once,
        "evaluate": lambda i: onboarding.EvaluateActivation(evaluate, metadata=md, timeout=10),
    }
    best = await measure(calls, 1, seconds, rounds)
    slowest = max(sources, key=lambda s: best[s][1])
    for source in sources:
        row(
            f"3 evidence {source}{suffix}{' (slowest)' if source == slowest else ''}",
            1,
            best[source],
            None if source == slowest else best[source][1] / best[slowest][1],
        )
    for label, name in (("in sequence", "sequence"), ("at once", "at once")):
        row(f"3 the 3 evidence RPCs {label}{suffix}", 1, best[name], best[name][1] / best[slowest][1])
    row(f"3 EvaluateActivation{suffix}", 1, best["evaluate"], best["evaluate"][1] / best[slowest][1], "<= 1.3")
