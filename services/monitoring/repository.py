"""Reads and row writes of monitoring's tables, always scoped by the caller's tenant (another tenant's id is
a missing id). Everything runs in the caller's transaction; nothing here commits."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, TypeVar

from sqlalchemy import and_, case, func, inspect, literal_column, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.errors import NotFound
from services.monitoring import policy, queries
from services.monitoring.models import (
    Incident,
    LlmRunRecord,
    MonitoringThreshold,
    Run,
    TenantLifecycle,
    Trace,
    UsageDaily,
    UsageRecord,
)
from services.monitoring.queries import Listing

Row = TypeVar("Row", Run, Incident, LlmRunRecord, Trace)


async def tenant_status(session: AsyncSession, tenant_id: str) -> str | None:
    return await session.scalar(select(TenantLifecycle.status).where(TenantLifecycle.tenant_id == tenant_id))


async def mirror_tenant(session: AsyncSession, tenant_id: str, status: str) -> None:
    stmt = insert(TenantLifecycle).values(tenant_id=tenant_id, status=status)
    changed = {"status": status, "updated_at": func.now()}
    await session.execute(stmt.on_conflict_do_update(index_elements=[TenantLifecycle.tenant_id], set_=changed))


async def thresholds(session: AsyncSession, tenant_id: str) -> policy.Thresholds:
    row = await session.get(MonitoringThreshold, tenant_id)
    return policy.Thresholds.of({name: getattr(row, name) for name in policy.THRESHOLDS} if row else {})


async def set_thresholds(session: AsyncSession, tenant_id: str, changes: dict[str, int]) -> None:
    stmt = insert(MonitoringThreshold).values(tenant_id=tenant_id, **changes)
    stmt = stmt.on_conflict_do_update(
        index_elements=[MonitoringThreshold.tenant_id], set_={**changes, "updated_at": func.now()}
    )
    await session.execute(stmt)


async def insert_run(session: AsyncSession, values: dict[str, Any]) -> Run | None:
    """The new run, or None when the tenant already used its idempotency_key."""
    stmt = insert(Run).values(**values).on_conflict_do_nothing(index_elements=[Run.tenant_id, Run.idempotency_key])
    return (await session.execute(stmt.returning(Run))).scalar_one_or_none()


async def run_by_key(session: AsyncSession, tenant_id: str, idempotency_key: str) -> Run:
    query = select(Run).where(Run.tenant_id == tenant_id, Run.idempotency_key == idempotency_key)
    return (await session.execute(query)).scalar_one()


async def _one(session: AsyncSession, model: type[Row], tenant_id: str, ident: str, lock: bool) -> Row:
    (key,) = inspect(model).primary_key
    query = select(model).where(key == ident, model.tenant_id == tenant_id)
    row = await session.scalar(query.with_for_update() if lock else query)
    if row is None:
        noun = model.__tablename__
        raise NotFound(f"{noun} not found", reason=f"{noun.upper()}_NOT_FOUND")
    return row


async def _change(session: AsyncSession, row: Row, *where: Any, **values: Any) -> Row:
    """Updates one row of the tenant and returns it; `where` may narrow it further (no match raises)."""
    model = type(row)
    (key,) = inspect(model).primary_key
    stmt = (
        update(model)
        .where(key == getattr(row, key.name), model.tenant_id == row.tenant_id, *where)
        .values(**values)
        .returning(model)
        # populate_existing: the session already holds this row (read under lock just before).
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return (await session.execute(stmt)).scalar_one()


async def get_run(session: AsyncSession, tenant_id: str, run_id: str, *, lock: bool = False) -> Run:
    return await _one(session, Run, tenant_id, run_id, lock)


async def update_run(session: AsyncSession, run: Run, **values: Any) -> Run:
    """Changes a LIVE run the caller has locked; the state condition keeps a completed run as it is."""
    return await _change(session, run, Run.state == "LIVE", **values)


async def add(session: AsyncSession, row: Any) -> None:
    session.add(row)
    await session.flush()


async def record_of(session: AsyncSession, tenant_id: str, run_id: str) -> LlmRunRecord | None:
    query = select(LlmRunRecord).where(LlmRunRecord.tenant_id == tenant_id, LlmRunRecord.run_id == run_id)
    return await session.scalar(query)


async def incidents_of(session: AsyncSession, tenant_id: str, run_id: str) -> list[Incident]:
    query = (
        select(Incident)
        .where(Incident.tenant_id == tenant_id, Incident.source_run_id == run_id)
        .order_by(Incident.created_at.desc(), Incident.incident_id.desc())
    )
    return list((await session.scalars(query)).all())


async def page(session: AsyncSession, model: type[Row], tenant_id: str, listing: Listing) -> tuple[list[Row], int]:
    """A listing's rows (one more than the page when another follows) and the filtered total."""
    scope = [model.tenant_id == tenant_id, *listing.where]
    total = await session.scalar(select(func.count()).select_from(model).where(*scope)) or 0
    query = listing.select(select(model).where(model.tenant_id == tenant_id))
    return list((await session.scalars(query)).all()), total


