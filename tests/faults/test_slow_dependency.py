"""A slow dependency costs one deadline, never a hang: onboarding in front of the real account, api_keys
and integrations, each behind a proxy that can stall (bytes accepted, nothing forwarded). Every call that
needs the stalled source answers UNAVAILABLE naming it, within the per-call deadline."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from sqlalchemy import text

from aos.account.v1 import account_service_pb2 as account_rpc
from aos.onboarding.v1 import onboarding_service_pb2 as rpc
from aos.onboarding.v1 import onboarding_service_pb2_grpc
from cli import stack
from services.common import db, server
from services.common.settings import async_url
from services.onboarding.settings import Settings
from tests.conftest import human, service, start_service, tls_channel, tls_settings

DEADLINE = 1.0  # onboarding's peer_timeout_seconds here
SLACK = 0.8  # scheduling on a loaded 2-core machine; a hang or a sum of deadlines is far above


class StallProxy:
    """A TCP proxy to a real service; while stalled it keeps reading but forwards nothing."""

    def __init__(self, upstream: int) -> None:
        self.upstream, self.flowing = upstream, asyncio.Event()
        self.flowing.set()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await reader.read(65536):
                await self.flowing.wait()
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        for task in (self._pipe(reader, up_writer), self._pipe(up_reader, writer)):
            made = asyncio.create_task(task)
            self._tasks.add(made)
            made.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            self._server.close()


@pytest.fixture(scope="module")
async def slow(pg_base: str, running: dict[str, server.Service]) -> AsyncIterator[tuple[Any, dict[str, StallProxy]]]:
    """An onboarding of its own (own database) whose three sources go through stall proxies."""
    urls = await asyncio.to_thread(stack.prepare_databases, pg_base, f"t{os.getpid()}_slow_", True)
    proxies = {svc: StallProxy(running[svc].port) for svc in ("account", "api_keys", "integrations")}
    for proxy in proxies.values():
        await proxy.start()
    settings = Settings(
        database_url=urls["onboarding"],  # type: ignore[arg-type]
        grpc_port=stack.free_port(),
        peer_timeout_seconds=DEADLINE,
        consumer_backoff_seconds=0.1,
        consumer_max_backoff_seconds=0.5,
        **{f"{svc}_addr": f"127.0.0.1:{p.port}" for svc, p in proxies.items()},
        **tls_settings("onboarding"),
    )
    onb = await start_service("onboarding", settings)
    engine = db.create_engine(async_url(urls["onboarding"]), pool_size=2)
    try:
        # A channel of its own: this onboarding lives only as long as this module's tests.
        # Through the gateway's certificate (SdkHandshake) and account's (EvaluateActivation is for the
        # services that report evidence).
        address = f"127.0.0.1:{settings.grpc_port}"
        async with tls_channel(address) as channel, tls_channel(address, "account") as as_account:
            stubs = (onboarding_service_pb2_grpc.OnboardingServiceStub(c) for c in (channel, as_account))
            yield (*stubs, engine), proxies
    finally:
        for proxy in proxies.values():
            proxy.flowing.set()
        await server.stop(onb, 0.5)
        for proxy in proxies.values():
            await proxy.stop()
        await engine.dispose()


async def timed_failure(call: Any) -> tuple[grpc.aio.AioRpcError, float]:
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value, time.monotonic() - started


@pytest.mark.parametrize("source", ["account", "api_keys", "integrations"])
async def test_a_stalled_evidence_source_costs_one_deadline_and_is_named(
    slow: tuple[Any, dict[str, StallProxy]], account: Any, source: str
) -> None:
    (_, stub, _), proxies = slow
    tenant = await account.CreateTenant(account_rpc.CreateTenantRequest(name="Slow"), metadata=human(), timeout=5)
    evaluate = rpc.EvaluateActivationRequest(tenant_id=tenant.tenant.tenant_id)
    assert not (await stub.EvaluateActivation(evaluate, metadata=service("account"), timeout=5)).passed
    proxies[source].flowing.clear()
    try:
        for _ in range(2):  # a stall is not cached into a verdict, nor does a second call queue behind the first
            err, elapsed = await timed_failure(
                stub.EvaluateActivation(evaluate, metadata=service("account"), timeout=10)
            )
            assert err.code() is grpc.StatusCode.UNAVAILABLE, err
            assert source in (err.details() or ""), err.details()
            assert elapsed < DEADLINE + SLACK, elapsed
    finally:
        proxies[source].flowing.set()
    assert not (
        await stub.EvaluateActivation(evaluate, metadata=service("account"), timeout=5)
    ).passed  # back by itself


async def test_a_stalled_account_bounds_the_sdk_handshake(
    slow: tuple[Any, dict[str, StallProxy]], account: Any
) -> None:
    (stub, _, engine), proxies = slow
    tenant = (
        await account.CreateTenant(account_rpc.CreateTenantRequest(name="Shake"), metadata=human(), timeout=5)
    ).tenant.tenant_id
    async with engine.begin() as conn:  # at API_KEY_CREATED, as if its first key had been created
        await conn.execute(
            text(
                "INSERT INTO onboarding_state (tenant_id, state, tenant_created_at) VALUES (:t, 2, now()) "
                "ON CONFLICT (tenant_id) DO UPDATE SET state = 2"
            ),
            {"t": tenant},
        )
    key = (("x-aos-actor-type", "api_key"), ("x-aos-actor-id", "k1"), ("x-aos-tenant-id", tenant))
    key += (("x-aos-scopes", "run:*,read:*"),)
    hello = rpc.SdkHandshakeRequest(sdk_version="1.0.0", sdk_language="python")
    proxies["account"].flowing.clear()
    try:
        err, elapsed = await timed_failure(stub.SdkHandshake(hello, metadata=key, timeout=10))
        assert err.code() is grpc.StatusCode.UNAVAILABLE and "account" in (err.details() or ""), err
        assert elapsed < 3 * DEADLINE + SLACK, elapsed  # recording the attestation is a write: 3 deadlines
    finally:
        proxies["account"].flowing.set()
    reply = await stub.SdkHandshake(hello, metadata=key, timeout=5)
    assert reply.onboarding_state == "SDK_CONNECTED"
