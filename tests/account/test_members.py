import asyncio
import uuid
from typing import Any

import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aos.account.v1 import account_pb2 as pb
from aos.account.v1 import account_service_pb2 as rpc
from tests.conftest import human


async def test_owner_adds_members_and_everyone_lists_them(account: Any, tenant: str) -> None:
    for i, role in enumerate((pb.ROLE_ADMIN, pb.ROLE_MEMBER, pb.ROLE_VIEWER)):
        await account.AddMember(
            rpc.AddMemberRequest(user_id=f"u{i}", email=f"u{i}@example.com", role=role),
            metadata=human(tenant),
            timeout=5,
        )
    first = await account.ListMembers(
        rpc.ListMembersRequest(page_size=2), metadata=human(tenant, role="viewer"), timeout=5
    )
    rest = await account.ListMembers(
        rpc.ListMembersRequest(page_size=2, page_token=first.next_page_token),
        metadata=human(tenant, role="viewer"),
        timeout=5,
    )
    members = [*first.members, *rest.members]
    assert len(members) == 4 and not rest.next_page_token
    assert sorted(pb.Role.Name(m.role) for m in members) == ["ROLE_ADMIN", "ROLE_MEMBER", "ROLE_OWNER", "ROLE_VIEWER"]


async def test_only_managers_add_and_only_owners_make_owners(account: Any, tenant: str) -> None:
    new = rpc.AddMemberRequest(user_id="x", email="x@example.com", role=pb.ROLE_MEMBER)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await account.AddMember(new, metadata=human(tenant, role="member"), timeout=5)
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
    owner = rpc.AddMemberRequest(user_id="y", email="y@example.com", role=pb.ROLE_OWNER)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await account.AddMember(owner, metadata=human(tenant, role="admin"), timeout=5)
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await account.AddMember(
            rpc.AddMemberRequest(user_id="z", email="z@example.com"), metadata=human(tenant), timeout=5
        )
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT and caught.value.details().startswith("role")


async def add(account: Any, tenant: str, user: str, role: int, by: str = "owner", caller: str = "") -> Any:
    request = rpc.AddMemberRequest(user_id=user, email=f"{user}@example.com", role=role)
    return await account.AddMember(request, metadata=human(tenant, user=caller, role=by), timeout=5)


async def remove(account: Any, tenant: str, user: str, by: str = "owner", caller: str = "") -> Any:
    request = rpc.RemoveMemberRequest(user_id=user)
    return await account.RemoveMember(request, metadata=human(tenant, user=caller, role=by), timeout=5)


async def roles(account: Any, tenant: str) -> dict[str, str]:
    listed = await account.ListMembers(rpc.ListMembersRequest(page_size=100), metadata=human(tenant), timeout=5)
    return {m.user_id: pb.Role.Name(m.role).removeprefix("ROLE_").lower() for m in listed.members}


async def member_events(engines: dict[str, AsyncEngine], tenant: str) -> list[tuple[str, dict[str, Any]]]:
    async with engines["account"].connect() as conn:
        found = await conn.execute(
            text(
                "SELECT event_type, payload FROM event WHERE tenant_id = :t AND event_type LIKE 'member.%' "
                "ORDER BY sequence_no"
            ),
            {"t": tenant},
        )
        return [(row.event_type, row.payload) for row in found]


def owner_of(tenant_roles: dict[str, str]) -> str:
    return next(user for user, role in tenant_roles.items() if role == "owner")


async def test_admins_cannot_demote_or_remove_an_owner(account: Any, tenant: str) -> None:
    """Issue 11: an admin demoted the owner to viewer (AddMember on the owner's user id)."""
    owner = owner_of(await roles(account, tenant))
    await add(account, tenant, "adm", pb.ROLE_ADMIN)
    before = await roles(account, tenant)
    for attempt in (
        add(account, tenant, owner, pb.ROLE_VIEWER, by="admin", caller="adm"),
        remove(account, tenant, owner, by="admin", caller="adm"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await attempt
        assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert await roles(account, tenant) == before
    # Admins still manage everyone else.
    await add(account, tenant, "m1", pb.ROLE_MEMBER, by="admin", caller="adm")
    await add(account, tenant, "m1", pb.ROLE_VIEWER, by="admin", caller="adm")
    await remove(account, tenant, "m1", by="admin", caller="adm")
    with pytest.raises(grpc.aio.AioRpcError) as viewer:
        await remove(account, tenant, "adm", by="viewer")
    assert viewer.value.code() is grpc.StatusCode.PERMISSION_DENIED


async def test_the_last_owner_stays_and_every_change_is_an_event(
    account: Any, tenant: str, engines: dict[str, AsyncEngine]
) -> None:
    owner = owner_of(await roles(account, tenant))
    for attempt in (add(account, tenant, owner, pb.ROLE_ADMIN), remove(account, tenant, owner)):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await attempt
        assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION and "last owner" in caught.value.details()
    await add(account, tenant, "co", pb.ROLE_OWNER)
    demoted = await add(account, tenant, owner, pb.ROLE_ADMIN)  # two owners: one may step down
    assert demoted.member.role == pb.ROLE_ADMIN
    with pytest.raises(grpc.aio.AioRpcError) as last:
        await remove(account, tenant, "co", caller="co")
    assert last.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    gone = await remove(account, tenant, owner, caller="co")
    assert gone.member.user_id == owner and gone.member.role == pb.ROLE_ADMIN
    assert await roles(account, tenant) == {"co": "owner"}
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await remove(account, tenant, owner, caller="co")
    assert missing.value.code() is grpc.StatusCode.NOT_FOUND
    await add(account, tenant, "co", pb.ROLE_OWNER, caller="co")  # no change: no event
    assert await member_events(engines, tenant) == [
        ("member.added", {"user_id": "co", "role": "owner"}),
        ("member.role_changed", {"user_id": owner, "from_role": "owner", "to_role": "admin"}),
        ("member.removed", {"user_id": owner, "from_role": "admin", "to_role": ""}),
    ]


async def test_another_tenants_member_looks_missing(account: Any, tenant: str) -> None:
    other = (await account.CreateTenant(rpc.CreateTenantRequest(name="Other"), metadata=human(), timeout=5)).tenant
    victim = owner_of(await roles(account, other.tenant_id))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await remove(account, tenant, victim)
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND
    assert await roles(account, other.tenant_id) == {victim: "owner"}


@pytest.mark.parametrize("change", ["demote", "remove"])
async def test_concurrent_changes_of_the_last_two_owners_leave_one(account: Any, change: str) -> None:
    for _ in range(5):
        a, b = f"a-{uuid.uuid4().hex[:8]}", f"b-{uuid.uuid4().hex[:8]}"  # each user signs up only so often
        made = await account.CreateTenant(rpc.CreateTenantRequest(name="Two"), metadata=human(user=a), timeout=5)
        tenant = made.tenant.tenant_id
        await add(account, tenant, b, pb.ROLE_OWNER, caller=a)

        if change == "demote":
            steps = [add(account, tenant, other, pb.ROLE_VIEWER, caller=user) for user, other in ((a, b), (b, a))]
        else:
            steps = [remove(account, tenant, other, caller=user) for user, other in ((a, b), (b, a))]
        outcomes = await asyncio.gather(*steps, return_exceptions=True)
        failed = [o for o in outcomes if isinstance(o, BaseException)]
        assert len(failed) == 1 and isinstance(failed[0], grpc.aio.AioRpcError)
        assert failed[0].code() is grpc.StatusCode.FAILED_PRECONDITION
        assert list((await roles(account, tenant)).values()).count("owner") == 1
