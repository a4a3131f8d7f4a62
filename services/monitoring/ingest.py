"""Usage records written set-based (MONITORING.md section 7): one INSERT ... SELECT FROM
jsonb_to_recordset(...) ON CONFLICT DO NOTHING for the whole batch, prepared on the driver connection
(asyncpg caches it), then one usage_daily upsert and, last, the event, so the rows' locks are held for as
short a time as possible.

The batch travels as one JSON array rather than an array parameter per column: encoding fourteen arrays of
100 values was the largest share of ingest's CPU after validation, and PostgreSQL reads the JSON in C."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any, NamedTuple

from sqlalchemy.ext.asyncio import AsyncSession

from services.common import events
from services.common.principal import Principal
from services.monitoring import tenants

OWNER = "monitoring"
# Column → its type in the record set; the record dicts of requests.usage carry these keys.
COLUMNS = {
    "call_id": "text",
    "integration_id": "text",
    "session_id": "text",
    "agent_id": "text",
    "provider": "text",
    "model": "text",
    "tokens_in": "int",
    "tokens_out": "int",
    "cost_cents": "int",
    "latency_ms": "int",
    "policy_result": "text",
    "error_code": "text",
    "error_message": "text",
    "metadata": "jsonb",
}
_RECORD = ", ".join(f"{column} {kind}" for column, kind in COLUMNS.items())
INSERT = (
    f"INSERT INTO usage_record (id, tenant_id, key_id, {', '.join(COLUMNS)}) "
    f"SELECT gen_random_uuid(), $1, $2, {', '.join(f'r.{c}' for c in COLUMNS)} "
    f"FROM jsonb_to_recordset($3::jsonb) AS r({_RECORD}) "
    "ON CONFLICT (tenant_id, call_id) DO NOTHING RETURNING id::text, call_id"
)
ROLL_UP = (
    "INSERT INTO usage_daily (tenant_id, integration_id, day, records, tokens_in, tokens_out, cost_cents) "
    "SELECT $1, r.integration_id, (now() AT TIME ZONE 'UTC')::date, r.records, r.tokens_in, r.tokens_out, r.cost "
    "FROM unnest($2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[]) "
    "AS r(integration_id, records, tokens_in, tokens_out, cost) "
    "ON CONFLICT (tenant_id, integration_id, day) DO UPDATE SET "
    "records = usage_daily.records + EXCLUDED.records, tokens_in = usage_daily.tokens_in + EXCLUDED.tokens_in, "
    "tokens_out = usage_daily.tokens_out + EXCLUDED.tokens_out, "
    "cost_cents = usage_daily.cost_cents + EXCLUDED.cost_cents, updated_at = now()"
)
STATUS = "SELECT status FROM tenant_lifecycle WHERE tenant_id = $1"


def rows(records: list[dict[str, Any]]) -> str:
    """The records as the one JSON parameter of INSERT (keys are COLUMNS)."""
    return json.dumps(records, separators=(",", ":"))


class Stored(NamedTuple):
    accepted: dict[str, str]  # call_id → the new record's id
    duplicates: int


async def _driver(session: AsyncSession) -> Any:
    """The asyncpg connection under the session's transaction (the statement runs in that transaction)."""
    connection = await session.connection()
    return (await connection.get_raw_connection()).driver_connection


async def store(session: AsyncSession, who: Principal, records: list[dict[str, Any]]) -> Stored:
    """Stores the records whose call_id the tenant has not used, once the tenant's lifecycle allows writes
    (read on the driver too: the ORM's statement cost more than the batch's insert); a call_id repeated
    within the batch counts once, its repeats as duplicates."""
    tenant_id = who.tenant()
    driver = await _driver(session)
    tenants.allow(await driver.fetchval(STATUS, tenant_id), tenants.WRITABLE)
    if not records:
        return Stored({}, 0)
    first = {r["call_id"]: r for r in reversed(records)}  # a call_id repeated in the batch: its first record
    # In call_id order, so concurrent batches sharing call_ids wait on each other instead of deadlocking.
    unique = [first[call_id] for call_id in sorted(first)]
    found = await driver.fetch(INSERT, tenant_id, who.actor_id, rows(unique))
    accepted = {call_id: id_ for id_, call_id in found}
    stored = [r for r in unique if r["call_id"] in accepted]
    if stored:
        await _roll_up(driver, tenant_id, stored)
        await events.record(session, OWNER, who, "usage.ingested", tenant_id, _summary(stored, len(records)))
    return Stored(accepted, len(records) - len(stored))


async def _roll_up(driver: Any, tenant_id: str, stored: list[dict[str, Any]]) -> None:
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for r in stored:
        total = sums[r["integration_id"]]
        for i, value in enumerate((1, r["tokens_in"], r["tokens_out"], r["cost_cents"])):
            total[i] += value
    # In key order, so concurrent batches lock the day rows in the same order (no deadlock).
    keys = sorted(sums)
    await driver.execute(ROLL_UP, tenant_id, keys, *([sums[k][i] for k in keys] for i in range(4)))


def _summary(stored: list[dict[str, Any]], total: int) -> dict[str, Any]:
    return {
        "counts": {"accepted": len(stored), "total": total},
        "integration_ids": sorted({r["integration_id"] for r in stored}),
        "sums": {f: sum(r[f] for r in stored) for f in ("tokens_in", "tokens_out", "cost_cents")},
    }


def owned(
    records: list[dict[str, Any]], integration: str, owned_ids: set[str]
) -> tuple[list[dict[str, Any]], list[tuple[int, str]]]:
    """The records the caller may write, and (index, call_id) of the others: a record naming an integration
    the tenant does not own (integrations said so), or, with an integration key, another integration than the
    key's, is refused one by one."""
    allowed: list[dict[str, Any]] = []
    refused: list[tuple[int, str]] = []
    for i, record in enumerate(records):
        named = record["integration_id"]
        if named not in owned_ids or (integration and named != integration):
            refused.append((i, record["call_id"]))
        else:
            allowed.append(record)
    return allowed, refused


def named(records: list[dict[str, Any]], integration: str) -> set[str]:
    """The integrations whose ownership decides the records: with an integration key, a record naming another
    is refused anyway, so only the key's is asked about."""
    return {integration} if integration else {r["integration_id"] for r in records}
