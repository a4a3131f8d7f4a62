"""GET /metrics of a real in-process service: RPCs by method and code, latency, errors by reason, pool use,
outbox lag, and the api_keys verify cache's hits and misses."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from aos.account.v1 import account_service_pb2 as acc
from aos.account.v1 import account_service_pb2_grpc
from aos.api_keys.v1 import api_keys_service_pb2 as rpc
from aos.api_keys.v1 import api_keys_service_pb2_grpc
from cli import stack
from services.api_keys import server as api_keys_server
from services.api_keys.settings import Settings as ApiKeysSettings
from services.common import db, server
from tests.conftest import eventually, human, service, settings_for, start_service, tls_channel, tls_settings

ACCOUNT = "aos.account.v1.AccountService"


async def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """sample name and sorted labels → value, from the service's real /metrics endpoint."""
    async with httpx.AsyncClient(timeout=5) as client:
        reply = await client.get(f"http://127.0.0.1:{port}/metrics")
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(reply.text)
        for s in family.samples
    }


async def settled(port: int) -> dict[Any, float]:
    """A scrape once no event waits for an open transaction (a background write may briefly hold one back)."""
    samples: dict[Any, float] = await eventually(
        lambda: scrape(port),
        until=lambda samples: value(samples, "aos_outbox_pending_events") == 0,
        within=5.0,
        every=0.1,
        what="no event held back with no open transaction",
    )
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


@pytest.fixture
async def account_with_metrics(
    db_urls: dict[str, str], ports: dict[str, int], running: dict[str, server.Service]
) -> AsyncIterator[server.Service]:
    """A second account replica on the shared test database, this one serving /metrics."""
    base = settings_for("account", db_urls["account"], ports | {"account": stack.free_port()})
    svc = await start_service("account", base.model_copy(update={"metrics_port": stack.free_port()}))
    yield svc
    await server.stop(svc, 1.0)


async def test_rpcs_are_counted_by_method_and_code_and_timed(account_with_metrics: server.Service) -> None:
    svc = account_with_metrics
    # A channel of its own to each replica of these tests: the replica lives only in its test.
    async with tls_channel(f"127.0.0.1:{svc.port}") as channel:
        stub = account_service_pb2_grpc.AccountServiceStub(channel)
        for _ in range(2):
            await stub.CreateTenant(acc.CreateTenantRequest(name="Metered"), metadata=human(), timeout=10)
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await stub.ListProjects(acc.ListProjectsRequest(), timeout=5)  # no caller metadata
        assert denied.value.code() == grpc.StatusCode.UNAUTHENTICATED
    samples = await scrape(svc.metrics_port)

    create = {"grpc_service": ACCOUNT, "grpc_method": "CreateTenant"}
    assert value(samples, "grpc_server_handled_total", grpc_code="OK", **create) == 2
    assert value(samples, "grpc_server_handling_seconds_count", **create) == 2
    assert value(samples, "grpc_server_handling_seconds_bucket", le="+Inf", **create) == 2
    assert 0 < (value(samples, "grpc_server_handling_seconds_sum", **create) or 0) < 20
    listing = {"grpc_service": ACCOUNT, "grpc_method": "ListProjects", "grpc_code": "UNAUTHENTICATED"}
    assert value(samples, "grpc_server_handled_total", **listing) == 1
    assert value(samples, "aos_rpc_errors_total", grpc_code="UNAUTHENTICATED", reason="MISSING_AUTH") == 1

    assert value(samples, "aos_db_pool_size") == 10
    assert value(samples, "aos_db_pool_checked_out") is not None
    assert value(samples, "aos_outbox_lag_seconds") is not None
    assert value(await settled(svc.metrics_port), "aos_outbox_lag_seconds") == 0


async def test_metrics_endpoint_closes_with_the_service(
    db_urls: dict[str, str], ports: dict[str, int], running: dict[str, server.Service]
) -> None:
    base = settings_for("account", db_urls["account"], ports | {"account": stack.free_port()})
    svc = await start_service("account", base.model_copy(update={"metrics_port": stack.free_port()}))
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            assert (await client.get(f"http://127.0.0.1:{svc.metrics_port}/metrics")).status_code == 200
    finally:
        await server.stop(svc, 1.0)
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", svc.metrics_port), timeout=1):
        pass


async def test_a_held_back_event_shows_as_outbox_lag(
    account_with_metrics: server.Service, engines: dict[str, Any]
) -> None:
    """An open transaction that began before an event's commit keeps readers from it: that is the lag."""
    async with engines["account"].connect() as blocker:
        await blocker.exec_driver_sql("SELECT pg_current_xact_id()")  # holds the snapshot xmin back
        async with tls_channel(f"127.0.0.1:{account_with_metrics.port}") as channel:
            stub = account_service_pb2_grpc.AccountServiceStub(channel)
            await stub.CreateTenant(acc.CreateTenantRequest(name="Held back"), metadata=human(), timeout=10)
        await asyncio.sleep(0.05)  # the held-back event ages: its lag is above 0
        samples = await scrape(account_with_metrics.metrics_port)
        assert (value(samples, "aos_outbox_pending_events") or 0) >= 1
        assert (value(samples, "aos_outbox_lag_seconds") or 0) > 0
        await blocker.rollback()
    assert value(await settled(account_with_metrics.metrics_port), "aos_outbox_lag_seconds") == 0


async def test_verify_cache_hits_and_misses_are_counted(
    db_urls: dict[str, str], ports: dict[str, int], running: dict[str, server.Service], tenant: str
) -> None:
    settings = ApiKeysSettings(
        database_url=db_urls["api_keys"],
        grpc_port=stack.free_port(),
        metrics_port=stack.free_port(),
        account_addr=f"127.0.0.1:{ports['account']}",
        **tls_settings("api_keys"),
    )
    built = api_keys_server.build(settings, db.create_engine(settings.database_url.get_secret_value(), pool_size=2))
    await server.start(built, "127.0.0.1", settings.grpc_port, health_interval=0.2)
    try:
        await asyncio.wait_for(built.verifier.listening.wait(), 10)  # the cache is used only while listening
        address = f"127.0.0.1:{settings.grpc_port}"
        async with tls_channel(address) as channel, tls_channel(address, "onboarding") as gate:
            stub, verifier = (api_keys_service_pb2_grpc.ApiKeysServiceStub(c) for c in (channel, gate))
            made = await stub.CreateApiKey(rpc.CreateApiKeyRequest(name="metered"), metadata=human(tenant), timeout=10)
            before = await scrape(built.metrics_port)
            assert value(before, "aos_api_keys_verify_cache_hits_total") == 0
            for _ in range(3):
                verdict = await verifier.VerifyApiKey(
                    rpc.VerifyApiKeyRequest(secret=made.key), metadata=service(), timeout=5
                )
                assert verdict.code == rpc.VERIFY_CODE_VALID
        samples = await scrape(built.metrics_port)
    finally:
        await server.stop(built, 1.0)
    assert value(samples, "aos_api_keys_verify_cache_misses_total") == 1
    assert value(samples, "aos_api_keys_verify_cache_hits_total") == 2
    assert value(samples, "aos_api_keys_verify_cache_hit_ratio") == pytest.approx(2 / 3)
    verify = {"grpc_service": "aos.api_keys.v1.ApiKeysService", "grpc_method": "VerifyApiKey", "grpc_code": "OK"}
    assert value(samples, "grpc_server_handled_total", **verify) == 3
