"""An incident's changes inside the RPC's transaction (MONITORING.md section 4): opened by a failed or
aborted run's completion, then acknowledged and resolved; repeating a done move changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.common import events
from services.common.principal import Principal
from services.monitoring import policy, repository
from services.monitoring.models import Incident, Run

OWNER = "monitoring"


async def _record(session: AsyncSession, who: Principal, incident: Incident, verb: str, project_id: str) -> None:
    payload = {
        "incident_id": incident.incident_id,
        "run_id": incident.source_run_id,
        "severity": incident.severity,
        "category": incident.category,
        "lifecycle_state": incident.lifecycle_state,
    }
    await events.record(session, OWNER, who, f"incident.{verb}", incident.tenant_id, payload, project_id)


async def open_for(session: AsyncSession, who: Principal, run: Run, code: str, project_id: str) -> str:
    severity, category = policy.CODES[code]
    incident = Incident(
        incident_id=policy.new_incident_id(),
        tenant_id=run.tenant_id,
        source_run_id=run.run_id,
        title=policy.incident_title(code, run.run_id),
        severity=severity,
        category=category,
        error_code=code,
        error_message=run.error_message,
        cause_type="LLM_RUN",
        lifecycle_state="ACTIVE",
        affected_agent_id=run.agent_id,
        cost_impact_cents=run.cost_cents,
        is_synthetic=run.is_synthetic,
    )
    await repository.add(session, incident)
    await _record(session, who, incident, "created", project_id)
    return incident.incident_id


async def _stream(session: AsyncSession, incident: Incident) -> str:
    """An incident's events go to its run's stream, like the run's own."""
    if incident.source_run_id is None:
        return events.SYSTEM
    run = await repository.get_run(session, incident.tenant_id, incident.source_run_id)
    return run.project_id or events.SYSTEM


async def _move(
    session: AsyncSession,
    who: Principal,
    incident_id: str,
    moves: Callable[[str], bool],
    verb: str,
    values: dict[str, Any],
) -> Incident:
    """The incident after the move, locked until commit; unchanged when `moves` says the move is done."""
    incident = await repository.get_incident(session, who.tenant(), incident_id, lock=True)
    if not moves(incident.lifecycle_state):
        return incident
    incident = await repository.update_incident(session, incident, **values)
    await _record(session, who, incident, verb, await _stream(session, incident))
    return incident


async def acknowledge(session: AsyncSession, who: Principal, incident_id: str, note: str) -> Incident:
    acked = {
        "lifecycle_state": "ACKED",
        "acked_at": datetime.now(UTC),
        "acked_by": who.actor_id,
        "ack_note": note or None,
    }
    return await _move(session, who, incident_id, policy.acknowledges, "acknowledged", acked)


async def resolve(session: AsyncSession, who: Principal, incident_id: str, method: str, notes: str) -> Incident:
    resolved = {
        "lifecycle_state": "RESOLVED",
        "resolved_at": datetime.now(UTC),
        "resolved_by": who.actor_id,
        "resolution_method": method,
        "resolution_notes": notes or None,
    }
    return await _move(session, who, incident_id, policy.resolves, "resolved", resolved)
