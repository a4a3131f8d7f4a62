"""Telemetry ingest and GetIntegrationUsage against the real services: monitoring asks the real integrations
which integrations a tenant owns (MONITORING.md section 7, decision 12; M1, M3-M6)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf import timestamp_pb2
from sqlalchemy.ext.asyncio import AsyncEngine

from aos.monitoring.v1 import monitoring_pb2 as pb
from aos.monitoring.v1 import monitoring_service_pb2 as rpc
from aos.monitoring.v1 import monitoring_service_pb2_grpc as grpc_api
from tests.conftest import service
from tests.monitoring.conftest import event_types, key, new_integration, sql

TELEMETRY = "telemetry:write,integrations:read"


@pytest.fixture
async def owned(integrations: Any, tenant: str) -> tuple[str, str]:
    """Two integrations of the tenant, I and J."""
    return await new_integration(integrations, tenant, "I"), await new_integration(integrations, tenant, "J")


def record(call_id: str, integration: str, **fields: Any) -> pb.UsageRecordInput:
    values = {"provider": "openai", "model": "gpt-4o", "tokens_in": 100, "tokens_out": 50, "cost_cents": 5, **fields}
    return pb.UsageRecordInput(call_id=call_id, integration_id=integration, **values)


def writer(tenant: str, integration: str = "") -> Any:
    metadata = key(tenant, scopes=TELEMETRY, key_id="key-t")
    return (*metadata, ("x-aos-integration-id", integration)) if integration else metadata


async def ingest(telemetry: Any, tenant: str, rec: pb.UsageRecordInput, integration: str = "") -> Any:
    return await telemetry.IngestUsage(rpc.IngestUsageRequest(record=rec), metadata=writer(tenant, integration))


async def batch(telemetry: Any, tenant: str, *records: pb.UsageRecordInput, integration: str = "") -> Any:
    request = rpc.IngestUsageBatchRequest(records=records)
    return await telemetry.IngestUsageBatch(request, metadata=writer(tenant, integration))


async def test_a_call_id_is_stored_once_per_tenant(
    telemetry: Any, integrations: Any, tenant: str, owned: tuple[str, str], engines: Any
) -> None:
    other = f"other-{tenant}"
    await ingest(telemetry, other, record("c1", await new_integration(integrations, other)))  # M1: B used c1
    i, _ = owned
    first = await ingest(telemetry, tenant, record("c1", i), integration=i)
    assert (first.status, first.call_id, first.success, first.data.status) == ("accepted", "c1", True, "accepted")
    again = await ingest(telemetry, tenant, record("c1", i), integration=i)
    assert (again.status, again.id, again.data.id) == ("duplicate", first.id, first.id)
    assert again.meta.request_id and again.meta.HasField("timestamp")
    rows = await sql(engines, "SELECT id, key_id FROM usage_record WHERE tenant_id = :t", t=tenant)
    assert [(str(r.id), r.key_id) for r in rows] == [(first.id, "key-t")]
    assert await event_types(engines, tenant) == ["usage.ingested"]


async def test_racing_duplicates_store_one_record(
    telemetry: Any, tenant: str, owned: tuple[str, str], engines: Any
) -> None:
    replies = await asyncio.gather(*(ingest(telemetry, tenant, record("same", owned[0])) for _ in range(8)))
    assert sorted(r.status for r in replies) == ["accepted"] + ["duplicate"] * 7
    assert len({r.id for r in replies}) == 1
    (daily,) = await sql(
        engines, "SELECT records, tokens_in, cost_cents FROM usage_daily WHERE tenant_id = :t", t=tenant
    )
    assert tuple(daily) == (1, 100, 5)


async def test_concurrent_batches_sharing_call_ids_store_each_once(
    telemetry: Any, tenant: str, owned: tuple[str, str], engines: Any
) -> None:
    ids = [f"c{i:03}" for i in range(100)]
    orders = [ids, ids[::-1], ids[50:] + ids[:50], ids[::2] + ids[1::2]]
    replies = await asyncio.gather(
        *(batch(telemetry, tenant, *(record(c, owned[0]) for c in order)) for order in orders * 2)
    )
    assert sum(r.accepted for r in replies) == 100 and sum(r.duplicates for r in replies) == 100 * 7
    (daily,) = await sql(engines, "SELECT records FROM usage_daily WHERE tenant_id = :t", t=tenant)
    assert daily.records == 100


async def test_a_batch_counts_accepted_duplicates_and_errors(
    telemetry: Any, integrations: Any, tenant: str, owned: tuple[str, str], engines: Any
) -> None:
    i, j = owned
    foreign = await new_integration(integrations, f"other-{tenant}")
    await ingest(telemetry, tenant, record("stored", i))
    reply = await batch(  # M4, with the integration key's integration I: the record naming J is refused
        telemetry, tenant, record("c2", i), record("stored", i), record("c3", j), record("c2", i), integration=i
    )
    assert (reply.accepted, reply.duplicates, reply.errors, reply.total) == (1, 2, 1, 4)
    assert [(e.index, e.call_id, e.reason) for e in reply.error_details] == [(2, "c3", "INTEGRATION_NOT_FOUND")]
    keyed = await batch(  # X-AOS-Key: each record names its integration; another tenant's is unknown
        telemetry, tenant, record("c4", i), record("c5", j), record("c6", foreign), record("c7", "no-such")
    )
    assert (keyed.accepted, keyed.errors) == (2, 2)
    assert [(e.index, e.call_id) for e in keyed.error_details] == [(2, "c6"), (3, "c7")]
    daily = await sql(
        engines, "SELECT integration_id, records FROM usage_daily WHERE tenant_id = :t ORDER BY 2 DESC", t=tenant
    )
    assert [tuple(r) for r in daily] == [(i, 3), (j, 1)]
    assert await event_types(engines, tenant) == ["usage.ingested"] * 3
    refused = "SELECT 1 FROM usage_record WHERE tenant_id IN (:t, :o) AND call_id IN ('c3', 'c6', 'c7')"
    assert await sql(engines, refused, t=tenant, o=f"other-{tenant}") == []


async def test_a_foreign_integration_is_refused_whatever_the_credential(
    telemetry: Any, integrations: Any, tenant: str, owned: tuple[str, str], engines: Any
) -> None:
    """M3 and M34: another tenant's integration, named by the record or by the integration key, answers like
    an unknown one; a deleted integration is no longer owned."""
    foreign = await new_integration(integrations, f"other-{tenant}")
    for rec, integration in [
        (record("c1", foreign), ""),
        (record("c1", foreign), foreign),
        (record("c1", ""), foreign),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await ingest(telemetry, tenant, rec, integration=integration)
        assert missing.value.code() is grpc.StatusCode.NOT_FOUND, (rec, integration)
    assert await event_types(engines, tenant) == []


@pytest.mark.parametrize(
    ("records", "field"),
    [
        ([], "records"),  # M5
        ([record(f"c{i}", "I") for i in range(101)], "records"),
        ([record("ok", "I"), record("bad", "I", tokens_in=-1)], "records[1].tokens_in"),
        ([record("x" * 101, "I")], "records[0].call_id"),
        ([record("ok", "I", policy_result="maybe")], "records[0].policy_result"),
        ([record("ok", "I", provider="")], "records[0].provider"),
        ([record("ok", "")], "records[0].integration_id"),
        ([record("ok", "I", latency_ms=-5)], "records[0].latency_ms"),
        ([record("ok", "I", metadata={"k": "\x00"})], "records[0].metadata"),
        ([record("nul\x00", "I")], "records[0].call_id"),
    ],
)
async def test_one_bad_field_fails_the_batch(
    telemetry: Any, tenant: str, engines: dict[str, AsyncEngine], records: list[Any], field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await batch(telemetry, tenant, *records)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT and refused.value.details().startswith(field)
    assert await sql(engines, "SELECT 1 FROM usage_record WHERE tenant_id = :t", t=tenant) == []
    assert await event_types(engines, tenant) == []


async def test_a_single_record_of_another_integration_is_unknown(
    telemetry: Any, tenant: str, owned: tuple[str, str], engines: Any
) -> None:
    i, j = owned
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await ingest(telemetry, tenant, record("c1", j), integration=i)  # M3: the key names I, the record J
    assert missing.value.code() is grpc.StatusCode.NOT_FOUND
    assert await event_types(engines, tenant) == []


async def test_ingest_needs_telemetry_write(telemetry: Any, tenant: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:  # M6: a default key
        request = rpc.IngestUsageRequest(record=record("c1", "I"))
        await telemetry.IngestUsage(request, metadata=key(tenant), timeout=5)
    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED and "telemetry:write" in refused.value.details()


async def test_metadata_and_messages_are_stored_redacted(
    telemetry: Any, tenant: str, owned: tuple[str, str], engines: Any
) -> None:
    metadata = {"user": "ann@acme.test", "secret": "s"}
    rec = record("c1", owned[0], error_message="card 4111-1111-1111-1111", metadata=metadata)
    await ingest(telemetry, tenant, rec)
    (row,) = await sql(engines, "SELECT error_message, metadata FROM usage_record WHERE tenant_id = :t", t=tenant)
    assert row.error_message == "card [REDACTED_CARD]" and row.metadata == {
        "user": "[REDACTED_EMAIL]",
        "secret": "[REDACTED]",
    }


async def test_integration_usage_sums_the_days_and_the_last_minute(
    telemetry: Any, telemetry_as_integrations: Any, tenant: str, owned: tuple[str, str], engines: dict[str, AsyncEngine]
) -> None:
    i, j = owned
    await batch(
        telemetry, tenant, *(record(f"c{n}", i, cost_cents=50, tokens_in=200, tokens_out=100) for n in range(5))
    )
    await batch(telemetry, tenant, record("other", j, cost_cents=999))
    await sql(
        engines, "UPDATE usage_daily SET day = day - 40 WHERE tenant_id = :t AND integration_id = :j", t=tenant, j=j
    )
    start = timestamp_pb2.Timestamp()
    start.FromDatetime(datetime.now(UTC) - timedelta(days=30))
    request = rpc.GetIntegrationUsageRequest(tenant_id=tenant, integration_id=i, period_start=start)
    usage = await telemetry_as_integrations.GetIntegrationUsage(request, metadata=service("integrations"))
    assert (usage.cost_cents, usage.tokens, usage.records, usage.requests_last_minute) == (250, 1500, 5, 5)
    old = rpc.GetIntegrationUsageRequest(tenant_id=tenant, integration_id=j, period_start=start)
    assert (await telemetry_as_integrations.GetIntegrationUsage(old, metadata=service("integrations"))).cost_cents == 0
    with pytest.raises(grpc.aio.AioRpcError) as customer:
        await telemetry.GetIntegrationUsage(request, metadata=key(tenant))
    assert customer.value.code() is grpc.StatusCode.PERMISSION_DENIED


async def test_tenant_usage_counts_this_months_tokens_for_account(
    channels: Any,
    running: Any,
    telemetry: Any,
    telemetry_as_integrations: Any,
    tenant: str,
    owned: tuple[str, str],
    engines: dict[str, AsyncEngine],
) -> None:
    i, j = owned
    await batch(telemetry, tenant, *(record(f"t{n}", i, tokens_in=200, tokens_out=100) for n in range(3)))
    await batch(telemetry, tenant, record("last-year", j, tokens_in=7, tokens_out=0))
    await sql(
        engines, "UPDATE usage_daily SET day = day - 400 WHERE tenant_id = :t AND integration_id = :j", t=tenant, j=j
    )
    as_account = grpc_api.TelemetryServiceStub(channels.channel(running["monitoring"], "account"))
    usage = await as_account.GetTenantUsage(rpc.GetTenantUsageRequest(tenant_id=tenant), metadata=service("account"))
    assert (usage.runs_today, usage.runs_this_month, usage.tokens_this_month) == (0, 0, 900)
    with pytest.raises(grpc.aio.AioRpcError) as other_service:  # the gate rule names account alone
        await telemetry_as_integrations.GetTenantUsage(
            rpc.GetTenantUsageRequest(tenant_id=tenant), metadata=service("integrations")
        )
    assert other_service.value.code() is grpc.StatusCode.PERMISSION_DENIED
