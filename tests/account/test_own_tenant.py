"""The caller's own tenant (SPEC 2.9): metadata, health, usage and quotas, read through account's gRPC API with
the real api_keys and monitoring counting; a peer that does not answer is UNAVAILABLE naming it, never 0."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from aos.account.v1 import account_service_pb2 as rpc
from aos.account.v1 import account_service_pb2_grpc
from cli import stack
from services.common import server
from tests.conftest import Channels, human, settings_for, start_service


async def test_own_tenant_and_its_health(account: Any, tenant: str) -> None:
    me = human(tenant)
    own = await account.GetOwnTenant(rpc.GetOwnTenantRequest(), metadata=me, timeout=10)
    assert (own.tenant_id, own.plan, own.status, own.max_api_keys, own.max_tokens_per_month) == (
        tenant,
        "free",
        "active",
        5,
        1_000_000,
    )
    health = await account.GetOwnTenantHealth(rpc.GetOwnTenantHealthRequest(), metadata=me, timeout=10)
    assert (health.tenant_id, health.status, health.healthy, health.suspended_reason) == (tenant, "active", True, "")


async def test_usage_and_quotas_are_counted_by_their_owners(account: Any, tenant: str) -> None:
    me = human(tenant)
    usage = await account.GetOwnTenantUsage(rpc.GetOwnTenantUsageRequest(), metadata=me, timeout=10)
    assert (usage.tenant_id, usage.runs_today, usage.runs_this_month, usage.tokens_this_month, usage.api_keys) == (
        tenant,
        0,
        0,
        0,
        0,
    )
    keys = await account.GetOwnTenantQuota(rpc.GetOwnTenantQuotaRequest(name="api-keys"), metadata=me, timeout=10)
    assert (keys.limit, keys.used, keys.remaining, keys.exhausted, keys.period) == (5, 0, 5, False, "none")
    runs = await account.GetOwnTenantQuota(rpc.GetOwnTenantQuotaRequest(name=" Runs "), metadata=me, timeout=10)
    assert (runs.name, runs.limit, runs.period) == ("runs", 100, "day")
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await account.GetOwnTenantQuota(rpc.GetOwnTenantQuotaRequest(name="workers"), metadata=me, timeout=10)
    assert unknown.value.code() is grpc.StatusCode.NOT_FOUND and "api-keys" in (unknown.value.details() or "")


@pytest.fixture
async def blind_account(
    db_urls: dict[str, str], ports: dict[str, int], channels: Channels, running: dict[str, server.Service]
) -> AsyncIterator[Any]:
    """A second account on the same database whose monitoring peer is a port nothing listens on."""
    nowhere = f"127.0.0.1:{stack.free_port()}"
    own = ports | {"account": stack.free_port()}
    settings = settings_for("account", db_urls["account"], own).model_copy(update={"monitoring_addr": nowhere})
    service = await start_service("account", settings)
    yield channels.stub(account_service_pb2_grpc.AccountServiceStub, service)
    await server.stop(service, 0.5)


async def test_a_peer_down_is_unavailable_naming_it_never_zero(blind_account: Any, tenant: str) -> None:
    me = human(tenant)
    for call in (
        blind_account.GetOwnTenantUsage(rpc.GetOwnTenantUsageRequest(), metadata=me, timeout=15),
        blind_account.GetOwnTenantQuota(rpc.GetOwnTenantQuotaRequest(name="tokens"), metadata=me, timeout=15),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as down:
            await call
        assert down.value.code() is grpc.StatusCode.UNAVAILABLE and "monitoring" in (down.value.details() or "")
    # api_keys still answers: its quota does not need monitoring.
    keys = await blind_account.GetOwnTenantQuota(rpc.GetOwnTenantQuotaRequest(name="api-keys"), metadata=me, timeout=15)
    assert keys.used == 0
