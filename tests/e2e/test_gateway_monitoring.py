"""Monitoring's REST surface through real Envoy and the gate: the SDK's legacy run and telemetry URLs, the
console's topics, states, scopes, members' roles, strict queries and tenant isolation (MONITORING.md sections
2, 3, 7; M1, M4-M6, M9, M11, M12, M18-M20, M32, M34)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from tests.conftest import GATE_CACHE_SECONDS, Gateway

pytestmark = pytest.mark.e2e
HELLO = {"sdk_version": "1.2.0", "sdk_language": "python"}


async def signup(http: httpx.AsyncClient, gateway: Gateway) -> tuple[str, dict[str, str]]:
    user = f"owner-{time.monotonic_ns()}"
    reply = await http.post("/v1/tenants", json={"name": "Runs Inc"}, headers=gateway.token(user))
    assert reply.status_code == 201, reply.text
    tenant = reply.json()["tenant"]["tenant_id"]
    return tenant, gateway.token(user, tenant=tenant)


async def new_key(http: httpx.AsyncClient, auth: dict[str, str], **fields: Any) -> str:
    reply = await http.post("/tenant/api-keys", json={"name": "sdk", **fields}, headers=auth)
    assert reply.status_code == 201, reply.text
    return str(reply.json()["key"])


async def connected(http: httpx.AsyncClient, gateway: Gateway) -> tuple[str, dict[str, str], dict[str, str]]:
    """A tenant at SDK_CONNECTED, its owner's token and a default key."""
    tenant, auth = await signup(http, gateway)
    key = {"X-AOS-Key": await new_key(http, auth)}
    assert (await http.post("/sdk/handshake", json=HELLO, headers=key)).status_code == 200
    return tenant, auth, key


async def complete(http: httpx.AsyncClient, gateway: Gateway, tenant: str) -> None:
    founder = gateway.token("founder", operator=True)
    body = {"tenant_id": tenant, "reason": "monitoring tests"}
    assert (await http.post("/fdr/onboarding/force-complete", json=body, headers=founder)).status_code == 200
    await asyncio.sleep(GATE_CACHE_SECONDS + 0.1)


async def test_the_sdks_runs_from_create_to_incident(http: httpx.AsyncClient, gateway: Gateway) -> None:
    tenant, auth = await signup(http, gateway)
    secret = await new_key(http, auth)
    key = {"X-AOS-Key": secret}
    early = await http.post("/api/v1/runs", json={"agent_id": "a1", "goal": "g"}, headers=key)  # M32
    assert early.status_code == 403 and early.json()["required_state"] == "SDK_CONNECTED", early.text
    assert (await http.post("/sdk/handshake", json=HELLO, headers=key)).status_code == 200

    body = {"agent_id": "a1", "goal": "summarise", "plan": [{"skill": "llm"}]}
    forged = {**key, "x-aos-key-prefix": "forged"}  # caller headers are the gateway's: a client's is dropped
    created = await http.post("/api/v1/runs", json=body, headers=forged)  # M9: the aos-sdk 0.1.0 request
    assert created.status_code == 201, created.text
    run = created.json()
    assert (run["status"], run["state"], run["actor_type"], run["plan"]) == ("running", "LIVE", "SERVICE", body["plan"])
    assert run["origin_system_id"] == f"sdk:{secret[:12]}"
    read = await http.get(f"/api/v1/runs/{run['run_id']}", headers=key)
    assert read.status_code == 200 and read.json()["run_id"] == run["run_id"] and read.json()["goal"] == "summarise"
    assert (await http.get(f"/v1/runs/{run['run_id']}", headers=key)).json()["run_id"] == run["run_id"]

    keyed = {**body, "idempotency_key": "once"}  # M11
    first = await http.post("/v1/runs", json=keyed, headers=key)
    again = await http.post("/api/v1/runs", json=keyed, headers=key)
    assert (first.status_code, again.status_code) == (201, 200) and again.json()["run_id"] == first.json()["run_id"]
    reused = await http.post("/api/v1/runs", json={**keyed, "goal": "other"}, headers=key)
    assert reused.status_code == 409

    gated = await http.get("/activity/live", headers=key)  # customer reads need COMPLETE (M32)
    assert gated.status_code == 403 and gated.json()["required_state"] == "COMPLETE"
    await complete(http, gateway, tenant)
    live = await http.get("/activity/live", params={"limit": 10}, headers=auth)
    assert live.status_code == 200, live.text
    assert live.json()["total"] == 2 and live.json()["pagination"] == {"limit": 10, "offset": 0, "next_offset": None}
    assert {r["run_id"] for r in live.json()["items"]} == {run["run_id"], first.json()["run_id"]}

    failed = {"status": "failed", "error_message": "EXECUTION_TIMEOUT after 30s"}  # M12
    done = await http.post(f"/v1/runs/{run['run_id']}:complete", json=failed, headers=key)
    assert done.status_code == 200, done.text
    (incident_id,) = done.json()["incident_ids"]
    conflict = await http.post(f"/v1/runs/{run['run_id']}:complete", json={"status": "succeeded"}, headers=key)
    assert conflict.status_code == 409, conflict.text  # M16
    beat = await http.post(f"/v1/runs/{run['run_id']}:heartbeat", json={}, headers=key)
    assert beat.status_code == 409

    active = (await http.get("/incidents/active", headers=auth)).json()  # the fixed segment, not /incidents/{id}
    assert [i["incident_id"] for i in active["items"]] == [incident_id]
    incident = active["items"][0]
    assert (incident["severity"], incident["lifecycle_state"], incident["llm_run_id"]) == (
        "HIGH",
        "ACTIVE",
        run["run_id"],
    )
    assert incident["policy_ref"] is None and incident["title"] == f"Execution Timeout: Run {run['run_id'][:8]}"
    one = await http.get(f"/incidents/{incident_id}", headers=auth)
    assert one.status_code == 200 and one.json()["incident"]["incident_id"] == incident_id
    by_run = (await http.get(f"/incidents/by-run/{run['run_id']}", headers=auth)).json()
    assert (by_run["total"], by_run["run_id"]) == (1, run["run_id"])
    assert (await http.get("/incidents/resolved", headers=auth)).json()["total"] == 0
    acked = await http.post(f"/v1/incidents/{incident_id}:acknowledge", json={"note": "mine"}, headers=auth)
    assert acked.status_code == 200 and acked.json()["incident"]["lifecycle_state"] == "ACKED"
    detail = (await http.get(f"/activity/runs/{run['run_id']}", headers=auth)).json()
    assert (detail["state"], detail["incident_count"], detail["status"]) == ("COMPLETED", 1, "failed")
    completed = (await http.get("/v1/activity/completed", headers=auth)).json()
    assert [r["run_id"] for r in completed["items"]] == [run["run_id"]] and completed["next_page_token"] == ""
    summary = (await http.get("/activity/summary/by-status", headers=auth)).json()
    assert summary["total_runs"] == 2 and {b["status"] for b in summary["buckets"]} == {"failed", "running"}


