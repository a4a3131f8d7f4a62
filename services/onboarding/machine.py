"""The state machine with its I/O: cached reads, race-safe advances with their event, the predicate
asked of its three sources at once, finalize, promotion and the founder override."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common import events
from services.common.errors import FailedPrecondition, NotFound, ServiceError, Unavailable
from services.onboarding import policy, repository
from services.onboarding.clients import Clients
from services.onboarding.models import OnboardingAudit, OnboardingTransition
from services.onboarding.policy import State

log = logging.getLogger("aos.onboarding")
OWNER = "onboarding"


class TtlCache:
    """A small in-process cache whose entries live at most `ttl` seconds."""

    def __init__(self, ttl: float, size: int = 10_000) -> None:
        self._ttl, self._size = ttl, size
        self._items: dict[str, tuple[float, Any]] = {}

    def get(self, key: str) -> Any:
        hit = self._items.get(key)
        if hit is None or hit[0] < time.monotonic():
            self._items.pop(key, None)
            return None
        return hit[1]

    def put(self, key: str, value: Any) -> None:
        if len(self._items) >= self._size:
            self._items.clear()
        self._items[key] = (time.monotonic() + self._ttl, value)

    def drop(self, key: str) -> None:
        self._items.pop(key, None)

    def drop_where(self, match: Any) -> None:
        for key in [k for k, (_, v) in self._items.items() if match(v)]:
            self._items.pop(key, None)


@dataclass(frozen=True)
class Actor:
    type: str  # event actor_type: user, system, sdk, founder
    id: str


@dataclass(frozen=True)
class Result:
    from_state: State
    to_state: State
    was_no_op: bool


@dataclass(frozen=True)
class Evaluation:
    verdict: policy.Verdict
    requirements: list[tuple[str, str, str]]  # (name, met|missing, source)


class Machine:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], clients: Clients, cache_seconds: float) -> None:
        self.sessions, self.clients = sessions, clients
        self.states = TtlCache(cache_seconds)

    async def state(self, tenant_id: str, fresh: bool = False) -> State:
        """The tenant's state (cached unless fresh); a tenant onboarding has no row for is CREATED."""
        cached = None if fresh else self.states.get(tenant_id)
        if cached is not None:
            return State(cached)
        async with self.sessions() as session:
            row = await repository.get(session, tenant_id)
        state = State(row.state) if row else State.CREATED
        if row:
            self.states.put(tenant_id, int(state))
        return state

    async def learn(self, tenant_id: str, created_at: datetime | None = None) -> None:
        """Starts tracking a tenant at CREATED (no-op when tracked)."""
        async with self.sessions.begin() as session:
            await repository.ensure(session, tenant_id, created_at)

    async def known(self, tenant_id: str) -> bool:
        """Whether the tenant exists: onboarding's own row, else account (then it is tracked from now on)."""
        if self.states.get(tenant_id) is not None:
            return True
        async with self.sessions() as session:
            if await repository.get(session, tenant_id) is not None:
                return True
        try:
            tenant = (await self.clients.get_tenant(tenant_id)).tenant
        except NotFound:
            return False
        await self.learn(tenant_id, tenant.created_at.ToDatetime(UTC) if tenant.HasField("created_at") else None)
        return True

    async def advance(
        self,
        tenant_id: str,
        target: State,
        trigger: str,
        actor: Actor,
        *,
        reason: str | None = None,
        evaluation: Evaluation | None = None,
        session: AsyncSession | None = None,
    ) -> Result:
        """Moves forward to `target` with one transition row and one event, or records nothing."""
        if session is None:
            async with self.sessions.begin() as own:
                result = await self._advance(own, tenant_id, target, trigger, actor, reason, evaluation)
        else:
            result = await self._advance(session, tenant_id, target, trigger, actor, reason, evaluation)
        self.states.put(tenant_id, int(result.to_state))
        if not result.was_no_op:
            log.info(
                "onboarding_state_transition %s %s→%s (%s)", tenant_id, result.from_state.name, target.name, trigger
            )
        return result

    async def _advance(
        self,
        session: AsyncSession,
        tenant_id: str,
        target: State,
        trigger: str,
        actor: Actor,
        reason: str | None,
        evaluation: Evaluation | None,
    ) -> Result:
        await repository.ensure(session, tenant_id)
        before = await repository.advance(session, tenant_id, int(target))
        if before is None:
            row = await repository.get(session, tenant_id)
            current = State(row.state if row else 0)
            return Result(current, current, True)
        if evaluation is not None:
            await self._emit(session, "onboarding.activation.evaluated", tenant_id, actor, _evaluated(evaluation))
        payload = {"from_state": State(before).name, "to_state": target.name, "trigger": trigger}
        event = await self._emit(session, "onboarding.state.transition", tenant_id, actor, payload)
        await repository.add_transition(
            session,
            OnboardingTransition(
                tenant_id=tenant_id,
                from_state=before,
                to_state=int(target),
                trigger=trigger,
                actor_type=actor.type,
                actor_id=actor.id,
                reason=reason,
                event_id=event["event_id"],
                sequence_no=event["sequence_no"],
            ),
        )
        return Result(State(before), target, False)

    async def _emit(
        self, session: AsyncSession, event_type: str, tenant_id: str, actor: Actor, payload: dict[str, Any]
    ) -> dict[str, Any]:
        return await events.emit(
            session,
            event_type=event_type,
            tenant_id=tenant_id,
            actor_type=actor.type,
            actor_id=actor.id,
            decision_owner=OWNER,
            payload=payload,
        )

    async def evaluate(self, tenant_id: str) -> Evaluation:
        """Asks the three sources at once, each with its deadline; any source that does not answer makes
        the whole answer UNAVAILABLE naming it (never a false "missing")."""
        answers = await asyncio.gather(
            self.clients.account_evidence(tenant_id),
            self.clients.key_evidence(tenant_id),
            self.clients.connector_evidence(tenant_id),
            return_exceptions=True,
        )
        down = [
            peer.name for peer, a in zip(self.clients.peers(), answers, strict=True) if isinstance(a, BaseException)
        ]
        for answer in answers:
            if isinstance(answer, BaseException) and not isinstance(answer, ServiceError):
                raise answer
        account, keys, integrations = answers
        met = {
            "project_ready": None if "account" in down else account.has_active_project,  # type: ignore[union-attr]
            "key_ready": None if "api_keys" in down else keys.has_valid_key,  # type: ignore[union-attr]
            "connector_validated": None if "integrations" in down else integrations.has_validated_connector,  # type: ignore[union-attr]
            "sdk_attested": None if "account" in down else account.has_attestation,  # type: ignore[union-attr]
        }
        requirements = [
            (req, "unknown" if met[req] is None else ("met" if met[req] else "missing"), source)
            for req, source in policy.REQUIREMENTS
        ]
        if down:
            raise Unavailable(
                f"activation evidence unavailable from {', '.join(down)}",
                reason="EVIDENCE_UNAVAILABLE",
                metadata={"dependency": ",".join(down)} | {name: status for name, status, _ in requirements},
            )
        verdict = policy.predicate(*(bool(met[req]) for req, _ in policy.REQUIREMENTS))
        return Evaluation(verdict, requirements)

    async def finalize(
        self, tenant_id: str, actor: Actor, trigger: str = "finalize", *, record_failure: bool = True
    ) -> tuple[Result, Evaluation | None]:
        current = await self._fresh_state(tenant_id)
        if current >= State.COMPLETE:
            return Result(current, current, True), None
        evaluation = await self.evaluate(tenant_id)
        if not evaluation.verdict.passed:
            if record_failure:  # an explicit request's verdict is recorded; automatic attempts are not
                async with self.sessions.begin() as session:
                    await self._emit(
                        session, "onboarding.activation.evaluated", tenant_id, actor, _evaluated(evaluation)
                    )
            missing = evaluation.verdict.missing
            raise FailedPrecondition(
                policy.failure_message(missing),
                reason="ACTIVATION_INCOMPLETE",
                metadata={"missing": ",".join(missing)},
                violations=[("ACTIVATION", m, f"{m} is not met") for m in missing],
            )
        return await self.advance(tenant_id, State.COMPLETE, trigger, actor, evaluation=evaluation), evaluation

    async def promote(self, tenant_id: str) -> bool:
        """Automatic promotion when evidence arrives at SDK_CONNECTED; best effort (evidence events retry it)."""
        if await self._fresh_state(tenant_id) != State.SDK_CONNECTED:
            return False
        try:
            result, _ = await self.finalize(
                tenant_id,
                Actor("system", "activation_evidence_complete"),
                "activation_evidence_complete",
                record_failure=False,
            )
        except (FailedPrecondition, Unavailable) as exc:
            log.info("no promotion of %s: %s", tenant_id, exc.message)
            return False
        return not result.was_no_op

    async def force_complete(self, tenant_id: str, reason: str, actor: Actor, email: str) -> tuple[Result, str]:
        if not await self.known(tenant_id):
            raise NotFound(f"Tenant {tenant_id} not found", reason="TENANT_NOT_FOUND")
        current = await self._fresh_state(tenant_id)
        if current >= State.COMPLETE:
            return Result(current, current, True), "no_op"
        try:
            missing = (await self.evaluate(tenant_id)).verdict.missing
        except Unavailable:
            missing = []  # the override does not need the predicate; the audit then lists none
        audit_id = f"audit_onb_{tenant_id}_{int(time.time())}"
        async with self.sessions.begin() as session:
            # The audit row is written first: if it fails, nothing changes (SPEC 3.4).
            await repository.add_audit(
                session,
                OnboardingAudit(
                    audit_id=audit_id,
                    tenant_id=tenant_id,
                    action="force_complete",
                    from_state=int(current),
                    to_state=int(State.COMPLETE),
                    actor_type="founder",
                    actor_id=actor.id,
                    actor_email=email,
                    reason=reason,
                    missing=missing,
                ),
            )
            result = await self.advance(
                tenant_id, State.COMPLETE, f"founder_force_complete:{email}", actor, reason=reason, session=session
            )
            if not result.was_no_op:
                payload = {
                    "audit_id": audit_id,
                    "reason": reason,
                    "from_state": result.from_state.name,
                    "missing": missing,
                }
                await self._emit(session, "onboarding.force_completed", tenant_id, actor, payload)
        return result, audit_id if not result.was_no_op else "no_op"

    async def _fresh_state(self, tenant_id: str) -> State:
        self.states.drop(tenant_id)
        return await self.state(tenant_id)


def _evaluated(evaluation: Evaluation) -> dict[str, Any]:
    return {
        "passed": evaluation.verdict.passed,
        "missing": evaluation.verdict.missing,
        "evidence": {name: status for name, status, _ in evaluation.requirements},
    }
