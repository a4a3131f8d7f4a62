"""A run's changes inside the RPC's transaction (MONITORING.md 3.1, 3.2): each locks or inserts the row,
applies the pure rules of policy.py and records its events. Nothing here opens a transaction."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.common import events
from services.common.errors import AlreadyExists
from services.common.principal import Kind, Principal
from services.monitoring import incidents, policy, repository
from services.monitoring.models import LlmRunRecord, Run, Trace
from services.monitoring.requests import Completion, Totals

OWNER = "monitoring"


def project(run: Run) -> str:
    """The event stream of a run: its project's, or the tenant's own."""
    return run.project_id or events.SYSTEM


def _ms(since: datetime, now: datetime) -> int:
    return max(0, int((now - since).total_seconds() * 1000))


async def create(
    session: AsyncSession, who: Principal, values: dict[str, Any], t: policy.Thresholds
) -> tuple[Run, bool]:
    """The new run, or (False) the one an earlier request with the same idempotency_key created."""
    if values["parent_run_id"]:
        await repository.get_run(session, values["tenant_id"], values["parent_run_id"])
    run = await repository.insert_run(session, values | _risk(policy.risk(t, policy.Usage(0, 0, 0), failed=False)))
    if run is None:
        earlier = await repository.run_by_key(session, values["tenant_id"], values["idempotency_key"])
        if (earlier.agent_id, earlier.goal) != (values["agent_id"], values["goal"]):
            raise AlreadyExists("idempotency_key was used for another run", reason="IDEMPOTENCY_KEY_REUSED")
        return earlier, False
    attribution = {"actor_type": run.actor_type, "actor_id": run.actor_id, "origin_system_id": run.origin_system_id}
    payload = {"run_id": run.run_id, "agent_id": run.agent_id, "attribution": attribution, "source": run.source}
    await events.record(session, OWNER, who, "run.created", run.tenant_id, payload, project(run))
    return run, True


async def _live(session: AsyncSession, tenant_id: str, run_id: str) -> Run:
    """The run, locked until commit: concurrent heartbeats and completions of one run queue here."""
    run = await repository.get_run(session, tenant_id, run_id, lock=True)
    if run.state != "LIVE":
        raise policy.conflict("the run is completed", "RUN_COMPLETED", status=run.status)
    return run


async def heartbeat(session: AsyncSession, who: Principal, run_id: str, totals: Totals, t: policy.Thresholds) -> Run:
    run = await _live(session, who.tenant(), run_id)
    now = datetime.now(UTC)
    if (now - run.last_seen_at).total_seconds() < policy.QUIET_SECONDS:
        return run
    seen = Totals(*(max(old, new) for old, new in zip(_totals(run), totals, strict=True)))
    usage = policy.Usage(seen.cost_cents, seen.input_tokens + seen.output_tokens, _ms(run.started_at, now))
    risk = policy.risk(t, usage, failed=False)
    run = await repository.update_run(session, run, last_seen_at=now, **seen._asdict(), **_risk(risk))
    payload = {"run_id": run.run_id, "last_seen_at": now.isoformat(), "risk_level": run.risk_level}
    await events.record(session, OWNER, who, "run.heartbeat", run.tenant_id, payload, project(run))
    return run


def _totals(run: Run) -> Totals:
    return Totals(run.input_tokens, run.output_tokens, run.cost_cents)


def _risk(risk: policy.Risk) -> dict[str, Any]:
    return {
        "risk_level": risk.level,
        "risk_type": risk.risk_type,
        "policy_violation": risk.violation,
        "policy_context": risk.context,
    }


class Completed(NamedTuple):
    run: Run
    record_id: str
    incident_ids: list[str]


async def complete(
    session: AsyncSession, who: Principal, run_id: str, done: Completion, t: policy.Thresholds
) -> Completed:
    """Completes the run once: the derivations, its record, its incident and the events, all or nothing.
    The same completion again changes nothing; another status is a conflict."""
    tenant_id = who.tenant()
    run = await repository.get_run(session, tenant_id, run_id, lock=True)
    if run.state == "COMPLETED":
        if run.status != done.status:
            raise policy.conflict(f"the run already {run.status}", "RUN_COMPLETED", status=run.status)
        record = await repository.record_of(session, tenant_id, run.run_id)
        found = await repository.incidents_of(session, tenant_id, run.run_id)
        return Completed(run, record.id if record else "", [i.incident_id for i in found])
    now = datetime.now(UTC)
    final = Totals(*(max(old, new) for old, new in zip(_totals(run), done.totals, strict=True)))
    duration = done.duration_ms if done.duration_ms is not None else _ms(run.started_at, now)
    code = policy.incident_code(done.status, done.error_code, done.error_message)
    usage = policy.Usage(final.cost_cents, final.input_tokens + final.output_tokens, duration)
    latency = policy.latency_bucket(t, run.expected_latency_ms, duration, None)
    hashes = (done.prompt_hash is not None) + (done.response_hash is not None)
    traced = await _traced(session, tenant_id, run.run_id, done.trace_id)
    run = await repository.update_run(
        session,
        run,
        state="COMPLETED",
        status=done.status,
        completed_at=now,
        duration_ms=duration,
        error_code=done.error_code or None,
        error_message=done.error_message or None,
        provider_type=policy.provider_type(done.provider or ""),
        latency_bucket=latency,
        evidence_health=policy.evidence_health(False, latency, hashes, traced=traced),
        incident_count=1 if code else 0,
        incident_severity=policy.CODES[code][0] if code else None,
        **final._asdict(),
        **_risk(policy.risk(t, usage, failed=done.status == "failed")),
    )
    record = _record(run, done, code, who)
    await repository.add(session, record)
    opened = [await incidents.open_for(session, who, run, code, project(run))] if code else []
    payload = {
        **{k: getattr(run, k) for k in ("run_id", "status", "duration_ms", "cost_cents", "risk_level")},
        "tokens": final.input_tokens + final.output_tokens,
        "record_id": record.id,
        "incident_ids": opened,
    }
    await events.record(session, OWNER, who, "run.completed", tenant_id, payload, project(run))
    return Completed(run, record.id, opened)


async def _traced(session: AsyncSession, tenant_id: str, run_id: str, trace_id: str | None) -> bool:
    """Whether a trace of the run was stored before it completed (one stored later sets FLOWING itself)."""
    named = Trace.run_id == run_id if trace_id is None else or_(Trace.run_id == run_id, Trace.trace_id == trace_id)
    return await session.scalar(select(exists().where(Trace.tenant_id == tenant_id, named))) or False


def _record(run: Run, done: Completion, code: str | None, who: Principal) -> LlmRunRecord:
    assert run.completed_at is not None
    return LlmRunRecord(
        id=str(uuid.uuid4()),
        tenant_id=run.tenant_id,
        run_id=run.run_id,
        trace_id=done.trace_id,
        provider=done.provider,
        model=done.model,
        prompt_hash=done.prompt_hash,
        response_hash=done.response_hash,
        input_tokens=run.input_tokens,
        output_tokens=run.output_tokens,
        cost_cents=run.cost_cents,
        execution_status=policy.execution_status(done.status, code),
        source="API" if who.kind is Kind.HUMAN else "SDK",
        started_at=run.started_at,
        completed_at=run.completed_at,
        is_synthetic=run.is_synthetic,
    )


async def set_thresholds(session: AsyncSession, who: Principal, changes: dict[str, int]) -> policy.Thresholds:
    """Sets the thresholds given; a value already set to the same number changes nothing and emits nothing."""
    tenant_id = who.tenant()
    current = await repository.thresholds(session, tenant_id)
    changed = {k: v for k, v in changes.items() if k not in current.customized or getattr(current, k) != v}
    if not changed:
        return current
    await repository.set_thresholds(session, tenant_id, changed)
    updated = await repository.thresholds(session, tenant_id)
    await events.record(session, OWNER, who, "thresholds.updated", tenant_id, {"changed": changed})
    return updated