async def test_monitoring_checks_the_role_account_holds_for_the_member(
    http: httpx.AsyncClient, gateway: Gateway
) -> None:
    """Roles are no token claim: the edge reads each member's from account (AddMember) and monitoring checks
    it. Viewers read, members also acknowledge, only owners and admins change thresholds."""
    tenant, auth, key = await connected(http, gateway)
    await complete(http, gateway, tenant)
    run_id = (await http.post("/api/v1/runs", json={"agent_id": "a", "goal": "g"}, headers=key)).json()["run_id"]
    failed = await http.post(f"/v1/runs/{run_id}:complete", json={"status": "failed"}, headers=key)
    (incident_id,) = failed.json()["incident_ids"]
    viewer, member, admin = [await gateway.member(http, auth, tenant, role) for role in ("viewer", "member", "admin")]

    listed = await http.get("/incidents/active", headers=viewer)
    assert listed.status_code == 200 and [i["incident_id"] for i in listed.json()["items"]] == [incident_id]
    ack = f"/v1/incidents/{incident_id}:acknowledge"
    for auth_, path, method, body in [
        (viewer, ack, "POST", {}),
        (member, "/v1/monitoring/thresholds", "PATCH", {"run_tokens": 5}),
    ]:
        refused = await http.request(method, path, json=body, headers=auth_)
        assert refused.status_code == 403 and refused.json()["details"][0]["reason"] == "ROLE_REQUIRED", refused.text
    acked = await http.post(ack, json={"note": "mine"}, headers=member)
    assert acked.status_code == 200 and acked.json()["incident"]["lifecycle_state"] == "ACKED", acked.text
    changed = await http.patch("/v1/monitoring/thresholds", json={"run_tokens": 5}, headers=admin)
    assert changed.status_code == 200 and changed.json()["thresholds"]["run_tokens"] == 5, changed.text


