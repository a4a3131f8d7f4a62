"""The tenants' places on the ladder: the cached read the gate and the RPCs share, and the moves up it, each
written in the caller's transaction with its transition row and events."""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any, NamedTuple

from cachetools import TTLCache
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common import events
from services.common.principal import Principal
from services.onboarding import repository
from services.onboarding.models import OnboardingAudit, OnboardingTransition
from services.onboarding.policy import Evaluation, Move, Skipped, State

log = logging.getLogger("aos.onboarding")
OWNER = "onboarding"
PROMOTION = "activation_evidence_complete"


class Actor(NamedTuple):
    """An event's actor that is no caller (a caller's Principal is its own actor)."""

    actor_type: str  # user, system, sdk, founder
    actor_id: str


class Cache:
    """Tenant states read or written lately, at most `seconds` old. States only grow, so a cached state can only
    be too low. A hit costs ~2 µs where opening a session costs ~100 µs, so the cache is asked first and a
    session opened only on a miss: the gate asks on every request."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], seconds: float, size: int = 10_000) -> None:
        self._sessions = sessions
        self._states: TTLCache[str, State] = TTLCache(maxsize=size, ttl=seconds)

    async def get(self, tenant_id: str, *, fresh: bool = False) -> State:
        """The tenant's state (cached unless fresh); a tenant onboarding has no row for is CREATED."""
        state = None if fresh else self._states.get(tenant_id)
        if state is None:
            async with self._sessions() as session:
                row = await repository.get(session, tenant_id)
            if row is None:
                return State.CREATED
            state = self._states[tenant_id] = State(row.state)
        return state

    async def tracked(self, tenant_id: str) -> bool:
        """Whether onboarding has the tenant's row."""
        if tenant_id in self._states:
            return True
        async with self._sessions() as session:
            return await repository.get(session, tenant_id) is not None

    def peek(self, tenant_id: str) -> State | None:
        """The cached state, without reading the database on a miss."""
        return self._states.get(tenant_id)

    def put(self, tenant_id: str, state: State) -> None:
        self._states[tenant_id] = state

    def drop(self, tenant_id: str) -> None:
        self._states.pop(tenant_id, None)


def _evaluated(evaluation: Evaluation) -> dict[str, Any]:
    return {
        "passed": evaluation.verdict.passed,
        "missing": evaluation.verdict.missing,
        "evidence": {name: status for name, status, _ in evaluation.requirements},
    }


async def advance(
    session: AsyncSession,
    tenant_id: str,
    target: State,
    trigger: str,
    actor: events.Actor,
    *,
    created_at: datetime | None = None,
    reason: str | None = None,
    evaluation: Evaluation | None = None,
) -> Move:
    """Moves forward to `target` with one transition row and one event (after the event of the evaluation
    that earned it, if one did), or records nothing. An untracked tenant is tracked from `created_at`."""
    await repository.ensure(session, tenant_id, created_at)
    before = await repository.advance(session, tenant_id, int(target))
    if before is None:
        row = await repository.get(session, tenant_id)
        current = State(row.state if row else State.CREATED)
        return Move(current, current, True)
    if evaluation is not None:
        await events.record(session, OWNER, actor, "onboarding.activation.evaluated", tenant_id, _evaluated(evaluation))
    payload = {"from_state": State(before).name, "to_state": target.name, "trigger": trigger}
    event = await events.record(session, OWNER, actor, "onboarding.state.transition", tenant_id, payload)
    await repository.add_transition(
        session,
        OnboardingTransition(
            tenant_id=tenant_id,
            from_state=before,
            to_state=int(target),
            trigger=trigger,
            actor_type=actor.actor_type,
            actor_id=actor.actor_id,
            reason=reason,
            event_id=event["event_id"],
            sequence_no=event["sequence_no"],
        ),
    )
    log.info("onboarding_state_transition %s %s→%s (%s)", tenant_id, State(before).name, target.name, trigger)
    return Move(State(before), target, False)


async def complete(session: AsyncSession, tenant_id: str, actor: events.Actor, evaluation: Evaluation) -> Move | None:
    """A tenant's own request to finish: COMPLETE on a passing evaluation; a failing one is recorded (the
    tenant asked, unlike an automatic attempt) and answered with None."""
    if not evaluation.verdict.passed:
        await events.record(session, OWNER, actor, "onboarding.activation.evaluated", tenant_id, _evaluated(evaluation))
        return None
    return await advance(session, tenant_id, State.COMPLETE, "finalize", actor, evaluation=evaluation)


async def climb(
    session: AsyncSession,
    tenant_id: str,
    target: State | None,
    trigger: str,
    actor: events.Actor,
    promotion: Evaluation | None,
) -> tuple[State, bool]:
    """Advances to `target` (None: no move) and, with a passing `promotion` evaluation, on to COMPLETE (the
    automatic promotion at SDK_CONNECTED). The state reached, and whether anything moved."""
    moves = []
    if target is not None:
        moves.append(await advance(session, tenant_id, target, trigger, actor))
    if promotion is not None:
        system = Actor("system", PROMOTION)
        moves.append(await advance(session, tenant_id, State.COMPLETE, PROMOTION, system, evaluation=promotion))
    return moves[-1].to_state, any(not m.was_no_op for m in moves)


async def force_complete(
    session: AsyncSession,
    tenant_id: str,
    operator: Principal,
    reason: str,
    skipped: Skipped,
    created_at: datetime | None,
) -> tuple[Move, str]:
    """The founder override: COMPLETE whatever the predicate says, with an audit row. The audit id, or
    "no_op" when the tenant already was COMPLETE, a concurrent promotion included: then nothing is written."""
    actor = Actor("founder", operator.actor_id)
    trigger = f"founder_force_complete:{operator.email}"
    move = await advance(session, tenant_id, State.COMPLETE, trigger, actor, created_at=created_at, reason=reason)
    if move.was_no_op:
        return move, "no_op"
    # SPEC 3.4 wants the audit written before the change, so that a failed audit aborts it: in one transaction
    # that holds in either order, and writing it second lets a lost race leave no audit of a change not made.
    audit_id = f"audit_onb_{tenant_id}_{int(time.time())}"
    await repository.add_audit(
        session,
        OnboardingAudit(
            audit_id=audit_id,
            tenant_id=tenant_id,
            action="force_complete",
            from_state=int(move.from_state),
            to_state=int(State.COMPLETE),
            actor_type=actor.actor_type,
            actor_id=actor.actor_id,
            actor_email=operator.email,
            reason=reason,
            missing=skipped.missing,
            unknown=skipped.unknown,
        ),
    )
    payload = {
        "audit_id": audit_id,
        "reason": reason,
        "from_state": move.from_state.name,
        "missing": skipped.missing,
        "unknown": skipped.unknown,
    }
    await events.record(session, OWNER, actor, "onboarding.force_completed", tenant_id, payload)
    return move, audit_id
