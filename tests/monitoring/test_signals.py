"""Signals against the real service and database (MONITORING.md section 5; M22, M23, M24): derived in one
statement, feedback stored once, suppressions hiding a signal from items and total."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from aos.monitoring.v1 import monitoring_service_pb2 as rpc
from services.monitoring import policy
from tests.conftest import human
from tests.monitoring.conftest import event_types, finish, key, new_run, sql


async def risky(activity: Any, tenant: str, **totals: Any) -> str:
    """A completed run whose totals put it at risk (defaults: 500 cents, 600 000 ms)."""
    run = await new_run(activity, tenant)
    await finish(activity, tenant, run.run_id, **totals)
    return str(run.run_id)


async def listed(activity: Any, tenant: str, **query: Any) -> Any:
    return await activity.ListSignals(rpc.ListSignalsRequest(**query), metadata=human(tenant), timeout=10)


async def test_filters_apply_before_paging_and_total(activity: Any, tenant: str) -> None:
    """M24: 3 time and 2 cost signals; signal_type=time_risk&limit=1 → total 3, one item."""
    times = [await risky(activity, tenant, duration_ms=600_000) for _ in range(3)]
    costs = [await risky(activity, tenant, cost_cents=500) for _ in range(2)]
    page = await listed(activity, tenant, signal_type=["time_risk"], limit=1)
    assert (page.total, len(page.items), page.has_more, page.pagination.next_offset.number_value) == (3, 1, True, 1)
    everything = await listed(activity, tenant)
    assert everything.total == 5 and not everything.has_more
    assert {s.run_id for s in everything.items} == {*times, *costs}
    for item in everything.items:  # the SQL's fingerprint is policy.fingerprint
        assert item.signal_fingerprint == policy.fingerprint(tenant, item.run_id, item.signal_type)
        assert item.signal_id == f"sig-{item.signal_fingerprint[:16]}" and item.severity == "MEDIUM"
        assert item.feedback.WhichOneof("kind") == "null_value"
    # Same rank: newest run first, then run_id descending.
    assert [s.run_id for s in everything.items] == [*reversed(costs), *reversed(times)]
    beyond = await listed(activity, tenant, offset=10)
    assert (beyond.total, len(beyond.items)) == (5, 0)
    low = await listed(activity, tenant, severity=["LOW"])
    assert low.total == 0


async def test_failed_runs_yield_failure_signals_ranked_by_severity(activity: Any, tenant: str) -> None:
    crashed = await risky(activity, tenant, status="failed", error_code="AGENT_CRASH")
    cancelled = await risky(activity, tenant, status="aborted")
    near = await risky(activity, tenant, cost_cents=400)
    items = (await listed(activity, tenant)).items
    assert [(s.run_id, s.signal_type, s.severity) for s in items] == [
        (crashed, "execution_failure", "HIGH"),
        (near, "cost_risk", "LOW"),  # newer than the cancelled run's LOW failure
        (cancelled, "execution_failure", "LOW"),
    ]
    assert "failed" in items[0].summary and items[1].policy_context["risk_type"] == "COST"


def feedback(method: Any, tenant: str, run_id: str, signal_type: str, **body: Any) -> Any:
    fp = policy.fingerprint(tenant, run_id, signal_type)
    return method(signal_fingerprint=fp, run_id=run_id, signal_type=signal_type, **body)


async def test_acknowledge_once_and_rank_lower(activity: Any, tenant: str, engines: dict[str, AsyncEngine]) -> None:
    """M22: two at-risk runs; one is acked, then re-acked: distinct fingerprints, the other unacked,
    acknowledged_at kept, one row, one event."""
    first, second = [await risky(activity, tenant, status="failed", cost_cents=600) for _ in range(2)]
    owner = human(tenant, user="u-owner")
    ack = feedback(rpc.AcknowledgeSignalRequest, tenant, first, "cost_risk", comment="mine, mail a@b.example")
    acked = await activity.AcknowledgeSignal(ack, metadata=owner, timeout=10)
    assert (acked.feedback_state, acked.acknowledged_by, acked.comment) == (
        "ACKNOWLEDGED",
        "u-owner",
        "mine, mail [REDACTED_EMAIL]",
    )
    again = await activity.AcknowledgeSignal(ack, metadata=human(tenant, role="member"), timeout=10)
    assert (again.acknowledged_at, again.acknowledged_by) == (acked.acknowledged_at, "u-owner")
    rows = await sql(engines, "SELECT feedback_state FROM signal_feedback WHERE tenant_id = :t", t=tenant)
    assert [r.feedback_state for r in rows] == ["ACKNOWLEDGED"]
    assert (await event_types(engines, tenant)).count("signal.acknowledged") == 1

    items = (await listed(activity, tenant, signal_type=["cost_risk"])).items
    assert [s.run_id for s in items] == [second, first]  # the acknowledged one ranks lower (3 x 0.6)
    assert items[0].feedback.WhichOneof("kind") == "null_value"
    kept = items[1].feedback.struct_value
    assert (kept["feedback_state"], kept["acknowledged_by"]) == ("ACKNOWLEDGED", "u-owner")
    assert items[0].signal_fingerprint != items[1].signal_fingerprint


async def test_feedback_names_a_signal_of_the_callers_tenant(activity: Any, tenant: str) -> None:
    run_id = await risky(activity, tenant, cost_cents=500)
    owner = human(tenant)
    cases = [  # (request, code, what the message says)
        (feedback(rpc.AcknowledgeSignalRequest, "t-other", run_id, "cost_risk"), "NOT_FOUND", "signal not found"),
        (feedback(rpc.AcknowledgeSignalRequest, tenant, run_id, "time_risk"), "FAILED_PRECONDITION", "derivable"),
        (
            feedback(rpc.AcknowledgeSignalRequest, tenant, run_id, "cost_risk", risk_type="TIME"),
            "INVALID_ARGUMENT",
            "risk_type",
        ),
        (feedback(rpc.AcknowledgeSignalRequest, tenant, run_id, "loud_risk"), "INVALID_ARGUMENT", "signal_type"),
    ]
    for request, code, says in cases:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await activity.AcknowledgeSignal(request, metadata=owner, timeout=10)
        assert (refused.value.code().name, says in (refused.value.details() or "")) == (code, True), request
    viewer = human(tenant, role="viewer")
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await activity.AcknowledgeSignal(
            feedback(rpc.AcknowledgeSignalRequest, tenant, run_id, "cost_risk"), metadata=viewer
        )
    assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED
    by_key = feedback(rpc.AcknowledgeSignalRequest, tenant, run_id, "cost_risk")
    assert (await activity.AcknowledgeSignal(by_key, metadata=key(tenant), timeout=10)).acknowledged_by == "key-1"


async def test_suppression_hides_a_signal_for_its_minutes(
    activity: Any, tenant: str, engines: dict[str, AsyncEngine]
) -> None:
    """M23: 14 or 1441 minutes → INVALID_DURATION, nothing written; 60 → gone from items and total."""
    hidden, shown = [await risky(activity, tenant, duration_ms=600_000) for _ in range(2)]
    owner = human(tenant)
    for minutes in (14, 1441):
        bad = feedback(rpc.SuppressSignalRequest, tenant, hidden, "time_risk", duration_minutes=minutes)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await activity.SuppressSignal(bad, metadata=owner, timeout=10)
        assert (
            refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT and "duration_minutes" in refused.value.details()
        )
    assert await sql(engines, "SELECT 1 FROM signal_feedback WHERE tenant_id = :t", t=tenant) == []
    hour = feedback(rpc.SuppressSignalRequest, tenant, hidden, "time_risk", duration_minutes=60, reason="known")
    done = await activity.SuppressSignal(hour, metadata=owner, timeout=10)
    assert done.signal_fingerprint == hour.signal_fingerprint
    (row,) = await sql(
        engines, "SELECT expires_at - created_at AS lasts FROM signal_feedback WHERE tenant_id = :t", t=tenant
    )
    assert row.lasts.total_seconds() == pytest.approx(3600, abs=1)
    page = await listed(activity, tenant)
    assert (page.total, [s.run_id for s in page.items]) == (1, [shown])
    await sql(engines, "UPDATE signal_feedback SET expires_at = now() WHERE tenant_id = :t", t=tenant)  # an hour on
    assert (await listed(activity, tenant)).total == 2
    assert (await event_types(engines, tenant)).count("signal.suppressed") == 1


async def test_activity_metrics_count_live_and_recent_runs(activity: Any, tenant: str) -> None:
    await new_run(activity, tenant)
    await risky(activity, tenant, cost_cents=500, prompt_hash="a" * 64, response_hash="b" * 64)
    await risky(activity, tenant)
    metrics = await activity.GetActivityMetrics(rpc.GetActivityMetricsRequest(), metadata=human(tenant), timeout=10)
    assert metrics.live.total == 1 and metrics.live.by_evidence_health["FLOWING"] == 1
    assert dict(metrics.live.by_risk_level) == {"NORMAL": 1, "NEAR_THRESHOLD": 0, "AT_RISK": 0, "VIOLATED": 0}
    done = metrics.completed_24h
    assert (done.total, done.by_risk_level["AT_RISK"], done.by_risk_level["NORMAL"]) == (2, 1, 1)
    assert (done.by_evidence_health["FLOWING"], done.by_evidence_health["MISSING"]) == (1, 1)
    assert (done.by_risk_type["COST"], done.by_risk_type["TIME"]) == (2, 0)
