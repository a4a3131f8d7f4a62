"""Mirrors account's tenant events into tenant_state, so a suspended tenant's keys stop verifying
without a call to account on the hot path."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aos.events.v1 import event_pb2
from services.api_keys import repository

SOURCE = "account"


class Mirror:
    """The handler of the follower of account's events: one transaction per event, idempotent (an upsert
    and a NOTIFY), as the follower may hand over an event again after a restart."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def apply(self, event: event_pb2.Event) -> None:
        payload: dict[str, Any] = json_format.MessageToDict(event.payload)
        status = payload.get("to_status") or payload.get("status") if event.event_type.startswith("tenant.") else None
        if not status:
            return
        quota = payload.get("quotas", {}).get("max_api_keys")
        async with self._sessions.begin() as session:
            await repository.mirror_tenant(session, event.tenant_id, status, int(quota) if quota else None)
            if event.event_type != "tenant.created":  # a new tenant has no cached verdicts to drop
                await repository.notify(session, "tenant", event.tenant_id)
