"""Incident lifecycle and topics against the real service (MONITORING.md section 4; M12, M14, M34)."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from aos.monitoring.v1 import monitoring_service_pb2 as rpc
from tests.conftest import human
from tests.monitoring.conftest import event_types, finish, key, new_run, sql


async def failed_run(activity: Any, tenant: str, code: str = "STEP_FAILURE") -> str:
    run = await new_run(activity, tenant)
    (incident_id,) = (await finish(activity, tenant, run.run_id, "failed", error_code=code)).incident_ids
    return str(incident_id)


async def test_acknowledge_then_resolve_with_no_op_repeats(
    activity: Any, incidents: Any, tenant: str, engines: dict[str, AsyncEngine]
) -> None:
    incident_id = await failed_run(activity, tenant)
    owner = human(tenant, user="u-owner")
    ack = rpc.AcknowledgeIncidentRequest(incident_id=incident_id, note="looking")
    acked = (await incidents.AcknowledgeIncident(ack, metadata=owner)).incident
    assert (acked.lifecycle_state, acked.acked_by, acked.ack_note) == ("ACKED", "u-owner", "looking")
    again = (await incidents.AcknowledgeIncident(ack, metadata=owner)).incident
    assert again.acked_at == acked.acked_at  # a done move repeated: a no-op
    active = await incidents.ListActiveIncidents(rpc.ListActiveIncidentsRequest(), metadata=owner)
    assert [i.incident_id for i in active.items] == [incident_id]  # ACKED is still active
    resolve = rpc.ResolveIncidentRequest(incident_id=incident_id, resolution_notes="fixed")
    resolved = (await incidents.ResolveIncident(resolve, metadata=owner)).incident
    assert resolved.lifecycle_state == "RESOLVED" and resolved.resolution_method == "manual" and resolved.resolved_at
    assert (await incidents.ResolveIncident(resolve, metadata=owner)).incident.resolved_at == resolved.resolved_at
    with pytest.raises(grpc.aio.AioRpcError) as conflict:
        await incidents.AcknowledgeIncident(ack, metadata=owner)
    assert conflict.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert (await incidents.ListActiveIncidents(rpc.ListActiveIncidentsRequest(), metadata=owner)).total == 0
    done = await incidents.ListResolvedIncidents(rpc.ListResolvedIncidentsRequest(), metadata=owner)
    assert [i.incident_id for i in done.items] == [incident_id] and done.items[0].policy_ref.HasField("null_value")
    kinds = await event_types(engines, tenant)
    assert kinds[-2:] == ["incident.acknowledged", "incident.resolved"] and kinds.count("incident.acknowledged") == 1


async def test_racing_acknowledgements_move_once(activity: Any, incidents: Any, tenant: str, engines: Any) -> None:
    incident_id = await failed_run(activity, tenant)
    ack = rpc.AcknowledgeIncidentRequest(incident_id=incident_id)
    await asyncio.gather(*(incidents.AcknowledgeIncident(ack, metadata=key(tenant)) for _ in range(6)))
    assert (await event_types(engines, tenant)).count("incident.acknowledged") == 1


async def test_viewers_read_but_cannot_move_incidents(activity: Any, incidents: Any, tenant: str) -> None:
    incident_id = await failed_run(activity, tenant)
    viewer = human(tenant, role="viewer")
    got = await incidents.GetIncident(rpc.GetIncidentRequest(incident_id=incident_id), metadata=viewer)
    assert got.incident.incident_id == incident_id
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await incidents.AcknowledgeIncident(rpc.AcknowledgeIncidentRequest(incident_id=incident_id), metadata=viewer)
    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED and "ROLE_REQUIRED" in str(
        refused.value.trailing_metadata()
    )


async def test_another_tenants_incident_is_unknown_and_unchanged(
    activity: Any, incidents: Any, tenant: str, engines: Any
) -> None:
    theirs = await failed_run(activity, f"other-{tenant}")  # M34
    mine = key(tenant)
    calls = [
        incidents.GetIncident(rpc.GetIncidentRequest(incident_id=theirs), metadata=mine),
        incidents.AcknowledgeIncident(rpc.AcknowledgeIncidentRequest(incident_id=theirs), metadata=mine),
        incidents.ResolveIncident(rpc.ResolveIncidentRequest(incident_id=theirs), metadata=mine),
        incidents.GetIncident(rpc.GetIncidentRequest(incident_id="inc_bad"), metadata=mine),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await call
        assert missing.value.code() is grpc.StatusCode.NOT_FOUND
    (row,) = await sql(engines, "SELECT lifecycle_state FROM incident WHERE incident_id = :i", i=theirs)
    assert row.lifecycle_state == "ACTIVE"


async def test_incidents_by_run(activity: Any, incidents: Any, tenant: str) -> None:
    run = await new_run(activity, tenant)
    (incident_id,) = (await finish(activity, tenant, run.run_id, "aborted")).incident_ids
    by_run = await incidents.ListIncidentsByRun(rpc.ListIncidentsByRunRequest(run_id=run.run_id), metadata=key(tenant))
    assert (by_run.run_id, by_run.total, [i.incident_id for i in by_run.incidents]) == (run.run_id, 1, [incident_id])
    theirs = await new_run(activity, f"other-{tenant}")
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await incidents.ListIncidentsByRun(rpc.ListIncidentsByRunRequest(run_id=theirs.run_id), metadata=key(tenant))
    assert missing.value.code() is grpc.StatusCode.NOT_FOUND


async def test_topic_filters_sorts_and_pages(activity: Any, incidents: Any, tenant: str) -> None:
    ids = [await failed_run(activity, tenant, code) for code in ("AGENT_CRASH", "CANCELLED", "STEP_FAILURE")]
    me = key(tenant)
    newest = await incidents.ListActiveIncidents(rpc.ListActiveIncidentsRequest(page_size=2), metadata=me)
    assert [i.incident_id for i in newest.items] == ids[:0:-1] and newest.has_more and newest.next_page_token
    rest = await incidents.ListActiveIncidents(
        rpc.ListActiveIncidentsRequest(page_size=2, page_token=newest.next_page_token), metadata=me
    )
    assert [i.incident_id for i in rest.items] == ids[:1] and not rest.has_more and rest.next_page_token == ""
    high = await incidents.ListActiveIncidents(
        rpc.ListActiveIncidentsRequest(severity=["CRITICAL", "HIGH"]), metadata=me
    )
    assert {i.incident_id for i in high.items} == {ids[0], ids[2]} and high.total == 2
    by_severity = await incidents.ListActiveIncidents(
        rpc.ListActiveIncidentsRequest(sort_by="severity", limit=3), metadata=me
    )
    assert [i.severity for i in by_severity.items] == ["CRITICAL", "HIGH", "LOW"]
    for bad, field in [
        ({"severity": ["SEVERE"]}, "severity"),
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"offset": -1}, "offset"),
        ({"created_after": "2026-01-01T00:00:00"}, "created_after"),
        ({"created_after": "2026-02-01T00:00:00Z", "created_before": "2026-01-01T00:00:00Z"}, "created_after"),
        ({"sort_by": "title"}, "sort_by"),
        ({"as_of": "2026-01-01T00:00:00Z"}, "as_of"),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await incidents.ListActiveIncidents(rpc.ListActiveIncidentsRequest(**bad), metadata=me)
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT and field in refused.value.details()
