from typing import Any

import grpc
import pytest

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
