"""Evidence of a tenant's progress, however it arrives: an event in a producer's EventLog (followed with a
durable cursor, so evidence whose notification was lost is applied later), a producer's NotifyEvidence, the
SDK's handshake. Each earns its move and, at SDK_CONNECTED, the automatic promotion. Applying evidence twice
changes nothing: events are delivered at least once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aos.events.v1 import event_pb2
from aos.onboarding.v1 import onboarding_pb2 as pb
from services.common import events
from services.onboarding import activation, policy, repository, states
from services.onboarding.clients import Clients
from services.onboarding.policy import State
from services.onboarding.states import Actor

# event_type → the evidence it carries.
KINDS = {
    "api_key.created": pb.EVIDENCE_KIND_API_KEY_CREATED,
    "api_key.revoked": pb.EVIDENCE_KIND_API_KEY_CHANGED,
    "api_key.rotated": pb.EVIDENCE_KIND_API_KEY_CHANGED,
    "api_key.enabled": pb.EVIDENCE_KIND_API_KEY_CHANGED,
    "api_key.disabled": pb.EVIDENCE_KIND_API_KEY_CHANGED,
    "integration.created": pb.EVIDENCE_KIND_CONNECTOR_CHANGED,
    "integration.enabled": pb.EVIDENCE_KIND_CONNECTOR_CHANGED,
    "integration.disabled": pb.EVIDENCE_KIND_CONNECTOR_CHANGED,
    "integration.deleted": pb.EVIDENCE_KIND_CONNECTOR_CHANGED,
    "integration.tested": pb.EVIDENCE_KIND_CONNECTOR_CHANGED,
    "project.created": pb.EVIDENCE_KIND_PROJECT_CHANGED,
    "project.archived": pb.EVIDENCE_KIND_PROJECT_CHANGED,
    "sdk.attested": pb.EVIDENCE_KIND_SDK_ATTESTED,
}
FIRST_KEY = "first_api_key_created"
HANDSHAKE = "first_sdk_handshake"


def _field(event: event_pb2.Event, name: str) -> str:
    return event.payload.fields[name].string_value if name in event.payload.fields else ""


class Evidence:
    """Owns the transactions of the moves evidence earns: a fresh read, the sources asked outside any
    transaction, then one write holding the move and the promotion."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        cache: states.Cache,
        clients: Clients,
        forget_key: Callable[[str], None],
        forget_member: Callable[[str], None],
    ) -> None:
        self._sessions, self._cache, self._clients = sessions, cache, clients
        self._forget_key, self._forget_member = forget_key, forget_member

    async def handle(self, event: event_pb2.Event) -> None:
        """One event of a producer's EventLog."""
        tenant = event.tenant_id
        if event.event_type == "tenant.created":
            async with self._sessions.begin() as session:
                await repository.ensure(session, tenant, event.occurred_at.ToDatetime(tzinfo=UTC))
            self._forget_member(_field(event, "owner_id"))  # the owner asked before signing up: not a member then
            return
        if event.event_type.startswith("tenant."):
            self._cache.drop(tenant)
            return
        if event.event_type.startswith("member."):  # a role given, changed or taken away: the gate asks again
            self._forget_member(
                event.payload.fields["user_id"].string_value if "user_id" in event.payload.fields else ""
            )
            return
        kind = KINDS.get(event.event_type)
        if kind is None:
            return
        if kind == pb.EVIDENCE_KIND_SDK_ATTESTED and await self._cache.get(tenant) >= State.API_KEY_CREATED:
            # Repairs a handshake whose attestation was written but whose transition was not.
            await self.move(tenant, State.SDK_CONNECTED, HANDSHAKE, Actor("system", HANDSHAKE))
            return
        await self.apply(tenant, kind, _field(event, "key_id"))

    async def apply(self, tenant_id: str, kind: int, key_id: str) -> tuple[State, bool]:
        """One piece of evidence (a producer's notification or event): the state reached and whether it moved."""
        if kind == pb.EVIDENCE_KIND_API_KEY_CHANGED and key_id:
            self._forget_key(key_id)
        # Only a first key moves a tenant by itself; any other evidence can only complete the predicate.
        target = State.API_KEY_CREATED if kind == pb.EVIDENCE_KIND_API_KEY_CREATED else None
        return await self.move(tenant_id, target, FIRST_KEY, Actor("system", FIRST_KEY))

    async def move(self, tenant_id: str, target: State | None, trigger: str, actor: events.Actor) -> tuple[State, bool]:
        """Moves to `target` (None: no move) and on to COMPLETE when that leaves the tenant at SDK_CONNECTED
        with the predicate passing."""
        current = await self._cache.get(tenant_id, fresh=True)
        promotion = await activation.promotion(self._clients, tenant_id, policy.reached(current, target))
        if target is None and promotion is None:
            return current, False
        async with self._sessions.begin() as session:
            state, moved = await states.climb(session, tenant_id, target, trigger, actor, promotion)
        self._cache.put(tenant_id, state)
        return state, moved
