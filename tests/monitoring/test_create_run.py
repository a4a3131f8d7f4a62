"""CreateRun and GetRun against the real service (MONITORING.md 3.1; scenarios M9-M11, M34)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import grpc
import pytest
from google.protobuf import json_format, struct_pb2
from sqlalchemy.ext.asyncio import AsyncEngine

from aos.monitoring.v1 import monitoring_service_pb2 as rpc
from tests.conftest import human
from tests.monitoring.conftest import event_types, key, new_run, sql


def plan(value: Any) -> struct_pb2.Value:
    return json_format.ParseDict(value, struct_pb2.Value())


async def test_the_sdk_shape_is_a_live_service_run_of_the_key(activity: Any, tenant: str, engines: Any) -> None:
    created = await new_run(activity, tenant, plan=plan([{"skill": "llm"}]))  # M9, over gRPC
    assert uuid.UUID(created.run_id)
    assert (created.status, created.state, created.source, created.risk_level) == ("running", "LIVE", "sdk", "NORMAL")
    assert (created.actor_type, created.actor_id, created.origin_system_id) == ("SERVICE", "", "sdk:aos_0123abcd")
    assert created.latency_bucket == "OK" and created.evidence_health == "FLOWING"
    assert json_format.MessageToDict(created.plan) == [{"skill": "llm"}]
    read = await activity.GetRun(rpc.GetRunRequest(run_id=created.run_id), metadata=key(tenant), timeout=5)
    assert read.run_id == created.run_id and read.goal == "summarise" and read.agent_id == "a1"
    assert await event_types(engines, tenant) == ["run.created"]
    (row,) = await sql(engines, "SELECT payload, actor_type, sequence_no FROM event WHERE tenant_id = :t", t=tenant)
    assert row.actor_type == "sdk" and row.sequence_no == 1
    assert row.payload["attribution"] == {
        "actor_type": "SERVICE",
        "actor_id": None,
        "origin_system_id": "sdk:aos_0123abcd",
    }


async def test_attribution_is_kept_or_refused_naming_the_field(activity: Any, tenant: str, engines: Any) -> None:
    stored = await new_run(activity, tenant, actor_type="HUMAN", actor_id="u-1", origin_system_id="console")  # M10
    assert (stored.actor_type, stored.actor_id, stored.origin_system_id) == ("HUMAN", "u-1", "console")
    bad = [
        ({"actor_type": "HUMAN", "origin_system_id": "console"}, "actor_id"),
        ({"actor_type": "SYSTEM", "actor_id": "u-1", "origin_system_id": "cron"}, "actor_id"),
        ({"actor_type": "human", "actor_id": "u-1", "origin_system_id": "console"}, "actor_type"),
        ({"agent_id": ""}, "agent_id"),
        ({"goal": "x" * 4001}, "goal"),
        ({"expected_latency_ms": 0}, "expected_latency_ms"),
        ({"plan": plan({"step": "a\x00b"})}, "plan"),
        ({"project_id": "p\x00"}, "project_id"),
    ]
    for fields, field in bad:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await new_run(activity, tenant, **fields)
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT and field in refused.value.details()
    assert await event_types(engines, tenant) == ["run.created"]  # nothing written by the refusals


async def test_an_idempotency_key_returns_the_original_or_conflicts(activity: Any, tenant: str, engines: Any) -> None:
    first = await new_run(activity, tenant, idempotency_key="k1")  # M11
    again = await new_run(activity, tenant, idempotency_key="k1")
    assert again.run_id == first.run_id
    with pytest.raises(grpc.aio.AioRpcError) as reused:
        await new_run(activity, tenant, idempotency_key="k1", goal="another goal")
    assert reused.value.code() is grpc.StatusCode.ALREADY_EXISTS
    racing = await asyncio.gather(*(new_run(activity, tenant, idempotency_key="k2") for _ in range(6)))
    assert len({r.run_id for r in racing}) == 1
    assert await event_types(engines, tenant) == ["run.created", "run.created"]


async def test_another_tenants_run_is_unknown(activity: Any, tenant: str) -> None:
    theirs = await new_run(activity, f"other-{tenant}")  # M34
    for run_id in (theirs.run_id, "not-a-uuid", str(uuid.uuid4())):
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await activity.GetRun(rpc.GetRunRequest(run_id=run_id), metadata=key(tenant), timeout=5)
        assert missing.value.code() is grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as parent:
        await new_run(activity, tenant, parent_run_id=theirs.run_id)
    assert parent.value.code() is grpc.StatusCode.NOT_FOUND
    child = await new_run(activity, f"other-{tenant}", parent_run_id=theirs.run_id)
    assert child.parent_run_id == theirs.run_id


async def test_only_api_keys_with_run_scope_create_runs(activity: Any, tenant: str) -> None:
    request = rpc.CreateRunRequest(agent_id="a1", goal="g")
    for metadata in (human(tenant), key(tenant, scopes="read:*")):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await activity.CreateRun(request, metadata=metadata, timeout=5)
        assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED


async def test_plans_and_goals_are_stored_redacted(activity: Any, tenant: str, engines: dict[str, AsyncEngine]) -> None:
    secret = "aos_" + "x" * 40
    created = await new_run(activity, tenant, goal=f"mail ops@acme.test with {secret}", plan=plan({"api_key": secret}))
    (row,) = await sql(engines, "SELECT goal, plan FROM run WHERE run_id = :r", r=created.run_id)
    assert row.goal == "mail [REDACTED_EMAIL] with [REDACTED_SECRET]" and row.plan == {"api_key": "[REDACTED]"}
