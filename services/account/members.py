"""A tenant's members change here, inside the RPC's transaction: each change first locks the tenant's
owner rows, so concurrent changes queue and "the last owner stays" is decided by the database, then
checks policy.member_change and records the change as an event."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.account import policy, repository, responses
from services.account.models import Member
from services.common import events
from services.common.errors import NotFound
from services.common.principal import Principal

OWNER = "account"


async def put(session: AsyncSession, who: Principal, member: Member) -> Member:
    """Adds the member, or changes the role (and email) of an existing one."""
    owners = await repository.lock_owners(session, member.tenant_id)
    before = await repository.get_member(session, member.tenant_id, member.user_id)
    policy.member_change(who, before.role if before else None, member.role, owners)
    previous = before.role if before else ""  # read before the upsert refreshes the same object
    saved = await repository.upsert_member(session, member)
    if not previous:
        added = {"user_id": saved.user_id, "role": saved.role}
        await events.record(session, OWNER, who, "member.added", saved.tenant_id, added)
    elif previous != saved.role:
        changed = responses.member_changed(saved.user_id, previous, saved.role)
        await events.record(session, OWNER, who, "member.role_changed", saved.tenant_id, changed)
    return saved


async def remove(session: AsyncSession, who: Principal, tenant_id: str, user_id: str) -> Member:
    owners = await repository.lock_owners(session, tenant_id)
    member = await repository.get_member(session, tenant_id, user_id)
    if member is None:
        raise NotFound("member not found", reason="MEMBER_NOT_FOUND")
    policy.member_change(who, member.role, None, owners)
    await repository.delete_member(session, tenant_id, user_id)
    removed = responses.member_changed(user_id, member.role, "")
    await events.record(session, OWNER, who, "member.removed", tenant_id, removed)
    return member
