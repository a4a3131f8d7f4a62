"""Traces and the replay window at the service (MONITORING.md 6.2, 6.4): the first write wins also between
racing writers, a trace is a run's evidence whether it arrives before or after completion (also when only the
completion names it), roles, and the window's 500-item cut."""

from __future__ import annotations

import asyncio
from datetime import UTC, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from sqlalchemy.ext.asyncio import AsyncEngine

from aos.monitoring.v1 import logs_pb2 as pb
from aos.monitoring.v1 import logs_service_pb2 as rpc
from aos.monitoring.v1 import logs_service_pb2_grpc as grpc_api
from aos.monitoring.v1 import monitoring_service_pb2 as rpc_activity
from services.common import server
from tests.conftest import Channels, human
from tests.monitoring.conftest import event_types, finish, key, new_run


@pytest.fixture(scope="session")
async def logs(channels: Channels, running: dict[str, server.Service]) -> Any:
    return channels.stub(grpc_api.LogsServiceStub, running["monitoring"])


def store(logs: Any, metadata: Any, **trace: Any) -> Any:
    request = rpc.StoreTraceRequest(trace=json_format.ParseDict(trace, pb.TraceInput()))
    return logs.StoreTrace(request, metadata=metadata, timeout=10)


async def test_racing_writers_store_one_trace(logs: Any, activity: Any, tenant: str, engines: Any) -> None:
    run_id = (await new_run(activity, tenant)).run_id
    replies = await asyncio.gather(
        *(store(logs, key(tenant), run_id=run_id, steps=[{"skill_name": f"s{i}"}]) for i in range(5))
    )
    assert sorted(r.stored for r in replies) == [False, False, False, False, True]
    assert len({(r.trace_id, r.root_hash) for r in replies}) == 1
    assert (await event_types(engines, tenant)).count("trace.stored") == 1
    winner = await logs.GetTrace(rpc.GetTraceRequest(run_id=run_id), metadata=key(tenant), timeout=10)
    assert winner.trace.step_count == 1 and winner.trace.root_hash == replies[0].root_hash


async def test_a_trace_stored_before_completion_is_the_runs_evidence(logs: Any, activity: Any, tenant: str) -> None:
    run_id = (await new_run(activity, tenant)).run_id
    await store(logs, key(tenant), run_id=run_id)
    done = await finish(activity, tenant, run_id)
    assert done.run.evidence_health == "FLOWING"
    named = (await new_run(activity, tenant)).run_id
    await store(logs, key(tenant), trace_id="named-trace")  # no run_id: the completion names it
    assert (await finish(activity, tenant, named, trace_id="named-trace")).run.evidence_health == "FLOWING"
    bare = (await new_run(activity, tenant)).run_id
    assert (await finish(activity, tenant, bare)).run.evidence_health == "MISSING"
    # Stored after completion: the run the trace names, or whose completion named the trace, becomes FLOWING.
    late = (await new_run(activity, tenant)).run_id
    assert (await finish(activity, tenant, late, trace_id="late-trace")).run.evidence_health == "MISSING"
    await store(logs, key(tenant), trace_id="late-trace")
    read = await activity.GetRun(rpc_activity.GetRunRequest(run_id=late), metadata=key(tenant), timeout=10)
    assert read.evidence_health == "FLOWING"
    unrelated = await activity.GetRun(rpc_activity.GetRunRequest(run_id=bare), metadata=key(tenant), timeout=10)
    assert unrelated.evidence_health == "MISSING"


async def test_a_trace_racing_the_completion_is_still_the_runs_evidence(logs: Any, activity: Any, tenant: str) -> None:
    for _ in range(5):
        run_id = (await new_run(activity, tenant)).run_id
        await asyncio.gather(store(logs, key(tenant), run_id=run_id), finish(activity, tenant, run_id))
        read = await activity.GetRun(rpc_activity.GetRunRequest(run_id=run_id), metadata=key(tenant), timeout=10)
        assert read.evidence_health == "FLOWING"


async def test_a_viewer_cannot_store_a_trace(logs: Any, tenant: str, engines: Any) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await store(logs, human(tenant, role="viewer"), trace_id="t1")
    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "ROLE_REQUIRED" in str(refused.value.trailing_metadata())
    assert await event_types(engines, tenant) == []
    assert (await store(logs, human(tenant, role="member"), trace_id="t1")).stored


async def test_the_replay_window_holds_at_most_500_items_in_order(
    logs: Any, activity: Any, tenant: str, engines: dict[str, AsyncEngine]
) -> None:
    """M28's bound: a LIVE run's window is anchored at its start; more than 500 items are cut, in order."""
    run = await new_run(activity, tenant)
    started = run.started_at.ToDatetime(UTC)
    when = started - timedelta(seconds=10)
    steps = [{"step_index": i, "timestamp": (when + timedelta(microseconds=i % 7)).isoformat()} for i in range(600)]
    await store(logs, key(tenant), trace_id="busy", steps=steps)
    replay = await logs.GetReplayWindow(rpc.GetReplayWindowRequest(run_id=run.run_id), metadata=key(tenant))
    assert replay.anchor.ToDatetime(UTC) == started and (replay.item_count, replay.truncated) == (500, True)
    keys = [(i.timestamp.ToDatetime(UTC), i.kind, i.id) for i in replay.items]
    assert keys == sorted(keys)
    assert replay.window_start.ToDatetime(UTC) == started - timedelta(seconds=30)
