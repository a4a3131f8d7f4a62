"""Founder review against the real service (MONITORING.md 0.9): cross-tenant lists and the run timeline, each
behind an audit row committed before the read; operators only (M30, M31 at the service)."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from aos.monitoring.v1 import founder_service_pb2 as fdr
from aos.monitoring.v1 import founder_service_pb2_grpc as fdr_grpc
from services.common import server
from tests.conftest import Channels, human, operator
from tests.monitoring.conftest import finish, key, new_run, sql


@pytest.fixture(scope="session")
async def founder(channels: Channels, running: dict[str, server.Service]) -> Any:
    return channels.stub(fdr_grpc.FounderServiceStub, running["monitoring"])


async def audits(engines: dict[str, AsyncEngine], operator_id: str) -> list[Any]:
    query = "SELECT * FROM founder_access_audit WHERE operator_id = :o ORDER BY created_at, id"
    return await sql(engines, query, o=operator_id)


async def test_lists_cross_tenants_after_an_audit_row(
    activity: Any, founder: Any, tenant: str, engines: dict[str, AsyncEngine]
) -> None:
    other = f"other-{tenant}"
    mine = [(await new_run(activity, tenant)).run_id for _ in range(3)]
    theirs = (await new_run(activity, other)).run_id
    await finish(activity, other, theirs, "failed", error_code="AGENT_CRASH")
    me = f"op-{uuid.uuid4().hex[:8]}"
    first = await founder.ListAllRuns(fdr.ListAllRunsRequest(tenant_id=tenant, page_size=2), metadata=operator(me))
    assert [r.run_id for r in first.items] == mine[:0:-1] and first.has_more and first.next_page_token
    rest = fdr.ListAllRunsRequest(tenant_id=tenant, page_size=2, page_token=first.next_page_token)
    second = await founder.ListAllRuns(rest, metadata=operator(me))
    assert [r.run_id for r in second.items] == mine[:1] and not second.has_more and second.next_page_token == ""
    failed = fdr.ListAllRunsRequest(tenant_id=other, state="COMPLETED", risk_level="NORMAL")
    assert [r.run_id for r in (await founder.ListAllRuns(failed, metadata=operator(me))).items] == [theirs]
    newest = await founder.ListAllRuns(fdr.ListAllRunsRequest(page_size=4), metadata=operator(me))
    assert {r.tenant_id for r in newest.items} >= {tenant, other}  # every tenant's, newest first
    found = await founder.ListAllIncidents(
        fdr.ListAllIncidentsRequest(tenant_id=other, lifecycle_state="ACTIVE", severity="CRITICAL"),
        metadata=operator(me),
    )
    assert [(i.llm_run_id, i.tenant_id) for i in found.items] == [(theirs, other)]

    rows = await audits(engines, me)
    assert [r.rpc for r in rows] == ["ListAllRuns"] * 4 + ["ListAllIncidents"]
    assert (rows[0].operator_email, rows[0].tenant_id, rows[0].target_id) == (f"{me}@aos.dev", None, None)
    assert rows[0].filters == {"tenant_id": tenant, "page_size": 2} and rows[0].request_id
    recorded = await sql(
        engines,
        "SELECT payload, actor_type, actor_id FROM event WHERE event_type = 'founder.access_recorded' "
        "AND payload->>'audit_id' = :a",
        a=str(rows[0].id),
    )
    assert [(e.payload["rpc"], e.actor_type, e.actor_id) for e in recorded] == [("ListAllRuns", "founder", me)]


async def test_only_operators_read_across_tenants(founder: Any, tenant: str, engines: dict[str, AsyncEngine]) -> None:
    before = await sql(engines, "SELECT count(*) FROM founder_access_audit")
    for caller in (human(tenant), key(tenant, scopes="*")):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await founder.ListAllRuns(fdr.ListAllRunsRequest(), metadata=caller)
        assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert await sql(engines, "SELECT count(*) FROM founder_access_audit") == before  # refused before any audit


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (fdr.ListAllRunsRequest(page_size=0), "page_size"),
        (fdr.ListAllRunsRequest(page_size=201), "page_size"),
        (fdr.ListAllRunsRequest(state="RUNNING"), "state"),
        (fdr.ListAllRunsRequest(risk_level="HIGH"), "risk_level"),
        (fdr.ListAllRunsRequest(tenant_id=""), "tenant_id"),
        (fdr.ListAllRunsRequest(page_token="garbage"), "page_token"),
        (fdr.ListAllIncidentsRequest(lifecycle_state="OPEN"), "lifecycle_state"),
        (fdr.ListAllIncidentsRequest(severity="SEVERE"), "severity"),
    ],
)
async def test_bad_filters_name_the_field_before_any_audit(
    founder: Any, engines: dict[str, AsyncEngine], request_: Any, field: str
) -> None:
    me = f"op-{uuid.uuid4().hex[:8]}"
    call = founder.ListAllRuns if isinstance(request_, fdr.ListAllRunsRequest) else founder.ListAllIncidents
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call(request_, metadata=operator(me))
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT and field in refused.value.details()
    assert "INVALID_QUERY" in str(refused.value.trailing_metadata())
    assert await audits(engines, me) == []


async def test_timeline_of_a_live_then_a_failed_run(
    activity: Any, founder: Any, tenant: str, engines: dict[str, AsyncEngine]
) -> None:
    me = f"op-{uuid.uuid4().hex[:8]}"
    run = await new_run(activity, tenant)
    request = fdr.GetRunTimelineRequest(run_id=run.run_id)
    live = await founder.GetRunTimeline(request, metadata=operator(me))
    assert [e.entry_type for e in live.entries] == ["PRE_RUN", "OUTCOME"] and live.entry_count == 2
    assert live.tenant_id == tenant and live.entries[0].record["goal"] == "summarise"
    assert live.entries[1].record["status"] == "pending" and not live.entries[1].HasField("timestamp")

    done = await finish(activity, tenant, run.run_id, "failed", error_message="EXECUTION_TIMEOUT after 30s")
    ended = await founder.GetRunTimeline(request, metadata=operator(me))
    assert [e.entry_type for e in ended.entries] == ["PRE_RUN", "INCIDENT", "OUTCOME"]
    incident, outcome = ended.entries[1].record, ended.entries[2].record
    assert incident["incident_id"] == done.incident_ids[0] and incident["severity"] == "HIGH"
    assert outcome["status"] == "failed" and outcome["record"]["execution_status"] == "TIMEOUT"
    assert outcome["record"]["id"] == done.record_id
    timestamps = [e.timestamp.ToDatetime() for e in ended.entries]
    assert timestamps == sorted(timestamps)

    unknown = str(uuid.uuid4())
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await founder.GetRunTimeline(fdr.GetRunTimelineRequest(run_id=unknown), metadata=operator(me))
    assert missing.value.code() is grpc.StatusCode.NOT_FOUND
    rows = await audits(engines, me)
    assert [(r.rpc, r.tenant_id, r.target_id) for r in rows] == [
        ("GetRunTimeline", tenant, run.run_id),
        ("GetRunTimeline", tenant, run.run_id),
        ("GetRunTimeline", None, unknown),  # the attempt on an unknown run is audited too
    ]


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE founder_access_audit SET rpc = 'x' WHERE operator_id = :o",
        "DELETE FROM founder_access_audit WHERE operator_id = :o",
        "TRUNCATE founder_access_audit",
    ],
)
async def test_the_audit_is_write_once(founder: Any, engines: dict[str, AsyncEngine], statement: str) -> None:
    """M27 for the audit: the service's own role may not change or remove a row."""
    me = f"op-{uuid.uuid4().hex[:8]}"
    await founder.ListAllIncidents(fdr.ListAllIncidentsRequest(page_size=1), metadata=operator(me))
    with pytest.raises(Exception, match="permission denied"):
        await sql(engines, statement, o=me)
    assert [r.rpc for r in await audits(engines, me)] == ["ListAllIncidents"]
