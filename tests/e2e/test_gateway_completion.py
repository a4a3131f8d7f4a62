"""Run completion through real Envoy, the gate and monitoring: which incident a failed or aborted run opens,
none for a success, and two completions racing (MONITORING.md 3.2, section 4; M13, M14, M15)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import Gateway
from tests.e2e.test_gateway_monitoring import complete, connected
from tests.monitoring.conftest import sql

pytestmark = pytest.mark.e2e


async def run_of(http: httpx.AsyncClient, key: dict[str, str]) -> str:
    created = await http.post("/api/v1/runs", json={"agent_id": "a1", "goal": "summarise"}, headers=key)
    assert created.status_code == 201, created.text
    return str(created.json()["run_id"])


async def finish(http: httpx.AsyncClient, key: dict[str, str], run_id: str, **body: Any) -> httpx.Response:
    return await http.post(f"/v1/runs/{run_id}:complete", json=body, headers=key)


async def test_the_incident_a_completion_opens(http: httpx.AsyncClient, gateway: Gateway) -> None:
    """M13: a failure with no known code is MEDIUM EXECUTION_FAILURE, an abort without one LOW MANUAL
    (CANCELLED); M14: a success opens none and its record says SUCCEEDED."""
    tenant, auth, key = await connected(http, gateway)
    await complete(http, gateway, tenant)
    unknown, aborted, succeeded = [await run_of(http, key) for _ in range(3)]

    failed = await finish(http, key, unknown, status="failed", error_message="the model said no")
    stopped = await finish(http, key, aborted, status="aborted")
    fine = await finish(http, key, succeeded, status="succeeded", input_tokens=10, output_tokens=5)
    assert (failed.status_code, stopped.status_code, fine.status_code) == (200, 200, 200), fine.text
    assert fine.json()["incident_ids"] == []

    active = (await http.get("/incidents/active", headers=auth)).json()
    found = {i["llm_run_id"]: i for i in active["items"]}
    assert set(found) == {unknown, aborted} and active["total"] == 2
    assert (found[unknown]["severity"], found[unknown]["category"], found[unknown]["error_code"]) == (
        "MEDIUM",
        "EXECUTION_FAILURE",
        "UNKNOWN",
    )
    assert (found[aborted]["severity"], found[aborted]["category"], found[aborted]["error_code"]) == (
        "LOW",
        "MANUAL",
        "CANCELLED",
    )
    assert all(i["cause_type"] == "LLM_RUN" and i["lifecycle_state"] == "ACTIVE" for i in found.values())
    assert (await http.get(f"/incidents/by-run/{succeeded}", headers=auth)).json()["total"] == 0

    records = (await http.get("/logs/llm-runs", params={"run_id": succeeded}, headers=auth)).json()
    assert [r["execution_status"] for r in records["items"]] == ["SUCCEEDED"]
    statuses = {
        r["run_id"]: r["execution_status"] for r in (await http.get("/logs/llm-runs", headers=auth)).json()["items"]
    }
    assert (statuses[unknown], statuses[aborted]) == ("FAILED", "ABORTED")


async def test_two_completions_racing_write_one_record_one_incident_one_event(
    http: httpx.AsyncClient, gateway: Gateway, engines: dict[str, AsyncEngine]
) -> None:
    """M15: the conditional update lets one completion through; the other sees the run COMPLETED (the same
    status: 200 and nothing written; another: 409)."""
    tenant, auth, key = await connected(http, gateway)
    await complete(http, gateway, tenant)
    for other in ("failed", "aborted"):
        run_id = await run_of(http, key)
        answers = await asyncio.gather(
            *(finish(http, key, run_id, status="failed", error_message="STEP_FAILURE at 3") for _ in range(4)),
            finish(http, key, run_id, status=other),
        )
        assert all(a.status_code in (200, 409) for a in answers), [a.text for a in answers]
        # A repeat of the winning status answers the original outcome, the same incident included.
        assert len({tuple(a.json()["incident_ids"]) for a in answers if a.status_code == 200}) == 1
        by_run = (await http.get(f"/incidents/by-run/{run_id}", headers=auth)).json()
        assert by_run["total"] == 1
        records = await sql(engines, "SELECT id FROM llm_run_record WHERE run_id = :r", r=run_id)
        completed = await sql(
            engines,
            "SELECT count(*) AS n FROM event WHERE tenant_id = :t AND event_type = 'run.completed' "
            "AND payload->>'run_id' = :r",
            t=tenant,
            r=run_id,
        )
        assert (len(records), completed[0].n) == (1, 1)
