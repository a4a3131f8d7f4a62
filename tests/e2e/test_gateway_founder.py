"""Founder review and the incident topics through real Envoy and the gate (MONITORING.md 0.3, 0.9, sections 2
and 4): operators' cross-tenant lists and run timeline behind a committed audit row, failing open (M30, M31);
the historical topic, incident metrics, fixed segments beating /incidents/{incident_id}, and the incident
facade's strict query (M18 for /cus/incidents/list)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common import server
from tests.common.test_metrics import scrape, value
from tests.conftest import Gateway
from tests.e2e.test_gateway_monitoring import complete, connected
from tests.monitoring.conftest import sql

pytestmark = pytest.mark.e2e
FAILURES = "aos_monitoring_founder_audit_failures_total"


async def customer(http: httpx.AsyncClient, gateway: Gateway) -> tuple[str, dict[str, str], dict[str, str]]:
    """A tenant at COMPLETE, its owner's token and a default key."""
    tenant, auth, key = await connected(http, gateway)
    await complete(http, gateway, tenant)
    return tenant, auth, key


async def failed_run(http: httpx.AsyncClient, key: dict[str, str], message: str = "") -> tuple[str, str]:
    run_id = (await http.post("/api/v1/runs", json={"agent_id": "a", "goal": "g"}, headers=key)).json()["run_id"]
    done = await http.post(
        f"/v1/runs/{run_id}:complete", json={"status": "failed", "error_message": message}, headers=key
    )
    assert done.status_code == 200, done.text
    return run_id, done.json()["incident_ids"][0]


async def audits(engines: dict[str, AsyncEngine], operator_id: str) -> list[Any]:
    query = "SELECT * FROM founder_access_audit WHERE operator_id = :o ORDER BY created_at, id"
    return await sql(engines, query, o=operator_id)


@pytest.fixture
async def metrics_port(running: dict[str, server.Service]) -> int:
    """The in-process monitoring's /metrics (the gateway's upstream), served from the first test that asks."""
    svc = running["monitoring"]
    if not svc.metrics_port:
        svc.metrics_port = await svc.metrics.serve("127.0.0.1", 0)
    return svc.metrics_port


@contextlib.asynccontextmanager
async def audit_refused(engines: dict[str, AsyncEngine]) -> AsyncIterator[None]:
    """The service's own role loses INSERT on the audit table for the block: every audit write fails for real."""
    await sql(engines, "REVOKE INSERT ON founder_access_audit FROM CURRENT_USER")
    try:
        yield
    finally:
        await sql(engines, "GRANT INSERT ON founder_access_audit TO CURRENT_USER")


async def test_operators_list_every_tenants_runs_after_an_audit_row(
    http: httpx.AsyncClient, gateway: Gateway, engines: dict[str, AsyncEngine]
) -> None:
    """M30: F sees A's and B's runs, one audit row written first; H and K get 403."""
    a, owner, key = await customer(http, gateway)
    b, _, b_key = await customer(http, gateway)
    runs = [
        (await http.post("/api/v1/runs", json={"agent_id": "a", "goal": "g"}, headers=k)).json() for k in (key, b_key)
    ]
    founder = gateway.token("founder-m30", operator=True)

    listed = await http.get("/fdr/runs", params={"page_size": 10}, headers=founder)
    assert listed.status_code == 200, listed.text
    body = listed.json()
    # Newest first across tenants (other tests' runs may sit between, never a stored future start).
    ours = [r for r in body["items"] if r["tenant_id"] in (a, b)]
    assert [r["run_id"] for r in ours] == [runs[1]["run_id"], runs[0]["run_id"]]
    assert [r["tenant_id"] for r in ours] == [b, a]
    (row,) = [r for r in await audits(engines, "founder-m30") if r.filters == {"page_size": 10}][-1:]
    assert (row.rpc, row.tenant_id, row.target_id, row.request_id) == (
        "ListAllRuns",
        None,
        None,
        listed.headers["x-request-id"],
    )
    assert row.created_at <= datetime.fromisoformat(body["generated_at"])  # committed before the read

    only_a = await http.get("/v1/fdr/runs", params={"tenant_id": a, "state": "LIVE"}, headers=founder)
    assert [r["run_id"] for r in only_a.json()["items"]] == [runs[0]["run_id"]] and only_a.json()[
        "next_page_token"
    ] == ""
    incidents = await http.get("/fdr/incidents", params={"tenant_id": a}, headers=founder)
    assert incidents.status_code == 200 and incidents.json()["items"] == [], incidents.text
    bad = await http.get("/fdr/runs", params={"risk_level": "HIGH"}, headers=founder)
    assert bad.status_code == 400 and bad.json()["details"][0]["reason"] == "INVALID_QUERY", bad.text

    before = len(await sql(engines, "SELECT 1 FROM founder_access_audit"))
    for caller in (owner, key):
        refused = await http.get("/fdr/runs", headers=caller)
        assert refused.status_code == 403, refused.text
    assert len(await sql(engines, "SELECT 1 FROM founder_access_audit")) == before


