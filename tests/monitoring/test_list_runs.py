"""The activity lists, the status summary and the thresholds against the real service (MONITORING.md section 2,
3.3; M19-M21)."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from aos.monitoring.v1 import monitoring_service_pb2 as rpc
from tests.conftest import human
from tests.monitoring.conftest import event_types, finish, key, new_run, sql


async def test_completed_runs_are_the_tenants_own_with_legacy_paging(activity: Any, tenant: str) -> None:
    for i in range(5):  # M20
        await finish(activity, tenant, (await new_run(activity, tenant)).run_id, ("succeeded", "failed")[i % 2])
    for _ in range(3):
        await finish(activity, f"other-{tenant}", (await new_run(activity, f"other-{tenant}")).run_id)
    await new_run(activity, tenant)  # LIVE: not completed
    me = key(tenant)
    listed = await activity.ListCompletedRuns(rpc.ListCompletedRunsRequest(), metadata=me)
    assert listed.total == 5 and {r.tenant_id for r in listed.items} == {tenant}
    tail = await activity.ListCompletedRuns(rpc.ListCompletedRunsRequest(limit=2, offset=4), metadata=me)
    assert tail.total == 5 and len(tail.items) == 1 and tail.has_more is False
    assert tail.pagination.limit == 2 and tail.pagination.next_offset.HasField("null_value")
    head = await activity.ListCompletedRuns(rpc.ListCompletedRunsRequest(limit=2), metadata=me)
    assert head.has_more and head.pagination.next_offset.number_value == 2
    failed = await activity.ListCompletedRuns(rpc.ListCompletedRunsRequest(status=["failed"]), metadata=me)
    assert failed.total == 2 and {r.status for r in failed.items} == {"failed"}
    fastest = await activity.ListCompletedRuns(
        rpc.ListCompletedRunsRequest(sort_by="duration_ms", sort_order="asc"), metadata=me
    )
    assert [r.duration_ms for r in fastest.items] == sorted(r.duration_ms for r in fastest.items)


async def test_equal_start_times_page_by_run_id_descending(activity: Any, tenant: str, engines: Any) -> None:
    runs = [(await new_run(activity, tenant)).run_id for _ in range(4)]  # M21
    await sql(engines, "UPDATE run SET started_at = '2026-06-01T00:00:00Z' WHERE tenant_id = :t", t=tenant)
    me = key(tenant)
    pages = []
    for _ in range(3):
        first = await activity.ListLiveRuns(rpc.ListLiveRunsRequest(page_size=3), metadata=me)
        rest = await activity.ListLiveRuns(
            rpc.ListLiveRunsRequest(page_size=3, page_token=first.next_page_token), metadata=me
        )
        pages.append([r.run_id for r in first.items] + [r.run_id for r in rest.items])
    assert pages[0] == sorted(runs, reverse=True) and pages[0] == pages[1] == pages[2]


async def test_live_filters(activity: Any, tenant: str, engines: Any) -> None:
    quiet, busy = (await new_run(activity, tenant)).run_id, (await new_run(activity, tenant)).run_id
    await sql(engines, "UPDATE run SET last_seen_at = now() - interval '10 minutes' WHERE run_id = :r", r=quiet)
    await sql(engines, "UPDATE run SET risk_level = 'AT_RISK' WHERE run_id = :r", r=busy)
    me = key(tenant)

    async def ids(**query: Any) -> list[str]:
        reply = await activity.ListLiveRuns(rpc.ListLiveRunsRequest(**query), metadata=me)
        assert reply.total == len(reply.items)
        return [r.run_id for r in reply.items]

    assert await ids(evidence_health=["DEGRADED"]) == [quiet]
    assert await ids(evidence_health=["FLOWING"]) == [busy]
    assert await ids(evidence_health=["MISSING"]) == []
    assert await ids(risk_level=["AT_RISK", "VIOLATED"]) == [busy]
    assert sorted(await ids(source=["sdk"], provider_type=["internal"])) == sorted([quiet, busy])
    await activity.UpdateThresholds(rpc.UpdateThresholdsRequest(stalled_after_ms=0), metadata=me)
    assert await ids(evidence_health=["DEGRADED"]) == []  # 0 disables the stall threshold


@pytest.mark.parametrize(
    ("query", "field", "reason"),
    [
        ({"limit": 0}, "limit", "INVALID_QUERY"),  # M19
        ({"limit": 201}, "limit", "INVALID_QUERY"),
        ({"offset": -1}, "offset", "INVALID_QUERY"),
        ({"offset": 10_001}, "offset", "INVALID_QUERY"),
        ({"limit": 5, "page_token": "x"}, "page_token", "INVALID_QUERY"),
        ({"page_token": "%%%"}, "page_token", "INVALID_QUERY"),
        ({"risk_level": ["HIGH"]}, "risk_level", "INVALID_QUERY"),
        ({"as_of": "2026-01-01T00:00:00Z"}, "as_of", "UNSUPPORTED_PARAM"),
    ],
)
async def test_strict_live_queries(activity: Any, tenant: str, query: dict[str, Any], field: str, reason: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await activity.ListLiveRuns(rpc.ListLiveRunsRequest(**query), metadata=key(tenant))
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field in refused.value.details() and reason in str(refused.value.trailing_metadata())


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"completed_after": "2026-01-01T00:00:00"}, "completed_after"),  # M19: no offset
        ({"completed_after": "yesterday"}, "completed_after"),
        ({"completed_after": "2026-02-01T00:00:00Z", "completed_before": "2026-01-01T00:00:00Z"}, "completed_after"),
        ({"sort_by": "cost"}, "sort_by"),
        ({"sort_order": "up"}, "sort_order"),
        ({"status": ["running"]}, "status"),
    ],
)
async def test_strict_completed_queries(activity: Any, tenant: str, query: dict[str, Any], field: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await activity.ListCompletedRuns(rpc.ListCompletedRunsRequest(**query), metadata=key(tenant))
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT and field in refused.value.details()


async def test_status_summary(activity: Any, tenant: str) -> None:
    for status in ("failed", "failed", "succeeded"):
        await finish(activity, tenant, (await new_run(activity, tenant)).run_id, status)
    await new_run(activity, tenant)
    summary = await activity.GetRunStatusSummary(
        rpc.GetRunStatusSummaryRequest(), metadata=human(tenant, role="viewer")
    )
    assert summary.total_runs == 4
    assert [(b.status, b.count, b.percentage) for b in summary.buckets] == [
        ("failed", 2, 50.0),
        ("running", 1, 25.0),
        ("succeeded", 1, 25.0),
    ]


async def test_thresholds_defaults_updates_and_roles(
    activity: Any, tenant: str, engines: dict[str, AsyncEngine]
) -> None:
    got = (await activity.GetThresholds(rpc.GetThresholdsRequest(), metadata=key(tenant))).thresholds
    assert (got.run_budget_cents, got.run_tokens, got.run_time_ms, got.near_threshold_pct) == (
        500,
        100_000,
        600_000,
        80,
    )
    assert (got.expected_latency_ms, got.stalled_after_ms, list(got.customized)) == (30_000, 120_000, [])
    with pytest.raises(grpc.aio.AioRpcError) as member:
        await activity.UpdateThresholds(
            rpc.UpdateThresholdsRequest(run_tokens=5), metadata=human(tenant, role="member")
        )
    assert member.value.code() is grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await activity.UpdateThresholds(rpc.UpdateThresholdsRequest(near_threshold_pct=101), metadata=key(tenant))
    assert bad.value.code() is grpc.StatusCode.INVALID_ARGUMENT and "near_threshold_pct" in bad.value.details()
    update = rpc.UpdateThresholdsRequest(run_tokens=5, near_threshold_pct=50)
    changed = (await activity.UpdateThresholds(update, metadata=human(tenant, role="admin"))).thresholds
    assert (changed.run_tokens, changed.near_threshold_pct, changed.run_budget_cents) == (5, 50, 500)
    assert sorted(changed.customized) == ["near_threshold_pct", "run_tokens"]
    await activity.UpdateThresholds(update, metadata=key(tenant))  # the same values again: a no-op
    assert await event_types(engines, tenant) == ["thresholds.updated"]
