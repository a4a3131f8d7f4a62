"""LogsService through real Envoy and the gate: traces stored once and redacted, read, listed and compared;
LLM run records listed, enveloped and replayed; the logs facade; and other tenants' ids (MONITORING.md
section 6; M25, M26, M28, M29, M34)."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import Gateway
from tests.e2e.test_gateway_monitoring import complete, connected
from tests.monitoring.conftest import event_types, sql

pytestmark = pytest.mark.e2e
SECRET = "aos_" + "s3cr3t" * 5
CARD = "4111-1111-1111-1111"


def field_of(reply: httpx.Response) -> str:
    return str(reply.json()["details"][1]["field_violations"][0]["field"])


def reason_of(reply: httpx.Response) -> str:
    return str(reply.json()["details"][0]["reason"])


async def new_run(http: httpx.AsyncClient, key: dict[str, str]) -> str:
    reply = await http.post("/api/v1/runs", json={"agent_id": "a1", "goal": "summarise"}, headers=key)
    assert reply.status_code == 201, reply.text
    return str(reply.json()["run_id"])


def at(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def test_traces_are_stored_once_redacted_and_compared(
    http: httpx.AsyncClient, gateway: Gateway, engines: dict[str, AsyncEngine]
) -> None:
    tenant, auth, key = await connected(http, gateway)
    run_id = await new_run(http, key)
    done = await http.post(f"/v1/runs/{run_id}:complete", json={"status": "succeeded"}, headers=key)
    assert done.status_code == 200 and done.json()["run"]["evidence_health"] == "MISSING", done.text

    missing = await http.post("/traces", json={"trace": {"steps": [{"skill_name": "llm"}]}}, headers=key)  # M26
    assert missing.status_code == 400 and field_of(missing) == "trace.run_id", missing.text
    params = {"to": "ann@example.com", "key": SECRET, "card": CARD, "n": 3}
    first = {
        "run_id": run_id,
        "agent_id": "a1",
        "steps": [{"skill_name": "plan"}, {"skill_name": "llm", "params": params}],
    }
    stored = await http.post("/traces", json={"trace": first}, headers=key)  # StoreTrace needs SDK_CONNECTED only
    assert stored.status_code == 201, stored.text
    assert (stored.json()["trace_id"], stored.json()["run_id"], stored.json()["stored"]) == (run_id, run_id, True)
    again = {"run_id": run_id, "steps": [{"skill_name": "other"}]}
    kept = await http.post("/v1/traces", json={"trace": again}, headers=key)
    assert kept.status_code == 200 and kept.json() == {**stored.json(), "stored": False}, kept.text
    refused = await http.post("/traces", json={"trace": {"trace_id": "fresh"}, "overwrite": True}, headers=key)
    assert refused.status_code == 400 and field_of(refused) == "overwrite", refused.text
    assert (await event_types(engines, tenant)).count("trace.stored") == 1

    # Reads need COMPLETE: the RPC's rule, not the legacy path table's SDK_CONNECTED for /traces (decision 4).
    early = await http.get(f"/traces/{run_id}", headers=auth)
    assert early.status_code == 403 and early.json()["required_state"] == "COMPLETE", early.text
    await complete(http, gateway, tenant)
    read = await http.get(f"/traces/{run_id}", headers=auth)  # M25: markers, never the values
    assert read.status_code == 200, read.text
    trace = read.json()["trace"]
    assert [s["skill_name"] for s in trace["steps"]] == ["plan", "llm"] and trace["step_count"] == 2
    assert trace["steps"][1]["params"] == {
        "to": "[REDACTED_EMAIL]",
        "key": "[REDACTED_SECRET]",
        "card": "[REDACTED_CARD]",
        "n": 3,
    }
    assert (trace["redaction_count"], trace["seed"]) == (3, "42") and trace["stored_by"].startswith("sdk:")
    assert SECRET not in read.text and "ann@example.com" not in read.text
    # A trace of a COMPLETED run is its evidence.
    assert (await http.get(f"/activity/runs/{run_id}", headers=auth)).json()["evidence_health"] == "FLOWING"
    steps = (await http.get(f"/logs/llm-runs/{run_id}/trace", headers=auth)).json()
    assert (steps["trace_id"], steps["step_count"]) == (run_id, 2)

    other = {"trace_id": "t-2", "agent_id": "a2", "steps": [{"skill_name": "plan"}, {"skill_name": "search"}]}
    assert (await http.post("/traces", json={"trace": other}, headers=auth)).status_code == 201  # a human (owner)
    compared = await http.get(f"/traces/compare/{run_id}/t-2", headers=auth)  # M29; the fixed segment wins
    assert compared.status_code == 200, compared.text
    body = compared.json()
    assert body["match"] is False and body["trace1_root_hash"] == stored.json()["root_hash"]
    assert {"field": "steps[1].skill_name", "trace1": "llm", "trace2": "search"} in body["differences"]
    same = (await http.get("/v1/traces/compare/t-2/t-2", headers=auth)).json()
    assert (same["match"], same["differences"]) == (True, [])
    assert (await http.get("/traces/compare", headers=auth)).status_code == 404  # {run_id} = "compare": no trace

    listed = await http.get("/traces", params={"limit": 1}, headers=auth)
    assert listed.status_code == 200, listed.text
    assert (listed.json()["total"], listed.json()["has_more"], listed.json()["items"][0]["trace_id"]) == (
        2,
        True,
        "t-2",
    )
    assert listed.json()["items"][0]["steps"] == []
    mine = (await http.get("/v1/traces", params={"agent_id": "a1"}, headers=auth)).json()
    assert [t["trace_id"] for t in mine["items"]] == [run_id]
    bad = await http.get("/traces", params={"limit": 1001}, headers=auth)
    assert bad.status_code == 400 and reason_of(bad) == "INVALID_QUERY"

    # M34: B meets A's trace and run ids as unknown ones, and nothing of A changes.
    b_tenant, b_auth, b_key = await connected(http, gateway)
    await complete(http, gateway, b_tenant)
    assert (await http.post("/traces", json={"trace": {"trace_id": "t-b"}}, headers=b_key)).status_code == 201
    before = await event_types(engines, tenant)
    for reply in (
        await http.get(f"/traces/{run_id}", headers=b_auth),
        await http.get("/traces/t-2", headers=b_auth),
        await http.get(f"/traces/compare/t-b/{run_id}", headers=b_auth),
        await http.get("/traces/compare/t-b/t-2", headers=auth),  # B's trace on A's side
        await http.get(f"/logs/llm-runs/{run_id}/trace", headers=b_auth),
        await http.post("/traces", json={"trace": {"run_id": run_id, "trace_id": "x"}}, headers=b_key),
    ):
        assert reply.status_code == 404, reply.text
    assert await event_types(engines, tenant) == before
    rows = await sql(engines, "SELECT count(*) AS n FROM trace WHERE run_id = CAST(:r AS uuid)", r=run_id)
    assert rows[0].n == 1


def recomputed(envelope: dict[str, Any]) -> str:
    """The envelope's checksum as a client recomputes it: the record's fields as sorted-key JSON, times in UTC,
    absent values null."""
    record = dict(envelope["record"])
    for name in ("trace_id", "provider", "model", "prompt_hash", "response_hash"):
        record[name] = record[name] or None
    for name in ("started_at", "completed_at", "created_at"):
        record[name] = envelope[f"{name}_utc"]
    body = json.dumps(record, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


async def test_records_their_envelope_replay_window_and_facade(
    http: httpx.AsyncClient, gateway: Gateway, engines: dict[str, AsyncEngine]
) -> None:
    tenant, auth, key = await connected(http, gateway)
    await complete(http, gateway, tenant)
    run_id = await new_run(http, key)
    failed = {"status": "failed", "error_message": "EXECUTION_TIMEOUT after 30s", "provider": "openai", "model": "m"}
    done = await http.post(f"/v1/runs/{run_id}:complete", json={**failed, "prompt_hash": "a" * 64}, headers=key)
    (incident_id,) = done.json()["incident_ids"]
    record_id = done.json()["record_id"]

    listed = await http.get("/logs/llm-runs", headers=auth)
    assert listed.status_code == 200, listed.text
    assert (listed.json()["total"], listed.json()["filters_applied"]) == (1, {})
    assert listed.json()["items"][0]["execution_status"] == "TIMEOUT" and listed.json()["items"][0]["id"] == record_id
    none = (await http.get("/v1/logs/llm-runs", params={"execution_status": "SUCCEEDED"}, headers=auth)).json()
    assert (none["total"], none["filters_applied"]) == (0, {"execution_status": ["SUCCEEDED"]})
    for params, field in [({"execution_status": "DONE"}, "execution_status"), ({"limit": 101}, "limit")]:
        bad = await http.get("/logs/llm-runs", params=params, headers=auth)
        assert bad.status_code == 400 and reason_of(bad) == "INVALID_QUERY" and field_of(bad) == field, bad.text

    envelope = await http.get(f"/logs/llm-runs/{run_id}/envelope", headers=auth)
    assert envelope.status_code == 200, envelope.text
    body = envelope.json()
    assert (body["incident_ids"], body["origin"], body["immutable"]) == ([incident_id], "AGENT", True)
    assert body["completed_at_utc"].endswith("Z") and body["checksum"] == recomputed(body)

    # M28: T is the run's end; steps 31 s before and after fall outside, 30 s inside.
    detail = (await http.get(f"/activity/runs/{run_id}", headers=auth)).json()
    end = datetime.fromisoformat(detail["completed_at"])
    offsets = [-31, -30, 30, 31]
    trace = {
        "run_id": run_id,
        "steps": [{"skill_name": f"s{o}", "timestamp": at(end + timedelta(seconds=o))} for o in offsets],
    }
    assert (await http.post("/traces", json={"trace": trace}, headers=key)).status_code == 201
    replay = await http.get(f"/logs/llm-runs/{run_id}/replay", headers=auth)
    assert replay.status_code == 200, replay.text
    items = replay.json()["items"]
    assert datetime.fromisoformat(replay.json()["anchor"]) == end and replay.json()["truncated"] is False
    steps = [i["record"]["skill_name"] for i in items if i["kind"] == "trace_step"]
    assert steps == ["s-30", "s30"]
    assert {(i["kind"], i["id"]) for i in items} >= {("llm_run_record", record_id), ("incident", incident_id)}
    times = [datetime.fromisoformat(i["timestamp"]) for i in items]
    assert times == sorted(times) and replay.json()["item_count"] == len(items)

    facade = await http.get("/cus/logs/list", params={"topic": "llm_runs"}, headers={**auth, "X-Correlation-ID": "c-9"})
    assert facade.status_code == 200, facade.text
    page = facade.json()
    assert (page["topic"], page["total"], page["has_more"]) == ("llm_runs", 1, False)
    item = page["records"][0]
    assert (item["item_id"], item["source_kind"], item["run_id"], item["execution_status"]) == (
        record_id,
        "llm_run",
        run_id,
        "TIMEOUT",
    )
    assert page["meta"]["correlation_id"] == "c-9" and page["meta"]["as_of"] is None and page["meta"]["request_id"]
    assert page["pagination"] == {"limit": 20, "offset": 0, "next_offset": None}
    system = (await http.get("/v1/cus/logs/list", params={"topic": "system_records"}, headers=auth)).json()
    assert (system["records"], system["total"]) == ([], 0)
    for query, reason in [
        ("", "INVALID_QUERY"),
        ("topic=foo", "INVALID_QUERY"),
        ("topic=llm_runs&limit=0", "INVALID_QUERY"),
        ("topic=llm_runs&as_of=2026-01-01T00:00:00Z", "UNSUPPORTED_PARAM"),
        ("topic=llm_runs&topic=llm_runs", "INVALID_QUERY"),
        ("topic=llm_runs&foo=1", "INVALID_QUERY"),
    ]:
        refused = await http.get(f"/cus/logs/list?{query}", headers=auth)
        assert refused.status_code == 400 and reason_of(refused) == reason, (query, refused.text)

    # M34: another tenant's run id is an unknown one on every record route.
    b_tenant, b_auth, _ = await connected(http, gateway)
    await complete(http, gateway, b_tenant)
    for path in ("envelope", "trace", "replay"):
        assert (await http.get(f"/logs/llm-runs/{run_id}/{path}", headers=b_auth)).status_code == 404
    assert (await http.get(f"/logs/llm-runs/{uuid.uuid4()}/envelope", headers=auth)).status_code == 404
    assert (await http.get("/logs/llm-runs", params={"run_id": run_id}, headers=b_auth)).json()["total"] == 0


async def test_a_trace_upload_may_exceed_the_gateways_default_body_limit(
    http: httpx.AsyncClient, gateway: Gateway
) -> None:
    """StoreTrace's rule raises the REST body limit to 2 MiB and a little (the default stays 1 MiB elsewhere):
    1.5 MiB is stored, just over 2 MiB of trace is the service's 400, far over is the edge's 413."""
    _, _, key = await connected(http, gateway)

    def body(size: int, trace_id: str) -> dict[str, Any]:
        return {"trace": {"trace_id": trace_id, "metadata": {"blob": "x" * size}}}

    big = await http.post("/traces", json=body(1536 * 1024, "big"), headers=key)
    assert big.status_code == 201, big.text[:500]
    over = await http.post("/v1/traces", json=body(2 * 1024 * 1024 + 1024, "over"), headers=key)
    assert over.status_code == 400 and field_of(over) == "trace", over.text[:500]
    far = await http.post("/traces", json=body(3 * 1024 * 1024, "far"), headers=key)
    assert far.status_code == 413 and far.json()["error"] == "payload_too_large"
    elsewhere = await http.post("/v1/runs", json={"agent_id": "a", "goal": "x" * (1536 * 1024)}, headers=key)
    assert elsewhere.status_code == 413
