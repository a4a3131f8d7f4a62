"""Activity through real Envoy, the gate and the services: attribution, derivations and order of the run lists,
the runs facade's strict query, signals with their feedback, activity metrics, and other tenants' projects,
parent runs and signals (MONITORING.md sections 2, 3, 5; M10, M11, M17-M19, M21-M24, M34)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.monitoring import policy
from tests.conftest import Gateway
from tests.e2e.test_gateway_monitoring import complete, connected

pytestmark = pytest.mark.e2e


async def ready(http: httpx.AsyncClient, gateway: Gateway) -> tuple[str, dict[str, str], dict[str, str]]:
    """A tenant at COMPLETE, its owner's token and a default key."""
    tenant, auth, key = await connected(http, gateway)
    await complete(http, gateway, tenant)
    return tenant, auth, key


async def run(http: httpx.AsyncClient, key: dict[str, str], **fields: Any) -> dict[str, Any]:
    reply = await http.post("/api/v1/runs", json={"agent_id": "a1", "goal": "g", **fields}, headers=key)
    assert reply.status_code == 201, reply.text
    return dict(reply.json())


async def finished(http: httpx.AsyncClient, key: dict[str, str], **completion: Any) -> dict[str, Any]:
    run_id = (await run(http, key))["run_id"]
    body = {"status": "succeeded", **completion}
    reply = await http.post(f"/v1/runs/{run_id}:complete", json=body, headers=key)
    assert reply.status_code == 200, reply.text
    return dict(reply.json()["run"])


async def execute(engines: dict[str, AsyncEngine], query: str, **params: Any) -> Any:
    async with engines["monitoring"].begin() as conn:
        result = await conn.execute(text(query), params)
        return result.all() if result.returns_rows else []


def reason(reply: httpx.Response) -> tuple[int, str, str]:
    """(status, ErrorInfo reason, the field the error names)."""
    details = reply.json().get("details", [{}])
    return reply.status_code, details[0].get("reason", ""), details[0].get("metadata", {}).get("field", "")


async def test_runs_attribution_derivations_and_order(
    http: httpx.AsyncClient, gateway: Gateway, engines: dict[str, AsyncEngine]
) -> None:
    tenant, auth, key = await ready(http, gateway)
    human = await run(http, key, actor_type="HUMAN", actor_id="u-1", origin_system_id="console")  # M10
    assert (human["actor_type"], human["actor_id"], human["origin_system_id"]) == ("HUMAN", "u-1", "console")
    for wrong, field in [
        ({"actor_type": "HUMAN", "origin_system_id": "console"}, "actor_id"),
        ({"actor_type": "SYSTEM", "actor_id": "u-1", "origin_system_id": "cron"}, "actor_id"),
        ({"actor_type": "human", "actor_id": "u-1", "origin_system_id": "console"}, "actor_type"),
    ]:
        refused = await http.post("/api/v1/runs", json={"agent_id": "a1", "goal": "g", **wrong}, headers=key)
        assert (refused.status_code, reason(refused)[2]) == (400, field), refused.text
    keyed = {"agent_id": "a1", "goal": "g", "idempotency_key": "k-1"}  # M11
    first = await http.post("/api/v1/runs", json=keyed, headers=key)
    again = await http.post("/api/v1/runs", json=keyed, headers=key)
    assert (first.status_code, again.status_code, again.json()["run_id"]) == (201, 200, first.json()["run_id"])
    assert (await http.post("/api/v1/runs", json={**keyed, "goal": "h"}, headers=key)).status_code == 409
    live = await http.get("/activity/live", headers=auth)
    assert live.json()["total"] == 2  # the refused ones wrote nothing

    derived = [  # M17 with the default thresholds
        ({"cost_cents": 400}, "risk_level", "NEAR_THRESHOLD"),
        ({"cost_cents": 500}, "risk_level", "AT_RISK"),
        ({"cost_cents": 600, "status": "failed"}, "risk_level", "VIOLATED"),
        ({"duration_ms": 45_000}, "latency_bucket", "SLOW"),
    ]
    for completion, field, value in derived:
        assert (await finished(http, key, **completion))[field] == value, completion
    silent = await run(http, key)
    await execute(
        engines, "UPDATE run SET last_seen_at = now() - interval '121 seconds' WHERE run_id = :r", r=silent["run_id"]
    )
    seen = (await http.get(f"/activity/runs/{silent['run_id']}", headers=auth)).json()
    assert (seen["latency_bucket"], seen["evidence_health"]) == ("STALLED", "DEGRADED")
    degraded = await http.get("/activity/live", params={"evidence_health": "DEGRADED"}, headers=auth)
    assert [r["run_id"] for r in degraded.json()["items"]] == [silent["run_id"]]

    twins = [(await run(http, key))["run_id"] for _ in range(2)]  # M21: equal started_at
    await execute(
        engines,
        "UPDATE run SET started_at = '2026-01-01T00:00:00Z' WHERE run_id = ANY(CAST(:ids AS uuid[]))",
        ids=twins,
    )
    orders = [[r["run_id"] for r in (await http.get("/activity/live", headers=auth)).json()["items"]] for _ in "abc"]
    # The oldest start (in the past: a future one would lead the founders' cross-tenant lists), tie broken by
    # run_id DESC, the same each time.
    assert orders[0][-2:] == sorted(twins, reverse=True) and orders[0] == orders[1] == orders[2]
    assert tenant


