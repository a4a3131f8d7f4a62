"""The founder lists' plans at scale (MONITORING.md section 11): on a generated set of 200k runs and 50k
incidents over 10k tenants (one generate_series statement each, ANALYZEd), EXPLAIN every filter combination's
query exactly as the service builds it, first page and keyset page; a sequential scan anywhere fails. The set
lives in one transaction that is rolled back, so other tests never see it."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from aos.monitoring.v1 import founder_service_pb2 as fdr
from services.common import validation
from services.monitoring import queries
from services.monitoring.models import Incident, Run

RUNS = """
INSERT INTO run (run_id, tenant_id, agent_id, actor_type, origin_system_id, goal, status, state, source,
                 provider_type, risk_level, risk_type, latency_bucket, evidence_health, policy_context,
                 started_at, last_seen_at, completed_at, duration_ms)
SELECT gen_random_uuid(), 'gen-' || (i % 10000), 'agent', 'SERVICE', 'sdk:gen', 'goal',
       CASE WHEN live THEN 'running' ELSE 'succeeded' END, CASE WHEN live THEN 'LIVE' ELSE 'COMPLETED' END,
       'sdk', 'openai',
       CASE WHEN r < 1 THEN 'VIOLATED' WHEN r < 4 THEN 'AT_RISK' WHEN r < 10 THEN 'NEAR_THRESHOLD' ELSE 'NORMAL' END,
       'COST', CASE WHEN live THEN NULL ELSE 'OK' END, CASE WHEN live THEN NULL ELSE 'FLOWING' END, '{}',
       now() - i * interval '1 second', now() - i * interval '1 second',
       CASE WHEN live THEN NULL ELSE now() - i * interval '1 second' + interval '5 seconds' END,
       CASE WHEN live THEN NULL ELSE 5000 END
FROM generate_series(1, 200000) AS i, LATERAL (SELECT i % 50 = 0 AS live, (i * 7919) % 100 AS r) AS shape
"""
INCIDENTS = """
INSERT INTO incident (incident_id, tenant_id, source_run_id, title, severity, category, cause_type,
                      lifecycle_state, created_at, updated_at, acked_at, resolved_at)
SELECT 'inc_' || lpad(to_hex(i), 16, '0'), 'gen-' || (i % 10000), gen_random_uuid(), 'Generated',
       CASE WHEN r < 2 THEN 'CRITICAL' WHEN r < 22 THEN 'HIGH' WHEN r < 72 THEN 'MEDIUM' ELSE 'LOW' END,
       'EXECUTION_FAILURE', 'LLM_RUN', state, now() - i * interval '1 second', now(),
       CASE WHEN state <> 'ACTIVE' THEN now() END, CASE WHEN state = 'RESOLVED' THEN now() END
FROM generate_series(1, 50000) AS i,
     LATERAL (SELECT (i * 7919) % 100 AS r,
                     CASE WHEN i % 20 < 2 THEN 'ACTIVE' WHEN i % 20 = 2 THEN 'ACKED' ELSE 'RESOLVED' END AS state) AS s
"""


def _sql(query: Select[Any]) -> str:
    return str(query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))


async def _plan(conn: AsyncConnection, query: Select[Any]) -> str:
    return "\n".join(row[0] for row in await conn.execute(text(f"EXPLAIN {_sql(query)}")))


def _combinations(**choices: list[Any]) -> list[dict[str, Any]]:
    names = list(choices)
    combos = itertools.product(*(choices[n] for n in names))
    return [{n: v for n, v in zip(names, combo, strict=True) if v is not None} for combo in combos]


async def test_every_founder_filter_combination_uses_an_index(engines: dict[str, AsyncEngine]) -> None:
    run_token = validation.encode_token(datetime.now(UTC), str(uuid.uuid4()))
    incident_token = validation.encode_token(datetime.now(UTC), "inc_00000000000000ff")
    async with engines["monitoring"].connect() as conn:
        tx = await conn.begin()
        try:
            await conn.execute(text(RUNS))
            await conn.execute(text(INCIDENTS))
            await conn.execute(text("ANALYZE run"))
            await conn.execute(text("ANALYZE incident"))
            plans = {}
            for filters in _combinations(
                tenant_id=[None, "gen-42"],
                state=[None, "LIVE", "COMPLETED"],
                risk_level=[None, "VIOLATED", "NORMAL"],
                page_token=[None, run_token],
            ):
                query = queries.all_runs(fdr.ListAllRunsRequest(**filters)).select(select(Run))
                plans["runs", *filters.items()] = await _plan(conn, query)
            for filters in _combinations(
                tenant_id=[None, "gen-42"],
                lifecycle_state=[None, "ACTIVE", "ACKED", "RESOLVED"],
                severity=[None, "CRITICAL", "LOW"],
                page_token=[None, incident_token],
            ):
                query = queries.all_incidents(fdr.ListAllIncidentsRequest(**filters)).select(select(Incident))
                plans["incidents", *filters.items()] = await _plan(conn, query)
            # The check itself can fail: a filter no index serves is a sequential scan on this set.
            control = await _plan(conn, select(Run).where(Run.goal == "x").order_by(Run.cost_cents).limit(51))
        finally:
            await tx.rollback()
    assert "Seq Scan" in control, control
    scans = {combo: plan for combo, plan in plans.items() if "Seq Scan" in plan}
    assert not scans, "\n\n".join(f"{combo}:\n{plan}" for combo, plan in scans.items())
    assert len(plans) == 36 + 48
