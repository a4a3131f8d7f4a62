"""Background readers of the producers' EventLogs, each with a durable cursor in onboarding's database,
so evidence whose synchronous notification was lost (onboarding down, a timeout) is applied later."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC

from aos.events.v1 import event_pb2
from aos.onboarding.v1 import onboarding_pb2 as pb
from services.onboarding import repository
from services.onboarding.clients import Peer
from services.onboarding.machine import Actor, Machine
from services.onboarding.policy import State
from services.onboarding.servicer import apply

log = logging.getLogger("aos.onboarding.consumer")

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


class Consumer:
    def __init__(
        self, machine: Machine, peer: Peer, forget_key: Callable[[str], None], backoff: float, max_backoff: float
    ) -> None:
        self._machine, self._peer, self._forget_key = machine, peer, forget_key
        self._backoff, self._max_backoff = backoff, max_backoff

    async def run(self) -> None:
        delay = self._backoff
        while True:
            try:
                async with self._machine.sessions() as session:
                    token = await repository.cursor(session, self._peer.name)
                async for item in self._machine.clients.watch(self._peer, token):
                    await self.handle(item.event)
                    async with self._machine.sessions.begin() as session:
                        await repository.save_cursor(session, self._peer.name, item.page_token)
                    delay = self._backoff
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the source is down or restarting: retry from the durable cursor
                log.info("events of %s: %s; retrying in %.1fs", self._peer.name, type(exc).__name__, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_backoff)

    async def handle(self, event: event_pb2.Event) -> None:
        tenant = event.tenant_id
        if event.event_type == "tenant.created":
            await self._machine.learn(tenant, event.occurred_at.ToDatetime(tzinfo=UTC))
            return
        if event.event_type.startswith("tenant."):
            self._machine.states.drop(tenant)
            return
        kind = KINDS.get(event.event_type)
        if kind is None:
            return
        if kind == pb.EVIDENCE_KIND_SDK_ATTESTED and await self._machine.state(tenant) >= State.API_KEY_CREATED:
            # Repairs a handshake whose attestation was written but whose transition was not.
            await self._machine.advance(
                tenant, State.SDK_CONNECTED, "first_sdk_handshake", Actor("system", "first_sdk_handshake")
            )
        key_id = event.payload.fields["key_id"].string_value if "key_id" in event.payload.fields else ""
        await apply(self._machine, self._forget_key, tenant, kind, key_id)