async def test_other_tenants_projects_and_parents_are_unknown(http: httpx.AsyncClient, gateway: Gateway) -> None:
    """M34: B's project or run named by A's CreateRun is the unknown-id 404, and nothing is written."""
    _, auth, key = await ready(http, gateway)
    _, other_auth, other_key = await ready(http, gateway)
    theirs = await http.post("/v1/projects", json={"name": "theirs"}, headers=other_auth)
    mine = await http.post("/v1/projects", json={"name": "mine"}, headers=auth)
    assert (theirs.status_code, mine.status_code) == (201, 201), theirs.text
    their_run = (await run(http, other_key))["run_id"]
    for fields in (
        {"project_id": theirs.json()["project_id"]},
        {"project_id": str(uuid.uuid4())},
        {"parent_run_id": their_run},
        {"parent_run_id": str(uuid.uuid4())},
    ):
        refused = await http.post("/api/v1/runs", json={"agent_id": "a1", "goal": "g", **fields}, headers=key)
        assert refused.status_code == 404, (fields, refused.text)
    assert (await http.get("/activity/live", headers=auth)).json()["total"] == 0
    parent = (await run(http, key))["run_id"]
    child = await run(http, key, project_id=mine.json()["project_id"], parent_run_id=parent)
    assert (child["project_id"], child["parent_run_id"]) == (mine.json()["project_id"], parent)
    in_project = await http.get("/activity/live", params={"project_id": mine.json()["project_id"]}, headers=auth)
    assert [r["run_id"] for r in in_project.json()["items"]] == [child["run_id"]]


async def test_the_runs_facade_and_its_strict_query(http: httpx.AsyncClient, gateway: Gateway) -> None:
    """M18, M19 on /cus/activity/runs: the service names what is wrong (the gateway hands it the query)."""
    _, auth, key = await ready(http, gateway)
    done = await finished(http, key, status="failed")
    live = (await run(http, key))["run_id"]
    for query, expected in [
        ("", (400, "INVALID_QUERY", "topic")),
        ("topic=foo", (400, "INVALID_QUERY", "topic")),
        ("topic=live&topic=completed", (400, "INVALID_QUERY", "topic")),
        ("topic=live&foo=1", (400, "INVALID_QUERY", "foo")),
        ("topic=live&status=failed", (400, "INVALID_QUERY", "status")),  # the other topic's filter
        ("topic=live&limit=1&limit=2", (400, "INVALID_QUERY", "limit")),
        ("topic=live&as_of=2026-01-01T00:00:00Z", (400, "UNSUPPORTED_PARAM", "as_of")),
        ("as_of=x", (400, "UNSUPPORTED_PARAM", "as_of")),
        ("topic=live&limit=0", (400, "INVALID_QUERY", "limit")),  # M19
        ("topic=live&limit=201", (400, "INVALID_QUERY", "limit")),
        ("topic=live&offset=-1", (400, "INVALID_QUERY", "offset")),
        ("topic=completed&completed_after=2026-01-01T00:00:00", (400, "INVALID_QUERY", "completed_after")),
        (
            "topic=completed&completed_after=2026-02-01T00:00:00Z&completed_before=2026-01-01T00:00:00Z",
            (400, "INVALID_QUERY", "completed_after"),
        ),
    ]:
        for path in ("/cus/activity/runs", "/v1/cus/activity/runs"):
            reply = await http.get(f"{path}?{query}", headers=auth)
            assert reason(reply) == expected, (path, query, reply.text)

    headers = {**auth, "X-Correlation-ID": "corr-1"}
    reply = await http.get("/cus/activity/runs?topic=completed&status=failed&limit=5", headers=headers)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert (body["topic"], [r["run_id"] for r in body["runs"]], body["total"]) == ("completed", [done["run_id"]], 1)
    assert body["meta"] == {"request_id": reply.headers["x-request-id"], "correlation_id": "corr-1", "as_of": None}
    assert body["pagination"] == {"limit": 5, "offset": 0, "next_offset": None} and body["has_more"] is False
    lives = (await http.get("/v1/cus/activity/runs", params={"topic": "live", "limit": 1}, headers=key)).json()
    assert ([r["run_id"] for r in lives["runs"]], lives["pagination"]["next_offset"]) == ([live], None)


