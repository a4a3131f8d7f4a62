"""The organisation → tenant mapping and ResolveMember, the edge gate's source of a human's tenant and role."""

import uuid
from typing import Any

import grpc
import pytest

from aos.account.v1 import account_pb2 as pb
from aos.account.v1 import account_service_pb2 as rpc
from tests.conftest import human, service


async def signup(account: Any, user: str, org: str = "") -> pb.Tenant:
    reply = await account.CreateTenant(
        rpc.CreateTenantRequest(name=f"Org {uuid.uuid4().hex[:6]}"), metadata=human(user=user, org=org), timeout=5
    )
    return reply.tenant


async def resolve(account: Any, org: str, user: str) -> rpc.ResolveMemberResponse:
    request = rpc.ResolveMemberRequest(org_id=org, user_id=user)
    return await account.ResolveMember(request, metadata=service(), timeout=5)


async def test_signup_maps_the_callers_organisation_and_resolves_roles(account: Any) -> None:
    org, owner = f"idp-org-{uuid.uuid4().hex[:8]}", f"alice-{uuid.uuid4().hex[:6]}"
    tenant = await signup(account, owner, org)
    assert tenant.org_id == org and tenant.tenant_id != org  # organisation ids need not be tenant ids
    assert await resolve(account, org, owner) == rpc.ResolveMemberResponse(
        tenant_id=tenant.tenant_id, role=pb.ROLE_OWNER
    )
    added = rpc.AddMemberRequest(user_id="bob", email="bob@example.com", role=pb.ROLE_VIEWER)
    await account.AddMember(added, metadata=human(tenant.tenant_id, user=owner), timeout=5)
    assert (await resolve(account, org, "bob")).role == pb.ROLE_VIEWER
    promoted = rpc.AddMemberRequest(user_id="bob", email="bob@example.com", role=pb.ROLE_ADMIN)
    await account.AddMember(promoted, metadata=human(tenant.tenant_id, user=owner), timeout=5)
    assert (await resolve(account, org, "bob")).role == pb.ROLE_ADMIN


async def test_a_token_without_an_organisation_makes_the_tenant_its_own(account: Any) -> None:
    owner = f"dev-{uuid.uuid4().hex[:6]}"
    tenant = await signup(account, owner)
    assert tenant.org_id == tenant.tenant_id  # what dev tokens then name as their organisation
    assert (await resolve(account, tenant.tenant_id, owner)).tenant_id == tenant.tenant_id


async def test_strangers_and_unknown_organisations_are_not_found(account: Any) -> None:
    org, owner = f"idp-org-{uuid.uuid4().hex[:8]}", f"alice-{uuid.uuid4().hex[:6]}"
    tenant = await signup(account, owner, org)
    other = await signup(account, f"eve-{uuid.uuid4().hex[:6]}", f"idp-org-{uuid.uuid4().hex[:8]}")
    for org_id, user in ((org, "stranger"), ("no-such-org", owner), (other.org_id, owner), (tenant.tenant_id, owner)):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await resolve(account, org_id, user)
        assert caught.value.code() is grpc.StatusCode.NOT_FOUND, (org_id, user)
    for bad in (rpc.ResolveMemberRequest(user_id=owner), rpc.ResolveMemberRequest(org_id=org)):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await account.ResolveMember(bad, metadata=service(), timeout=5)
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_an_organisation_gets_one_tenant_even_in_parallel(account: Any) -> None:
    import asyncio

    org = f"idp-org-{uuid.uuid4().hex[:8]}"
    outcomes = await asyncio.gather(*(signup(account, f"founder-{i}", org) for i in range(4)), return_exceptions=True)
    made = [o for o in outcomes if isinstance(o, pb.Tenant)]
    refused = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert len(made) == 1 and len(refused) == 3
    assert {e.code() for e in refused} == {grpc.StatusCode.ALREADY_EXISTS}


async def test_only_services_resolve_members(account: Any, tenant: str) -> None:
    request = rpc.ResolveMemberRequest(org_id=tenant, user_id="someone")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await account.ResolveMember(request, metadata=human(tenant), timeout=5)
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
