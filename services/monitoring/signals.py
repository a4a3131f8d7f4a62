"""Signals (MONITORING.md section 5): derived from the tenant's runs when read, never stored; only people's
feedback on them is. The list is one SQL statement; acknowledging and suppressing check the signal is still
there, then write feedback and its event in the caller's transaction. Nothing here commits."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import String, and_, case, exists, func, literal, literal_column, select, text, true, union_all
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from services.common import events
from services.common.errors import NotFound
from services.common.principal import Principal
from services.monitoring import policy, repository
from services.monitoring.models import Run, SignalFeedback
from services.monitoring.queries import Signals
from services.monitoring.requests import SignalTarget as Target
from services.monitoring.runs import OWNER, project

# A signal can be acted on while some list could still show it: its run started within the widest window.
MAX_WINDOW = timedelta(hours=720)
_HOUR: Any = literal_column("interval '1 hour'")


def _derived(tenant_id: str, q: Signals) -> Any:
    """Every signal of the tenant's runs in the window: one row per (run, type), with its severity."""
    scope = [Run.tenant_id == tenant_id, Run.started_at >= func.now() - q.window_hours * _HOUR]
    scope += [Run.project_id == q.project_id] if q.project_id else []
    columns = (Run.run_id, Run.project_id, Run.started_at, Run.policy_context, Run.risk_level, Run.incident_severity)
    risks = select(
        *columns,
        case(policy.RISK_SIGNALS, value=Run.risk_type).label("signal_type"),
        case(policy.RISK_SEVERITY, value=Run.risk_level).label("severity"),
    ).where(*scope, Run.risk_level.in_(tuple(policy.RISK_SEVERITY)))
    failures = select(
        *columns,
        literal(policy.EXECUTION_FAILURE, String).label("signal_type"),
        case(policy.FAILURE_SEVERITY, value=Run.incident_severity).label("severity"),
    ).where(*scope, Run.incident_severity.is_not(None))
    derived = union_all(risks, failures).subquery("derived")
    # policy.fingerprint in SQL: first 32 hex of SHA-256("v1|tenant|run|type").
    key = func.concat("v1|", tenant_id, "|", derived.c.run_id, "|", derived.c.signal_type)
    fingerprint = func.substr(func.encode(func.sha256(func.convert_to(key, "UTF8")), "hex"), 1, 32)
    return select(derived, fingerprint.label("fingerprint")).subquery("fingerprinted")


async def page(session: AsyncSession, tenant_id: str, q: Signals) -> tuple[list[Any], int]:
    """One statement: derive, join acknowledgements, drop live suppressions, filter, count, order, page. The
    count comes out even when the page is past the end (a LEFT JOIN LATERAL keeps one row of it)."""
    signal = _derived(tenant_id, q)
    ack = aliased(SignalFeedback)
    suppressed = exists().where(
        SignalFeedback.tenant_id == tenant_id,
        SignalFeedback.signal_fingerprint == signal.c.fingerprint,
        SignalFeedback.feedback_state == "SUPPRESSED",
        SignalFeedback.expires_at > func.now(),
    )
    weight = case(policy.SEVERITY_WEIGHT, value=signal.c.severity)
    rank = weight * case((ack.id.is_not(None), policy.ACKNOWLEDGED_FACTOR), else_=1.0)
    joined = and_(
        ack.tenant_id == tenant_id, ack.signal_fingerprint == signal.c.fingerprint, ack.feedback_state == "ACKNOWLEDGED"
    )
    where = [~suppressed]
    where += [signal.c.signal_type.in_(q.signal_types)] if q.signal_types else []
    where += [signal.c.severity.in_(q.severities)] if q.severities else []
    visible = (
        select(signal, ack.actor, ack.comment, ack.created_at.label("acknowledged_at"), rank.label("rank"))
        .outerjoin(ack, joined)
        .where(*where)
        .cte("visible")
    )
    v = visible.c
    order = (v.rank.desc(), v.started_at.desc(), v.run_id.desc(), v.signal_type)
    counted = select(func.count().label("total")).select_from(visible).subquery("counted")
    paged = select(visible).order_by(*order).offset(q.page.offset).limit(q.page.size).subquery("paged").lateral()
    p = paged.c
    query = (
        select(counted.c.total, paged)
        .select_from(counted.outerjoin(paged, true()))
        .order_by(p.rank.desc(), p.started_at.desc(), p.run_id.desc(), p.signal_type)
    )
    rows = (await session.execute(query)).all()
    total = rows[0].total if rows else 0
    return [r for r in rows if r.run_id is not None], total