def signal_body(tenant: str, run_id: str, signal_type: str, **extra: Any) -> tuple[str, dict[str, Any]]:
    return policy.fingerprint(tenant, run_id, signal_type), {"run_id": run_id, "signal_type": signal_type, **extra}


async def test_signals_feedback_and_metrics(
    http: httpx.AsyncClient, gateway: Gateway, engines: dict[str, AsyncEngine]
) -> None:
    tenant, auth, key = await ready(http, gateway)
    times = [(await finished(http, key, duration_ms=600_000))["run_id"] for _ in range(3)]
    costs = [(await finished(http, key, cost_cents=500))["run_id"] for _ in range(2)]
    page = (await http.get("/activity/signals", params={"signal_type": "time_risk", "limit": 1}, headers=auth)).json()
    assert (page["total"], len(page["items"]), page["items"][0]["signal_type"]) == (3, 1, "time_risk")  # M24
    assert page["items"][0]["feedback"] is None and page["pagination"]["next_offset"] == 1

    fp, body = signal_body(tenant, costs[0], "cost_risk", comment="on it")  # M22
    member = await gateway.member(http, auth, tenant, "member")
    first = await http.post(f"/activity/signals/{fp}/ack", json=body, headers=member)
    assert first.status_code == 200, first.text
    again = await http.post(f"/v1/signals/{fp}:acknowledge", json=body, headers=auth)
    assert again.status_code == 200 and again.json()["acknowledged_at"] == first.json()["acknowledged_at"]
    listed = (await http.get("/v1/activity/signals", params={"signal_type": "cost_risk"}, headers=auth)).json()
    by_run = {s["run_id"]: s for s in listed["items"]}
    assert by_run[costs[0]]["signal_fingerprint"] != by_run[costs[1]]["signal_fingerprint"]
    assert by_run[costs[1]]["feedback"] is None and [s["run_id"] for s in listed["items"]] == [costs[1], costs[0]]
    assert by_run[costs[0]]["feedback"]["acknowledged_at"] == first.json()["acknowledged_at"]
    rows = await execute(engines, "SELECT count(*) AS n FROM signal_feedback WHERE tenant_id = :t", t=tenant)
    events = await execute(
        engines, "SELECT count(*) AS n FROM event WHERE tenant_id = :t AND event_type = 'signal.acknowledged'", t=tenant
    )
    assert (rows[0].n, events[0].n) == (1, 1)
    viewer = await gateway.member(http, auth, tenant, "viewer")
    refused = await http.post(f"/activity/signals/{fp}/ack", json=body, headers=viewer)
    assert reason(refused)[:2] == (403, "ROLE_REQUIRED")

    fp, body = signal_body(tenant, times[0], "time_risk")  # M23
    for minutes in (14, 1441):
        bad = await http.post(
            f"/activity/signals/{fp}/suppress", json={**body, "duration_minutes": minutes}, headers=auth
        )
        assert reason(bad) == (400, "INVALID_DURATION", "duration_minutes"), bad.text
    hidden = await http.post(f"/v1/signals/{fp}:suppress", json={**body, "duration_minutes": 60}, headers=auth)
    assert hidden.status_code == 200 and hidden.json()["signal_fingerprint"] == fp, hidden.text
    after = (await http.get("/activity/signals", params={"signal_type": "time_risk"}, headers=auth)).json()
    assert after["total"] == 2 and times[0] not in {s["run_id"] for s in after["items"]}

    other, other_auth, _ = await ready(http, gateway)  # M34: A's signal is unknown to B, B's fingerprint to A
    theirs = await http.post(f"/activity/signals/{fp}/ack", json=body, headers=other_auth)
    mismatched = await http.post(
        f"/activity/signals/{policy.fingerprint(other, times[1], 'time_risk')}/ack", json=body, headers=auth
    )
    assert (theirs.status_code, mismatched.status_code) == (404, 404), theirs.text
    assert (await http.get("/activity/signals", headers=other_auth)).json()["total"] == 0
    for params in ({"window_hours": 0}, {"window_hours": 721}, {"severity": "SEVERE"}, {"limit": 101}):
        assert reason(await http.get("/activity/signals", params=params, headers=auth))[:2] == (400, "INVALID_QUERY")

    metrics = (await http.get("/activity/metrics", headers=auth)).json()
    assert (metrics["live"]["total"], metrics["completed_24h"]["total"]) == (0, 5)
    assert metrics["completed_24h"]["by_risk_type"] == {"COST": 2, "TOKENS": 0, "TIME": 3}
    assert metrics["completed_24h"]["by_risk_level"]["AT_RISK"] == 5