async def test_the_timeline_is_served_when_the_audit_cannot_be_written(
    http: httpx.AsyncClient, gateway: Gateway, engines: dict[str, AsyncEngine], metrics_port: int
) -> None:
    """M31: with audit inserts failing, the timeline of R (PRE_RUN, incidents, OUTCOME, or pending) is still 200
    and the failure metric rises by one."""
    _, _, key = await customer(http, gateway)
    run_id, incident_id = await failed_run(http, key, "EXECUTION_TIMEOUT after 30s")
    live = (await http.post("/api/v1/runs", json={"agent_id": "a", "goal": "g"}, headers=key)).json()["run_id"]
    founder = gateway.token("founder-m31", operator=True)
    counted = value(await scrape(metrics_port), FAILURES, rpc="GetRunTimeline")
    assert counted is not None  # the series exists before any failure

    async with audit_refused(engines):
        reply = await http.get(f"/fdr/timeline/run/{run_id}", headers=founder)
        pending = await http.get(f"/v1/fdr/timeline/run/{live}", headers=founder)
    assert reply.status_code == 200, reply.text
    timeline = reply.json()
    assert [e["entry_type"] for e in timeline["entries"]] == ["PRE_RUN", "INCIDENT", "OUTCOME"]
    assert timeline["entry_count"] == 3 and timeline["entries"][1]["record"]["incident_id"] == incident_id
    assert timeline["entries"][2]["record"]["record"]["execution_status"] == "TIMEOUT"
    assert pending.status_code == 200 and pending.json()["entries"][-1]["record"]["status"] == "pending"
    assert await audits(engines, "founder-m31") == []
    assert value(await scrape(metrics_port), FAILURES, rpc="GetRunTimeline") == counted + 2

    audited = await http.get(f"/fdr/timeline/run/{run_id}", headers=founder)  # restored: audited again
    assert audited.status_code == 200 and [r.target_id for r in await audits(engines, "founder-m31")] == [run_id]
    unknown = await http.get("/fdr/timeline/run/00000000-0000-4000-8000-000000000000", headers=founder)
    assert unknown.status_code == 404, unknown.text


async def test_historical_topic_metrics_and_fixed_segments(
    http: httpx.AsyncClient, gateway: Gateway, engines: dict[str, AsyncEngine]
) -> None:
    _, auth, key = await customer(http, gateway)
    ids = [(await failed_run(http, key))[1] for _ in range(4)]
    # Times set for known answers: acknowledged 1 s, 2 s and 6 s after creation; the fourth resolved 40 days
    # ago (created a day before that), outside a 30-day window and inside the default 30-day retention cut.
    for incident_id, seconds in zip(ids[:3], (1, 2, 6), strict=True):
        await sql(
            engines,
            "UPDATE incident SET lifecycle_state = 'ACKED', acked_at = created_at + :s * interval '1 second' "
            "WHERE incident_id = :i",
            s=seconds,
            i=incident_id,
        )
    await sql(
        engines,
        "UPDATE incident SET lifecycle_state = 'RESOLVED', created_at = now() - interval '41 days', "
        "resolved_at = now() - interval '40 days' WHERE incident_id = :i",
        i=ids[3],
    )
    for path in ("/incidents/historical", "/v1/incidents/historical"):  # fixed segments, not /incidents/{id}
        historical = await http.get(path, headers=auth)
        assert historical.status_code == 200, historical.text
        assert [i["incident_id"] for i in historical.json()["items"]] == [ids[3]] and historical.json()["total"] == 1
    kept = await http.get("/incidents/historical", params={"retention_days": 60}, headers=auth)
    assert kept.json()["total"] == 0
    for params in ({"retention_days": 6}, {"retention_days": 366}, {"as_of": "2026-01-01T00:00:00Z"}):
        refused = await http.get("/incidents/historical", params=params, headers=auth)
        assert refused.status_code == 400, refused.text
    assert (await http.get("/incidents/resolved", headers=auth)).json()["total"] == 1

    for path in ("/incidents/metrics", "/v1/incidents/metrics"):
        metrics = await http.get(path, headers=auth)
        assert metrics.status_code == 200, metrics.text
        body = metrics.json()
        assert body["window_days"] == 30 and body["total"] == 3
        assert body["by_lifecycle_state"] == {"ACTIVE": 0, "ACKED": 3, "RESOLVED": 0}
        assert body["by_severity"] == {"CRITICAL": 0, "HIGH": 0, "MEDIUM": 3, "LOW": 0}
        assert (body["mean_time_to_acknowledge_ms"], body["median_time_to_acknowledge_ms"]) == (3000, 2000)
        assert body["mean_time_to_resolve_ms"] is None and body["median_time_to_resolve_ms"] is None
    wide = (await http.get("/incidents/metrics", params={"window_days": 90}, headers=auth)).json()
    assert wide["total"] == 4 and wide["by_lifecycle_state"]["RESOLVED"] == 1
    assert wide["mean_time_to_resolve_ms"] == 86_400_000
    for days in (0, 91):
        refused = await http.get("/incidents/metrics", params={"window_days": days}, headers=auth)
        assert refused.status_code == 400 and refused.json()["details"][0]["reason"] == "INVALID_QUERY", refused.text
    _, other_auth, _ = await customer(http, gateway)
    assert (await http.get("/incidents/metrics", headers=other_auth)).json()["total"] == 0  # only the caller's


