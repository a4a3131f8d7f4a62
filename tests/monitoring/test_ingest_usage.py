"""Telemetry ingest and GetIntegrationUsage against the real service (MONITORING.md section 7; M1, M4-M6)."""

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
from tests.conftest import service
from tests.monitoring.conftest import event_types, key, sql

TELEMETRY = "telemetry:write,integrations:read"


def record(call_id: str, integration: str = "I", **fields: Any) -> pb.UsageRecordInput:
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


async def test_a_call_id_is_stored_once_per_tenant(telemetry: Any, tenant: str, engines: Any) -> None:
    await ingest(telemetry, f"other-{tenant}", record("c1"))  # M1: B used c1
    first = await ingest(telemetry, tenant, record("c1"), integration="I")
    assert (first.status, first.call_id, first.success, first.data.status) == ("accepted", "c1", True, "accepted")
    again = await ingest(telemetry, tenant, record("c1"), integration="I")
    assert (again.status, again.id, again.data.id) == ("duplicate", first.id, first.id)
    assert again.meta.request_id and again.meta.HasField("timestamp")
    rows = await sql(engines, "SELECT id, key_id FROM usage_record WHERE tenant_id = :t", t=tenant)
    assert [(str(r.id), r.key_id) for r in rows] == [(first.id, "key-t")]
    assert await event_types(engines, tenant) == ["usage.ingested"]


async def test_racing_duplicates_store_one_record(telemetry: Any, tenant: str, engines: Any) -> None:
    replies = await asyncio.gather(*(ingest(telemetry, tenant, record("same")) for _ in range(8)))
    assert sorted(r.status for r in replies) == ["accepted"] + ["duplicate"] * 7
    assert len({r.id for r in replies}) == 1
    (daily,) = await sql(
        engines, "SELECT records, tokens_in, cost_cents FROM usage_daily WHERE tenant_id = :t", t=tenant
    )
    assert tuple(daily) == (1, 100, 5)


async def test_concurrent_batches_sharing_call_ids_store_each_once(telemetry: Any, tenant: str, engines: Any) -> None:
    ids = [f"c{i:03}" for i in range(100)]
    orders = [ids, ids[::-1], ids[50:] + ids[:50], ids[::2] + ids[1::2]]
    replies = await asyncio.gather(*(batch(telemetry, tenant, *(record(c) for c in order)) for order in orders * 2))
    assert sum(r.accepted for r in replies) == 100 and sum(r.duplicates for r in replies) == 100 * 7
    (daily,) = await sql(engines, "SELECT records FROM usage_daily WHERE tenant_id = :t", t=tenant)
    assert daily.records == 100


async def test_a_batch_counts_accepted_duplicates_and_errors(telemetry: Any, tenant: str, engines: Any) -> None:
    await ingest(telemetry, tenant, record("stored"))
    reply = await batch(  # M4, with the integration key's integration I: the record naming J is refused
        telemetry, tenant, record("c2"), record("stored"), record("c3", "J"), record("c2"), integration="I"
    )
    assert (reply.accepted, reply.duplicates, reply.errors, reply.total) == (1, 2, 1, 4)
    assert [(e.index, e.call_id) for e in reply.error_details] == [(2, "c3")]
    keyed = await batch(telemetry, tenant, record("c4", "I"), record("c5", "J"))  # X-AOS-Key: the record names it
    assert (keyed.accepted, keyed.errors) == (2, 0)
    daily = await sql(
        engines, "SELECT integration_id, records FROM usage_daily WHERE tenant_id = :t ORDER BY 1", t=tenant
    )
    assert [tuple(r) for r in daily] == [("I", 3), ("J", 1)]
    assert await event_types(engines, tenant) == ["usage.ingested"] * 3


@pytest.mark.parametrize(
    ("records", "field"),
    [
        ([], "records"),  # M5
        ([record(f"c{i}") for i in range(101)], "records"),
        ([record("ok"), record("bad", tokens_in=-1)], "records[1].tokens_in"),
        ([record("x" * 101)], "records[0].call_id"),
        ([record("ok", policy_result="maybe")], "records[0].policy_result"),
        ([record("ok", provider="")], "records[0].provider"),
        ([record("ok", integration="")], "records[0].integration_id"),
        ([record("ok", latency_ms=-5)], "records[0].latency_ms"),
        ([record("ok", metadata={"k": "\x00"})], "records[0].metadata"),
        ([record("nul\x00")], "records[0].call_id"),
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


async def test_a_single_record_of_another_integration_is_unknown(telemetry: Any, tenant: str, engines: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await ingest(telemetry, tenant, record("c1", "J"), integration="I")  # M3: A:J:T against I
    assert missing.value.code() is grpc.StatusCode.NOT_FOUND
    assert await event_types(engines, tenant) == []


async def test_ingest_needs_telemetry_write(telemetry: Any, tenant: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:  # M6: a default key
        await telemetry.IngestUsage(rpc.IngestUsageRequest(record=record("c1")), metadata=key(tenant), timeout=5)
    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED and "telemetry:write" in refused.value.details()


async def test_metadata_and_messages_are_stored_redacted(telemetry: Any, tenant: str, engines: Any) -> None:
    rec = record("c1", error_message="card 4111-1111-1111-1111", metadata={"user": "ann@acme.test", "secret": "s"})
    await ingest(telemetry, tenant, rec)
    (row,) = await sql(engines, "SELECT error_message, metadata FROM usage_record WHERE tenant_id = :t", t=tenant)
    assert row.error_message == "card [REDACTED_CARD]" and row.metadata == {
        "user": "[REDACTED_EMAIL]",
        "secret": "[REDACTED]",
    }


async def test_integration_usage_sums_the_days_and_the_last_minute(
    telemetry: Any, telemetry_as_integrations: Any, tenant: str, engines: dict[str, AsyncEngine]
) -> None:
    await batch(telemetry, tenant, *(record(f"c{i}", cost_cents=50, tokens_in=200, tokens_out=100) for i in range(5)))
    await batch(telemetry, tenant, record("other", "J", cost_cents=999))
    await sql(engines, "UPDATE usage_daily SET day = day - 40 WHERE tenant_id = :t AND integration_id = 'J'", t=tenant)
    start = timestamp_pb2.Timestamp()
    start.FromDatetime(datetime.now(UTC) - timedelta(days=30))
    request = rpc.GetIntegrationUsageRequest(tenant_id=tenant, integration_id="I", period_start=start)
    usage = await telemetry_as_integrations.GetIntegrationUsage(request, metadata=service("integrations"))
    assert (usage.cost_cents, usage.tokens, usage.records, usage.requests_last_minute) == (250, 1500, 5, 5)
    old = rpc.GetIntegrationUsageRequest(tenant_id=tenant, integration_id="J", period_start=start)
    assert (await telemetry_as_integrations.GetIntegrationUsage(old, metadata=service("integrations"))).cost_cents == 0
    with pytest.raises(grpc.aio.AioRpcError) as customer:
        await telemetry.GetIntegrationUsage(request, metadata=key(tenant))
    assert customer.value.code() is grpc.StatusCode.PERMISSION_DENIED
