"""Founder review (MONITORING.md 0.9): the access audit each cross-tenant read commits before it reads, the
counter of reads that went ahead without one, and the reads themselves."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.common import events
from services.common.errors import NotFound
from services.common.interceptors import request_id
from services.common.principal import Principal
from services.monitoring import policy, repository
from services.monitoring.models import FounderAccessAudit, Incident, LlmRunRecord, MonitoringThreshold, Run
from services.monitoring.queries import Listing

OWNER = "monitoring"


class AuditFailures(Collector):
    """aos_monitoring_founder_audit_failures_total{rpc}: operator reads served without their audit row
    (alerted on). Counted on the event loop, copied by the scrape thread: a dict update needs no lock."""

    def __init__(self, rpcs: Iterable[str] = ()) -> None:
        # Every RPC's series exists from the start at 0, so an alert on its increase sees the first failure.
        self.counts: dict[str, int] = dict.fromkeys(rpcs, 0)

    def add(self, rpc: str) -> None:
        self.counts[rpc] = self.counts.get(rpc, 0) + 1

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "aos_monitoring_founder_audit_failures",
            "Founder reads that proceeded although their access audit could not be written",
            labels=["rpc"],
        )
        for rpc, n in list(self.counts.items()):
            family.add_metric([rpc], n)
        yield family


async def record_access(
    session: AsyncSession, who: Principal, rpc: str, filters: dict[str, Any], run_id: str | None = None
) -> str:
    """Writes the audit row and its event; a run's tenant is looked up in the same statement (null for a run
    that does not exist: the attempt is audited too)."""
    tenant = select(Run.tenant_id).where(Run.run_id == run_id).scalar_subquery() if run_id else None
    row = {
        "id": str(uuid.uuid4()),
        "operator_id": who.actor_id,
        "operator_email": who.email,
        "rpc": rpc,
        "tenant_id": tenant,
        "target_id": run_id,
        "filters": filters,
        "request_id": request_id.get(),
    }
    stmt = insert(FounderAccessAudit).values(**row).returning(FounderAccessAudit.tenant_id)
    tenant_id = (await session.execute(stmt)).scalar_one()
    payload = {"audit_id": row["id"], "rpc": rpc}
    await events.record(session, OWNER, who, "founder.access_recorded", tenant_id or events.SYSTEM, payload)
    return str(row["id"])


async def every(session: AsyncSession, model: type[repository.Row], listing: Listing) -> list[repository.Row]:
    """A page of every tenant's rows (one more than the page when another follows); no count, which would
    read them all."""
    return list((await session.scalars(listing.select(select(model)))).all())


async def thresholds_of(session: AsyncSession, tenant_ids: set[str]) -> dict[str, policy.Thresholds]:
    """The thresholds of the tenants on a page (tenants that set none are absent: defaults apply)."""
    if not tenant_ids:
        return {}
    rows = await session.scalars(select(MonitoringThreshold).where(MonitoringThreshold.tenant_id.in_(tenant_ids)))
    return {r.tenant_id: policy.Thresholds.of({n: getattr(r, n) for n in policy.THRESHOLDS}) for r in rows}


async def timeline(session: AsyncSession, run_id: str) -> tuple[Run, list[Incident], LlmRunRecord | None]:
    """A run of any tenant with its incidents (oldest first) and its record (None while LIVE)."""
    run = await session.get(Run, run_id)
    if run is None:
        raise NotFound("run not found", reason="RUN_NOT_FOUND")
    found = await repository.incidents_of(session, run.tenant_id, run_id)
    record = await repository.record_of(session, run.tenant_id, run_id)
    return run, found[::-1], record