async def status_counts(session: AsyncSession, tenant_id: str, project_id: str) -> list[tuple[str, int]]:
    scope = [Run.tenant_id == tenant_id, *([Run.project_id == project_id] if project_id else [])]
    query = select(Run.status, func.count()).where(*scope).group_by(Run.status)
    return [(status, count) for status, count in (await session.execute(query)).all()]


async def run_counts(session: AsyncSession, tenant_id: str, project_id: str) -> list[tuple[str, str, str, str, int]]:
    """LIVE runs and runs completed in the last 24 h, counted by (group, risk_level, evidence_health, risk_type);
    a LIVE run's evidence is derived as the live list derives it."""
    live = Run.state == "LIVE"
    day_ago = func.now() - literal_column("interval '24 hours'")
    scope = [Run.tenant_id == tenant_id, or_(live, and_(Run.state == "COMPLETED", Run.completed_at >= day_ago))]
    scope += [Run.project_id == project_id] if project_id else []
    evidence = case((and_(live, queries.stalled()), "DEGRADED"), (live, "FLOWING"), else_=Run.evidence_health)
    runs = (
        select(
            case((live, "live"), else_="completed_24h").label("grp"),
            Run.risk_level,
            evidence.label("evidence_health"),
            Run.risk_type,
        )
        .where(*scope)
        .subquery()
    )
    c = runs.c
    query = select(c.grp, c.risk_level, c.evidence_health, c.risk_type, func.count()).group_by(
        c.grp, c.risk_level, c.evidence_health, c.risk_type
    )
    return [(g, r, e, t, n) for g, r, e, t, n in (await session.execute(query)).all()]


async def get_incident(session: AsyncSession, tenant_id: str, incident_id: str, *, lock: bool = False) -> Incident:
    return await _one(session, Incident, tenant_id, incident_id, lock)


async def update_incident(session: AsyncSession, incident: Incident, **values: Any) -> Incident:
    return await _change(session, incident, **values, updated_at=func.now())


async def usage_id(session: AsyncSession, tenant_id: str, call_id: str) -> str:
    query = select(UsageRecord.id).where(UsageRecord.tenant_id == tenant_id, UsageRecord.call_id == call_id)
    return str((await session.execute(query)).scalar_one())


async def tenant_usage(session: AsyncSession, tenant_id: str, now: datetime) -> tuple[int, int, int]:
    """Runs started today and this month, and tokens this month (UTC; tokens from usage_daily)."""
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    month = today.replace(day=1)
    runs = select(func.count().filter(Run.started_at >= today), func.count()).where(
        Run.tenant_id == tenant_id, Run.started_at >= month
    )
    runs_today, runs_this_month = (await session.execute(runs)).one()
    tokens = select(func.coalesce(func.sum(UsageDaily.tokens_in + UsageDaily.tokens_out), 0)).where(
        UsageDaily.tenant_id == tenant_id, UsageDaily.day >= month.date()
    )
    return int(runs_today), int(runs_this_month), int(await session.scalar(tokens) or 0)


async def integration_usage(
    session: AsyncSession, tenant_id: str, integration_id: str, start: date, end: date
) -> tuple[int, int, int, int]:
    """(cost_cents, tokens, records) over whole days from usage_daily, and the records of the last minute."""
    sums = select(
        func.coalesce(func.sum(UsageDaily.cost_cents), 0),
        func.coalesce(func.sum(UsageDaily.tokens_in + UsageDaily.tokens_out), 0),
        func.coalesce(func.sum(UsageDaily.records), 0),
    ).where(
        UsageDaily.tenant_id == tenant_id,
        UsageDaily.integration_id == integration_id,
        UsageDaily.day.between(start, end),
    )
    cost, tokens, records = (await session.execute(sums)).one()
    recent = select(func.count()).where(
        UsageRecord.tenant_id == tenant_id,
        UsageRecord.integration_id == integration_id,
        UsageRecord.created_at > func.now() - literal_column("interval '1 minute'"),
    )
    return int(cost), int(tokens), int(records), int(await session.scalar(recent) or 0)


async def incident_metrics(
    session: AsyncSession, tenant_id: str, since: datetime
) -> tuple[list[tuple[str, str, int]], tuple[float | None, ...]]:
    """The tenant's incidents created since `since`: counts by (lifecycle_state, severity), and the mean and
    median ms from creation to acknowledgement and to resolution (NULL when none got there)."""
    scope = [Incident.tenant_id == tenant_id, Incident.created_at >= since]
    grouped = select(Incident.lifecycle_state, Incident.severity, func.count()).where(*scope)
    counts = (await session.execute(grouped.group_by(Incident.lifecycle_state, Incident.severity))).all()
    stats = []
    for at in (Incident.acked_at, Incident.resolved_at):
        ms = func.extract("epoch", at - Incident.created_at) * 1000
        stats += [func.avg(ms), func.percentile_cont(0.5).within_group(ms)]
    times = (await session.execute(select(*stats).where(*scope))).one()
    return [(state, severity, n) for state, severity, n in counts], tuple(times)
