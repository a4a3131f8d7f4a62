"""CompleteRun and HeartbeatRun against the real service (MONITORING.md 3.2, 3.3, 4; M12-M17, M35)."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from aos.monitoring.v1 import monitoring_service_pb2 as rpc
from services.common import events
from tests.monitoring.conftest import event_types, finish, key, new_run, sql

SHA = "ab" * 32


async def test_a_timeout_opens_a_high_incident_in_the_completions_transaction(
    activity: Any, incidents: Any, project: tuple[str, str], engines: dict[str, AsyncEngine]
) -> None:
    tenant, project_id = project
    run = await new_run(activity, tenant, project_id=project_id)  # M12
    done = await finish(activity, tenant, run.run_id, "failed", error_message="EXECUTION_TIMEOUT after 30s")
    assert done.run.state == "COMPLETED" and done.run.status == "failed" and done.run.incident_count == 1
    assert done.run.incident_severity == "HIGH" and done.run.evidence_health == "MISSING"
    (incident_id,) = done.incident_ids
    incident = (
        await incidents.GetIncident(rpc.GetIncidentRequest(incident_id=incident_id), metadata=key(tenant))
    ).incident
    assert (incident.severity, incident.category, incident.lifecycle_state, incident.cause_type) == (
        "HIGH",
        "EXECUTION_FAILURE",
        "ACTIVE",
        "LLM_RUN",
    )
    assert incident.title == f"Execution Timeout: Run {run.run_id[:8]}" and incident.llm_run_id == run.run_id
    (record,) = await sql(engines, "SELECT * FROM llm_run_record WHERE run_id = :r", r=run.run_id)
    assert record.execution_status == "TIMEOUT" and str(record.id) == done.record_id and record.source == "SDK"
    assert await event_types(engines, tenant) == ["run.created", "incident.created", "run.completed"]
    rows = await sql(
        engines, "SELECT project_id, sequence_no, payload FROM event WHERE tenant_id = :t ORDER BY 2", t=tenant
    )
    # M35: gapless per stream
    assert [(r.project_id, r.sequence_no) for r in rows] == [(project_id, 1), (project_id, 2), (project_id, 3)]
    assert rows[2].payload["incident_ids"] == [incident_id] and rows[2].payload["record_id"] == done.record_id


@pytest.mark.parametrize(
    ("status", "message", "severity", "category", "execution"),
    [("failed", "it broke", "MEDIUM", "EXECUTION_FAILURE", "FAILED"), ("aborted", "", "LOW", "MANUAL", "ABORTED")],
)
async def test_unknown_failures_and_bare_aborts(
    activity: Any,
    tenant: str,
    engines: dict[str, AsyncEngine],
    status: str,
    message: str,
    severity: str,
    category: str,
    execution: str,
) -> None:
    run = await new_run(activity, tenant)  # M13
    await finish(activity, tenant, run.run_id, status, error_message=message)
    (incident,) = await sql(engines, "SELECT severity, category FROM incident WHERE source_run_id = :r", r=run.run_id)
    assert (incident.severity, incident.category) == (severity, category)
    (record,) = await sql(engines, "SELECT execution_status FROM llm_run_record WHERE run_id = :r", r=run.run_id)
    assert record.execution_status == execution


async def test_a_success_opens_no_incident(activity: Any, incidents: Any, tenant: str, engines: Any) -> None:
    run = await new_run(activity, tenant)  # M14
    done = await finish(
        activity,
        tenant,
        run.run_id,
        input_tokens=10,
        output_tokens=20,
        cost_cents=3,
        prompt_hash=SHA,
        response_hash=SHA,
    )
    assert done.incident_ids == [] and done.run.incident_count == 0 and done.run.evidence_health == "FLOWING"
    assert (done.run.input_tokens, done.run.output_tokens, done.run.cost_cents) == (10, 20, 3)
    assert done.run.estimated_cost_usd == 0.03 and done.run.HasField("duration_ms")
    active = await incidents.ListActiveIncidents(rpc.ListActiveIncidentsRequest(), metadata=key(tenant))
    assert active.total == 0 and list(active.items) == []
    (record,) = await sql(
        engines, "SELECT execution_status, prompt_hash FROM llm_run_record WHERE run_id = :r", r=run.run_id
    )
    assert record.execution_status == "SUCCEEDED" and record.prompt_hash == SHA


async def test_racing_completions_leave_one_record_one_incident_one_event(
    activity: Any, tenant: str, engines: Any
) -> None:
    run = await new_run(activity, tenant)  # M15
    replies = await asyncio.gather(
        *(finish(activity, tenant, run.run_id, "failed", error_code="AGENT_CRASH") for _ in range(8))
    )
    assert len({tuple(r.incident_ids) for r in replies}) == 1 and len({r.record_id for r in replies}) == 1
    counts = await sql(
        engines,
        "SELECT (SELECT count(*) FROM llm_run_record WHERE run_id = :r), "
        "(SELECT count(*) FROM incident WHERE source_run_id = :r)",
        r=run.run_id,
    )
    assert tuple(counts[0]) == (1, 1)
    assert (await event_types(engines, tenant)).count("run.completed") == 1


async def test_a_completed_run_refuses_another_status_and_heartbeats(activity: Any, tenant: str, engines: Any) -> None:
    run = await new_run(activity, tenant)  # M16
    await finish(activity, tenant, run.run_id, "succeeded")
    before = await event_types(engines, tenant)
    same = await finish(activity, tenant, run.run_id, "succeeded")
    assert same.run.status == "succeeded" and same.record_id
    for call in (
        finish(activity, tenant, run.run_id, "failed"),
        activity.HeartbeatRun(rpc.HeartbeatRunRequest(run_id=run.run_id), metadata=key(tenant)),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call
        assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert dict(refused.value.trailing_metadata() or ())["x-aos-http-status"] == "409"  # for REST callers
    assert await event_types(engines, tenant) == before


async def test_completion_derives_risk_from_the_tenants_thresholds(activity: Any, tenant: str) -> None:
    async def completed(status: str = "succeeded", **fields: Any) -> Any:
        return (await finish(activity, tenant, (await new_run(activity, tenant)).run_id, status, **fields)).run

    assert (await completed(cost_cents=400)).risk_level == "NEAR_THRESHOLD"  # M17
    assert (await completed(cost_cents=500)).risk_level == "AT_RISK"
    violated = await completed("failed", cost_cents=600)
    assert violated.risk_level == "VIOLATED" and violated.policy_violation and violated.risk_type == "COST"
    assert (await completed(duration_ms=45_000)).latency_bucket == "SLOW"
    assert (await completed(duration_ms=1_000)).latency_bucket == "OK"
    await activity.UpdateThresholds(rpc.UpdateThresholdsRequest(run_budget_cents=1000), metadata=key(tenant))
    calmer = await completed(cost_cents=500)
    assert calmer.risk_level == "NORMAL" and calmer.policy_context["policy_id"] == "TENANT_THRESHOLD"


async def test_heartbeats_raise_totals_and_are_quiet_within_5_seconds(
    activity: Any, tenant: str, engines: dict[str, AsyncEngine]
) -> None:
    run = await new_run(activity, tenant)
    quiet = await activity.HeartbeatRun(
        rpc.HeartbeatRunRequest(run_id=run.run_id, cost_cents=450), metadata=key(tenant)
    )
    assert quiet.run.cost_cents == 0  # within 5 s of the create: nothing written
    await sql(engines, "UPDATE run SET last_seen_at = last_seen_at - interval '10 s' WHERE run_id = :r", r=run.run_id)
    beat = await activity.HeartbeatRun(rpc.HeartbeatRunRequest(run_id=run.run_id, cost_cents=450), metadata=key(tenant))
    assert beat.run.cost_cents == 450 and beat.run.risk_level == "NEAR_THRESHOLD"
    await sql(engines, "UPDATE run SET last_seen_at = last_seen_at - interval '10 s' WHERE run_id = :r", r=run.run_id)
    lower = await activity.HeartbeatRun(rpc.HeartbeatRunRequest(run_id=run.run_id, cost_cents=5), metadata=key(tenant))
    assert lower.run.cost_cents == 450  # running totals are never lowered
    assert await event_types(engines, tenant) == ["run.created", "run.heartbeat", "run.heartbeat"]


async def test_a_silent_live_run_is_stalled_and_degraded(activity: Any, tenant: str, engines: Any) -> None:
    run = await new_run(activity, tenant)  # M17: LIVE silent 121 s
    await sql(engines, "UPDATE run SET last_seen_at = now() - interval '121 s' WHERE run_id = :r", r=run.run_id)
    read = await activity.GetRunDetail(rpc.GetRunDetailRequest(run_id=run.run_id), metadata=key(tenant))
    assert (read.latency_bucket, read.evidence_health) == ("STALLED", "DEGRADED")


async def test_bad_completions_write_nothing(activity: Any, tenant: str, engines: Any) -> None:
    run = await new_run(activity, tenant)
    for fields, field in [
        ({"status": "done"}, "status"),
        ({"status": "failed", "input_tokens": -1}, "input_tokens"),
        ({"status": "failed", "prompt_hash": "xyz"}, "prompt_hash"),
        ({"status": "failed", "error_message": "x" * 2001}, "error_message"),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await activity.CompleteRun(rpc.CompleteRunRequest(run_id=run.run_id, **fields), metadata=key(tenant))
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT and field in refused.value.details()
    assert await event_types(engines, tenant) == ["run.created"]


async def test_another_tenants_run_cannot_be_completed(activity: Any, tenant: str, engines: Any) -> None:
    theirs = await new_run(activity, f"other-{tenant}")  # M34
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await finish(activity, tenant, theirs.run_id, "failed")
    assert missing.value.code() is grpc.StatusCode.NOT_FOUND
    (row,) = await sql(engines, "SELECT state FROM run WHERE run_id = :r", r=theirs.run_id)
    assert row.state == "LIVE"


async def test_an_invalid_event_rolls_the_completion_back(
    activity: Any, tenant: str, engines: dict[str, AsyncEngine], monkeypatch: pytest.MonkeyPatch
) -> None:
    run = await new_run(activity, tenant)  # M35: the service runs in this process, so its validator can be broken
    monkeypatch.setattr(events, "validate", lambda event: ["missing: forced"])
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await finish(activity, tenant, run.run_id, "failed")
    assert failed.value.code() is grpc.StatusCode.INTERNAL
    monkeypatch.undo()
    counts = await sql(
        engines,
        "SELECT (SELECT state FROM run WHERE run_id = :r), (SELECT count(*) FROM llm_run_record WHERE run_id = :r), "
        "(SELECT count(*) FROM incident WHERE source_run_id = :r)",
        r=run.run_id,
    )
    assert tuple(counts[0]) == ("LIVE", 0, 0) and await event_types(engines, tenant) == ["run.created"]