async def test_strict_queries_and_other_tenants_ids(http: httpx.AsyncClient, gateway: Gateway) -> None:
    tenant, auth, key = await connected(http, gateway)
    await complete(http, gateway, tenant)
    run_id = (await http.post("/api/v1/runs", json={"agent_id": "a", "goal": "g"}, headers=key)).json()["run_id"]
    for path, params, reason in [  # M18, M19
        ("/activity/live", {"limit": 0}, "INVALID_QUERY"),
        ("/activity/live", {"limit": 201}, "INVALID_QUERY"),
        ("/activity/live", {"offset": -1}, "INVALID_QUERY"),
        ("/activity/live", {"risk_level": "HIGH"}, "INVALID_QUERY"),
        ("/activity/live", {"as_of": "2026-01-01T00:00:00Z"}, "UNSUPPORTED_PARAM"),
        ("/activity/completed", {"completed_after": "2026-01-01T00:00:00"}, "INVALID_QUERY"),
        ("/incidents/active", {"severity": "SEVERE"}, "INVALID_QUERY"),
    ]:
        reply = await http.get(path, params=params, headers=auth)
        assert reply.status_code == 400 and reply.json()["details"][0]["reason"] == reason, (path, params, reply.text)
    for query in ("foo=1", "limit=1&limit=2", "sort_by=started_at&sort_by=duration_ms"):
        refused = await http.get(f"/activity/completed?{query}", headers=auth)  # unknown or repeated: the transcoder
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_request", (query, refused.text)

    other, other_auth, other_key = await connected(http, gateway)  # M34
    await complete(http, gateway, other)
    for reply in (
        await http.get(f"/api/v1/runs/{run_id}", headers=other_key),
        await http.get(f"/activity/runs/{run_id}", headers=other_auth),
        await http.get(f"/incidents/by-run/{run_id}", headers=other_auth),
        await http.post(f"/v1/runs/{run_id}:complete", json={"status": "failed"}, headers=other_key),
    ):
        assert reply.status_code == 404, reply.text
    assert (await http.get(f"/api/v1/runs/{run_id}", headers=key)).json()["state"] == "LIVE"


async def test_the_reporters_telemetry(http: httpx.AsyncClient, gateway: Gateway) -> None:
    _, auth, key = await connected(http, gateway)
    writer = {"X-AOS-Key": await new_key(http, auth, permissions=["telemetry:write", "integrations:read"])}
    usage = {
        "call_id": "c1",
        "provider": "openai",
        "model": "gpt-4o",
        "tokens_in": 10,
        "tokens_out": 5,
        "cost_cents": 2,
    }
    created = await http.post(
        "/integrations", json={"name": "llm", "provider_type": "openai", "credential": "sk-x"}, headers=auth
    )
    usage["integration_id"] = created.json()["data"]["id"]  # a real one: ingest asks integrations
    first = await http.post("/api/v1/telemetry/llm-usage", json=usage, headers=writer)  # M1
    assert first.status_code == 200, first.text
    assert (first.json()["status"], first.json()["success"], first.json()["data"]["status"]) == (
        "accepted",
        True,
        "accepted",
    )
    # A client cannot pose as an integration key's caller: its x-aos-integration-id is dropped at the edge.
    again = await http.post("/telemetry/llm-usage", json=usage, headers={**writer, "x-aos-integration-id": "J"})
    assert (again.json()["status"], again.json()["id"]) == ("duplicate", first.json()["id"])
    refused = await http.post("/v1/telemetry/llm-usage", json={**usage, "call_id": "c9"}, headers=key)  # M6
    assert refused.status_code == 403, refused.text

    records = [{**usage, "call_id": "c2"}, usage, {**usage, "call_id": "c2"}]  # M4 (without an integration key)
    batch = await http.post("/api/v1/telemetry/llm-usage/batch", json={"records": records}, headers=writer)
    assert batch.status_code == 200, batch.text
    counts = batch.json()
    assert (counts["accepted"], counts["duplicates"], counts["errors"], counts["total"]) == (1, 2, 0, 3)
    for bad, field in [  # M5
        ({"records": []}, "records"),
        ({"records": [usage] * 101}, "records"),
        ({"records": [usage, {**usage, "call_id": "n", "tokens_in": -1}]}, "records[1].tokens_in"),
        ({"records": [{**usage, "policy_result": "maybe"}]}, "records[0].policy_result"),
        ({"records": [{**usage, "call_id": "x" * 101}]}, "records[0].call_id"),
    ]:
        reply = await http.post("/telemetry/llm-usage/batch", json=bad, headers=writer)
        assert reply.status_code == 400 and reply.json()["details"][1]["field_violations"][0]["field"] == field
    for mistyped in ({**usage, "cost_cents": 1.5}, {**usage, "tokens_in": True}):
        reply = await http.post("/api/v1/telemetry/llm-usage", json=mistyped, headers=writer)
        assert reply.status_code == 400, reply.text  # the transcoder refuses fractions and booleans for integers