async def _visible(session: AsyncSession, tenant_id: str, target: Target) -> Any:
    """The run whose signal `target` names: unknown run 404; a run that no longer yields it 409."""
    run = await repository.get_run(session, tenant_id, target.run_id)
    yielded = policy.signals_of(run.risk_level, run.risk_type, run.incident_severity)
    if target.signal_type not in yielded or run.started_at < datetime.now(UTC) - MAX_WINDOW:
        raise policy.conflict("the signal is no longer derivable from its run", "SIGNAL_NOT_VISIBLE")
    if target.risk_type and target.risk_type != run.risk_type:
        raise NotFound("signal not found", reason="SIGNAL_NOT_FOUND")
    return run


def _feedback(tenant_id: str, target: Target, who: Principal, state: str, note: str | None) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "tenant_id": tenant_id,
        "signal_fingerprint": target.fingerprint,
        "run_id": target.run_id,
        "signal_type": target.signal_type,
        "feedback_state": state,
        "actor": who.actor_id,
        "comment": note,
    }


async def acknowledge(session: AsyncSession, who: Principal, target: Target, comment: str | None) -> SignalFeedback:
    """The first acknowledgement is stored and announced; a repeat returns it and changes nothing."""
    tenant_id = who.tenant()
    run = await _visible(session, tenant_id, target)
    stmt = (
        insert(SignalFeedback)
        .values(**_feedback(tenant_id, target, who, "ACKNOWLEDGED", comment))
        .on_conflict_do_nothing(
            index_elements=[SignalFeedback.tenant_id, SignalFeedback.signal_fingerprint],
            index_where=text("feedback_state = 'ACKNOWLEDGED'"),
        )
        .returning(SignalFeedback)
    )
    row = (await session.execute(stmt)).scalar_one_or_none()
    if row is None:
        earlier = select(SignalFeedback).where(
            SignalFeedback.tenant_id == tenant_id,
            SignalFeedback.signal_fingerprint == target.fingerprint,
            SignalFeedback.feedback_state == "ACKNOWLEDGED",
        )
        return (await session.execute(earlier)).scalar_one()
    await _announce(session, who, run, row, "signal.acknowledged")
    return row


async def suppress(
    session: AsyncSession, who: Principal, target: Target, minutes: int, reason: str | None
) -> SignalFeedback:
    """Hides the signal from the tenant's lists until now + minutes; every suppression is its own row."""
    tenant_id = who.tenant()
    run = await _visible(session, tenant_id, target)
    values = _feedback(tenant_id, target, who, "SUPPRESSED", reason)
    until = func.now() + minutes * literal_column("interval '1 minute'")
    stmt = insert(SignalFeedback).values(**values, expires_at=until).returning(SignalFeedback)
    row = (await session.execute(stmt)).scalar_one()
    await _announce(session, who, run, row, "signal.suppressed")
    return row


async def _announce(session: AsyncSession, who: Principal, run: Run, row: SignalFeedback, event_type: str) -> None:
    payload = {
        "signal_fingerprint": row.signal_fingerprint,
        "run_id": row.run_id,
        "signal_type": row.signal_type,
        "expires_at": row.expires_at.isoformat() if row.expires_at else None,
    }
    await events.record(session, OWNER, who, event_type, row.tenant_id, payload, project(run))