async def test_the_incident_facade_names_every_bad_parameter(http: httpx.AsyncClient, gateway: Gateway) -> None:
    """M18 for /cus/incidents/list: topic exactly once, then only that topic's parameters; as_of refused."""
    _, auth, key = await customer(http, gateway)
    _, incident_id = await failed_run(http, key, "AGENT_CRASH")
    traced = auth | {"x-correlation-id": "corr-1"}
    reply = await http.get(
        "/cus/incidents/list", params={"topic": "active", "severity": "CRITICAL", "limit": 5}, headers=traced
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["topic"] == "active" and [i["incident_id"] for i in body["incidents"]] == [incident_id]
    assert body["meta"] == {"request_id": reply.headers["x-request-id"], "correlation_id": "corr-1", "as_of": None}
    assert body["total"] == 1 and body["pagination"] == {"limit": 5, "offset": 0, "next_offset": None}
    twin = await http.get("/v1/cus/incidents/list?topic=historical&retention_days=7", headers=auth)
    assert twin.status_code == 200 and twin.json()["topic"] == "historical" and twin.json()["incidents"] == [], (
        twin.text
    )
    encoded = await http.get(
        "/cus/incidents/list?topic=active&severity=LOW&severity=CRITICAL&cause_type=LLM%5FRUN", headers=auth
    )
    assert encoded.status_code == 200 and encoded.json()["total"] == 1, encoded.text

    for query, field, reason in [
        ("", "topic", "INVALID_QUERY"),
        ("severity=HIGH", "topic", "INVALID_QUERY"),
        ("topic=foo", "topic", "INVALID_QUERY"),
        ("topic=active&topic=resolved", "topic", "INVALID_QUERY"),
        ("topic=active&foo=1", "foo", "INVALID_QUERY"),
        ("topic=active&retention_days=30", "retention_days", "INVALID_QUERY"),
        ("topic=resolved&created_after=2026-01-01T00:00:00Z", "created_after", "INVALID_QUERY"),
        ("topic=active&limit=1&limit=2", "limit", "INVALID_QUERY"),
        ("topic=active&limit=ten", "limit", "INVALID_QUERY"),
        ("topic=active&limit=0", "limit", "INVALID_QUERY"),
        ("topic=active&is_synthetic=yes", "is_synthetic", "INVALID_QUERY"),
        ("topic=active&severity=SEVERE", "severity", "INVALID_QUERY"),
        ("topic=active&query=topic%3Dactive", "query", "INVALID_QUERY"),
        ("topic=active&as_of=2026-01-01T00:00:00Z", "as_of", "UNSUPPORTED_PARAM"),
        ("as_of=2026-01-01T00:00:00Z", "as_of", "UNSUPPORTED_PARAM"),
    ]:
        refused = await http.get(f"/cus/incidents/list?{query}", headers=auth)
        assert refused.status_code == 400, (query, refused.text)
        details = refused.json()["details"]
        assert details[0]["reason"] == reason and details[1]["field_violations"][0]["field"] == field, (query, details)
