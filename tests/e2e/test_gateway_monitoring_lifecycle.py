"""Monitoring through real Envoy and the gate across the tenant's lifecycle and in its event log: a suspended
tenant reads but cannot write, a terminated one cannot read, and writes commit SPEC section 8 events gaplessly
per (tenant, project) or not at all (MONITORING.md 0.6, 0.11, 8; M33, M35)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from google.protobuf import json_format
from sqlalchemy.ext.asyncio import AsyncEngine

from aos.events.v1 import events_service_pb2, events_service_pb2_grpc
from services.common import events
from tests.conftest import Channels, Gateway, eventually, service
from tests.e2e.test_gateway_monitoring import complete, connected
from tests.monitoring.conftest import event_types, sql

pytestmark = pytest.mark.e2e
FAILED = {"status": "failed", "error_message": "EXECUTION_TIMEOUT after 30s"}


async def failed_run(http: httpx.AsyncClient, key: dict[str, str], **fields: Any) -> tuple[str, str]:
    """A run created and failed with the key: (run_id, incident_id)."""
    created = await http.post("/api/v1/runs", json={"agent_id": "a1", "goal": "g", **fields}, headers=key)
    assert created.status_code == 201, created.text
    run_id = created.json()["run_id"]
    done = await http.post(f"/v1/runs/{run_id}:complete", json=FAILED, headers=key)
    assert done.status_code == 200, done.text
    return run_id, done.json()["incident_ids"][0]


async def lifecycle(engines: dict[str, AsyncEngine], tenant: str, status: str) -> None:
    """Monitoring has mirrored account's tenant event (it follows account's log)."""

    async def mirrored() -> str | None:
        rows = await sql(engines, "SELECT status FROM tenant_lifecycle WHERE tenant_id = :t", t=tenant)
        return rows[0].status if rows else None

    await eventually(mirrored, until=lambda s: s == status, within=10, what=f"tenant {status} in monitoring")


async def test_suspended_tenants_read_but_do_not_write_and_terminated_ones_do_not_read(
    http: httpx.AsyncClient, gateway: Gateway, engines: dict[str, AsyncEngine]
) -> None:
    """M33: SUSPENDED: the owner reads (200), acknowledging is 403 LIFECYCLE_BLOCKED (allowed ACTIVE) and writes
    nothing, the key is refused (401); TERMINATED: the owner's reads are 403."""
    tenant, owner, key = await connected(http, gateway)
    await complete(http, gateway, tenant)
    run_id, incident_id = await failed_run(http, key)
    founder = gateway.token("founder", operator=True)
    suspended = await http.post(f"/v1/tenants/{tenant}:suspend", json={"reason": "unpaid"}, headers=founder)
    assert suspended.status_code == 200, suspended.text
    await lifecycle(engines, tenant, "suspended")
    before = await event_types(engines, tenant)

    active = await http.get("/incidents/active", headers=owner)
    assert active.status_code == 200 and [i["incident_id"] for i in active.json()["items"]] == [incident_id]
    assert (await http.get(f"/activity/runs/{run_id}", headers=owner)).json()["state"] == "COMPLETED"
    ack = await http.post(f"/v1/incidents/{incident_id}:acknowledge", json={"note": "mine"}, headers=owner)
    assert ack.status_code == 403, ack.text
    (info,) = [d for d in ack.json()["details"] if d.get("reason")]
    assert (info["reason"], info["metadata"]) == (
        "LIFECYCLE_BLOCKED",
        {"state": "SUSPENDED", "allowed_states": "ACTIVE"},
    )
    assert await event_types(engines, tenant) == before  # nothing written
    (row,) = await sql(engines, "SELECT lifecycle_state FROM incident WHERE incident_id = :i", i=incident_id)
    assert row.lifecycle_state == "ACTIVE"

    async def key_read() -> int:  # a suspended tenant's keys fail verification once the gate's cache moves on
        return (await http.get(f"/api/v1/runs/{run_id}", headers=key)).status_code

    await eventually(key_read, until=lambda status: status == 401, within=10)

    terminated = await http.post(f"/v1/tenants/{tenant}:terminate", json={}, headers=founder)
    assert terminated.status_code == 200, terminated.text
    await lifecycle(engines, tenant, "terminated")
    for path in ("/incidents/active", f"/activity/runs/{run_id}", "/activity/live"):
        refused = await http.get(path, headers=owner)
        assert refused.status_code == 403, (path, refused.text)
    assert await event_types(engines, tenant) == before


async def test_writes_commit_spec_events_in_sequence_or_roll_back(
    http: httpx.AsyncClient,
    gateway: Gateway,
    channels: Channels,
    running: dict[str, Any],
    engines: dict[str, AsyncEngine],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """M35: a run of a project, failed, and its incident acknowledged, through the gateway: run.created,
    incident.created, run.completed, incident.acknowledged with SPEC section 8's fields, sequence_no 1-4 in
    the project's stream. With event validation forced to fail, the completion answers 500 and nothing stays."""
    tenant, owner, key = await connected(http, gateway)
    await complete(http, gateway, tenant)
    made = await http.post("/accounts/projects", json={"name": "events"}, headers=owner)
    assert made.status_code == 201, made.text
    project = made.json()["project_id"]
    run_id, incident_id = await failed_run(http, key, project_id=project)
    acked = await http.post(f"/v1/incidents/{incident_id}:acknowledge", json={"note": "mine"}, headers=owner)
    assert acked.status_code == 200, acked.text

    # monitoring's log, read as a service its rule names would (the consumers of section 8).
    log = channels.stub(events_service_pb2_grpc.EventLogServiceStub, running["monitoring"], "onboarding")
    request = events_service_pb2.ListEventsRequest(tenant_id=tenant, page_size=100)
    listed = (await log.ListEvents(request, metadata=service(), timeout=10)).events
    assert [(e.event_type, e.project_id, e.sequence_no) for e in listed] == [
        ("run.created", project, 1),
        ("incident.created", project, 2),
        ("run.completed", project, 3),
        ("incident.acknowledged", project, 4),
    ]
    for event in listed:
        assert event.decision_owner == "monitoring" and event.tenant_id == tenant and event.schema_version
        assert event.event_id and event.occurred_at.seconds > 0
    assert (listed[0].actor_type, listed[3].actor_type) == ("sdk", "user") and listed[0].actor_id
    payloads = [json_format.MessageToDict(e.payload) for e in listed]
    assert payloads[0]["run_id"] == run_id and payloads[2]["status"] == "failed"
    assert payloads[2]["incident_ids"] == [incident_id] and payloads[1]["incident_id"] == incident_id
    assert payloads[3]["lifecycle_state"] == "ACKED"

    # The services run in this process: break the validator, and the completion's transaction rolls back.
    created = await http.post("/api/v1/runs", json={"agent_id": "a1", "goal": "g", "project_id": project}, headers=key)
    doomed = created.json()["run_id"]
    monkeypatch.setattr(events, "validate", lambda event: ["missing: forced"])
    refused = await http.post(f"/v1/runs/{doomed}:complete", json=FAILED, headers=key)
    monkeypatch.undo()
    assert refused.status_code == 500, refused.text
    assert (await http.get(f"/api/v1/runs/{doomed}", headers=key)).json()["state"] == "LIVE"
    assert (await http.get(f"/incidents/by-run/{doomed}", headers=owner)).json()["total"] == 0
    after = (await log.ListEvents(request, metadata=service(), timeout=10)).events
    assert [(e.event_type, e.sequence_no) for e in after][4:] == [("run.created", 5)]  # no gap, nothing else
