"""The lifecycle block (MONITORING.md 0.6): account's tenant.* events mirrored into tenant_lifecycle, and the
check every RPC makes in its own transaction. A tenant never heard of counts as active."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aos.events.v1 import event_pb2
from services.common.errors import PermissionDenied
from services.common.principal import Kind, Principal
from services.monitoring import repository

SOURCE = "account"
READABLE = ("active", "suspended")
WRITABLE = ("active",)


class Mirror:
    """The handler of the follower of account's events: an upsert per tenant event, so handing an event
    over again (after a restart) changes nothing."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def apply(self, event: event_pb2.Event) -> None:
        if not event.event_type.startswith("tenant."):
            return
        payload: dict[str, Any] = json_format.MessageToDict(event.payload)
        status = payload.get("to_status") or payload.get("status")
        if status:
            async with self._sessions.begin() as session:
                await repository.mirror_tenant(session, event.tenant_id, str(status))


async def require(session: AsyncSession, who: Principal, allowed: tuple[str, ...]) -> str:
    """The caller's tenant, when its lifecycle state allows the call; operators are exempt."""
    tenant_id = who.tenant()
    if who.kind is Kind.OPERATOR:
        return tenant_id
    allow(await repository.tenant_status(session, tenant_id), allowed)
    return tenant_id


def allow(status: str | None, allowed: tuple[str, ...]) -> None:
    """LIFECYCLE_BLOCKED unless the mirrored status (None: never heard of, so active) is among `allowed`."""
    state = status or "active"
    if state not in allowed:
        raise PermissionDenied(
            f"the tenant is {state}",
            reason="LIFECYCLE_BLOCKED",
            metadata={"state": state.upper(), "allowed_states": ",".join(s.upper() for s in allowed)},
        )
