"""LLM run records as the logs read them (MONITORING.md 6.1, 6.4): the envelope's checksum and origin, the
replay window around a run, and the record list. Nothing here writes: records are write-once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import DateTime, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.errors import NotFound
from services.monitoring import repository, traces
from services.monitoring.models import LlmRunRecord, Run, Trace

REPLAY_SECONDS = 30
REPLAY_ITEMS = 500
COLUMNS = (
    "id",
    "tenant_id",
    "run_id",
    "trace_id",
    "provider",
    "model",
    "prompt_hash",
    "response_hash",
    "input_tokens",
    "output_tokens",
    "cost_cents",
    "execution_status",
    "source",
    "started_at",
    "completed_at",
    "is_synthetic",
    "created_at",
)


def utc(moment: datetime) -> str:
    """RFC 3339 in UTC with a Z, whatever zone the driver handed over."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def fields(record: LlmRunRecord) -> dict[str, Any]:
    """The record as JSON values: times in UTC, absent values null."""
    values = {name: getattr(record, name) for name in COLUMNS}
    return {k: utc(v) if isinstance(v, datetime) else v for k, v in values.items()}


def checksum(record: LlmRunRecord) -> str:
    """SHA-256 hex of the record as sorted-key JSON: anyone holding the envelope can recompute it."""
    return traces.sha256(fields(record))


def origin(record: LlmRunRecord) -> str:
    """AGENT when an SDK (an API key) completed the run, HUMAN when a person did."""
    return "HUMAN" if record.source == "API" else "AGENT"


def window(anchor: datetime) -> tuple[datetime, datetime]:
    """The replay window: T - 30 s to T + 30 s, both ends included."""
    spread = timedelta(seconds=REPLAY_SECONDS)
    return anchor - spread, anchor + spread


def anchor(run: Run) -> datetime:
    """T: when the run ended, or when it started while it is LIVE."""
    return run.completed_at or run.started_at


async def record(session: AsyncSession, tenant_id: str, run_id: str) -> LlmRunRecord:
    found = await repository.record_of(session, tenant_id, run_id)
    if found is None:  # unknown, another tenant's, or not completed yet
        raise NotFound("LLM run record not found", reason="LLM_RUN_RECORD_NOT_FOUND")
    return found


async def trace_of(session: AsyncSession, tenant_id: str, run: Run) -> Trace | None:
    """The run's trace: the one naming the run, else the one its completion named."""
    found = await traces.by_run(session, tenant_id, run.run_id)
    if found is None:
        named = await repository.record_of(session, tenant_id, run.run_id)
        if named is not None and named.trace_id:
            found = await session.get(Trace, (tenant_id, named.trace_id))
    return found


class Item(NamedTuple):
    kind: str
    id: str
    timestamp: datetime
    record: dict[str, Any]


# One statement: each kind read by its tenant/time index, merged and cut in the database. A record's time is its
# created_at (written in the completing transaction), a usage record's and an incident's too, a step's the time
# its client reported.
_REPLAY = text(
    """
    SELECT kind, id, ts, record FROM (
        SELECT 'llm_run_record' AS kind, r.id::text AS id, r.created_at AS ts, to_jsonb(r) - 'tenant_id' AS record
        FROM llm_run_record r WHERE r.tenant_id = :tenant AND r.created_at BETWEEN :start AND :end
        UNION ALL
        SELECT 'usage_record', u.id::text, u.created_at, to_jsonb(u) - 'tenant_id'
        FROM usage_record u WHERE u.tenant_id = :tenant AND u.created_at BETWEEN :start AND :end
        UNION ALL
        SELECT 'trace_step', s.trace_id || ':' || s.step_index, s."timestamp", to_jsonb(s) - 'tenant_id'
        FROM trace_step s WHERE s.tenant_id = :tenant AND s."timestamp" BETWEEN :start AND :end
        UNION ALL
        SELECT 'incident', i.incident_id, i.created_at, to_jsonb(i) - 'tenant_id'
        FROM incident i WHERE i.tenant_id = :tenant AND i.created_at BETWEEN :start AND :end
    ) w
    ORDER BY ts, kind, id COLLATE "C"
    LIMIT :limit
    """
).columns(kind=String, id=String, ts=DateTime(timezone=True), record=JSONB)


async def replay(session: AsyncSession, tenant_id: str, start: datetime, end: datetime) -> tuple[list[Item], bool]:
    """The tenant's items in [start, end] by time, kind, id: at most 500, and whether more fell in it."""
    params = {"tenant": tenant_id, "start": start, "end": end, "limit": REPLAY_ITEMS + 1}
    rows = (await session.execute(_REPLAY, params)).all()
    items = [Item(r.kind, r.id, r.ts, r.record) for r in rows[:REPLAY_ITEMS]]
    return items, len(rows) > REPLAY_ITEMS
