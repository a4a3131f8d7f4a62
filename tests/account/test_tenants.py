import asyncio
import uuid
from typing import Any

import grpc
import pytest

from aos.account.v1 import account_pb2 as pb
from aos.account.v1 import account_service_pb2 as rpc
from tests.conftest import human, operator, service


async def test_signup_makes_the_caller_owner_with_plan_quotas(account: Any) -> None:
    reply = await account.CreateTenant(
        rpc.CreateTenantRequest(name="Acme Labs", plan=pb.PLAN_PRO), metadata=human(user="alice"), timeout=5
    )
    t = reply.tenant
    assert (t.slug, t.plan, t.status) == ("acme-labs", pb.PLAN_PRO, pb.TENANT_STATUS_ACTIVE) or t.slug.startswith(
        "acme-labs-"
    )
    assert (t.quotas.max_workers, t.quotas.max_api_keys, t.quotas.max_tokens_per_month) == (10, 20, 10_000_000)
    assert (reply.owner.user_id, reply.owner.role) == ("alice", pb.ROLE_OWNER)


async def test_slug_collisions(account: Any) -> None:
    slug = f"fixed-{uuid.uuid4().hex[:8]}"
    await account.CreateTenant(rpc.CreateTenantRequest(name="A", slug=slug), metadata=human(), timeout=5)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await account.CreateTenant(rpc.CreateTenantRequest(name="B", slug=slug), metadata=human(), timeout=5)
    assert caught.value.code() is grpc.StatusCode.ALREADY_EXISTS
    derived = await asyncio.gather(
        *(account.CreateTenant(rpc.CreateTenantRequest(name=slug), metadata=human(), timeout=5) for _ in range(2))
    )
    assert len({r.tenant.slug for r in derived}) == 2


@pytest.mark.parametrize(
    ("request_", "field"),
    [(rpc.CreateTenantRequest(name=""), "name"), (rpc.CreateTenantRequest(name="ok", slug="Not A Slug"), "slug")],
)
async def test_invalid_signup(account: Any, request_: Any, field: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await account.CreateTenant(request_, metadata=human(), timeout=5)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT and caught.value.details().startswith(field)


async def test_a_customer_reads_only_its_own_tenant(account: Any, tenant: str) -> None:
    mine = await account.GetTenant(rpc.GetTenantRequest(tenant_id=tenant), metadata=human(tenant), timeout=5)
    assert mine.tenant.tenant_id == tenant
    other = (await account.CreateTenant(rpc.CreateTenantRequest(name="Other"), metadata=human(), timeout=5)).tenant
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await account.GetTenant(rpc.GetTenantRequest(tenant_id=other.tenant_id), metadata=human(tenant), timeout=5)
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND
    seen = await account.GetTenant(rpc.GetTenantRequest(tenant_id=other.tenant_id), metadata=service(), timeout=5)
    assert seen.tenant.name == "Other"


async def test_lifecycle_follows_spec_1_1(account: Any, tenant: str) -> None:
    async def move(method: str, **kw: str) -> Any:
        request = getattr(rpc, f"{method}Request")(tenant_id=tenant, **kw)
        return (await getattr(account, method)(request, metadata=operator(), timeout=5)).tenant

    async def refused(method: str) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await move(method)
        assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION

    await refused("ReactivateTenant")
    await refused("ArchiveTenant")
    suspended = await move("SuspendTenant", reason="unpaid invoice")
    assert (suspended.status, suspended.suspended_reason) == (pb.TENANT_STATUS_SUSPENDED, "unpaid invoice")
    assert (await move("ReactivateTenant")).status == pb.TENANT_STATUS_ACTIVE
    assert (await move("TerminateTenant", reason="churned")).status == pb.TENANT_STATUS_TERMINATED
    await refused("SuspendTenant")
    await refused("ReactivateTenant")
    assert (await move("ArchiveTenant")).status == pb.TENANT_STATUS_ARCHIVED
    for method in ("SuspendTenant", "ReactivateTenant", "TerminateTenant", "ArchiveTenant"):
        await refused(method)  # archived is terminal


async def test_lifecycle_is_for_operators_and_raced_safely(account: Any, tenant: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await account.SuspendTenant(rpc.SuspendTenantRequest(tenant_id=tenant), metadata=human(tenant), timeout=5)
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
    results = await asyncio.gather(
        *(
            account.SuspendTenant(rpc.SuspendTenantRequest(tenant_id=tenant), metadata=operator(), timeout=5)
            for _ in range(5)
        ),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await account.SuspendTenant(
            rpc.SuspendTenantRequest(tenant_id=str(uuid.uuid4())), metadata=operator(), timeout=5
        )
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND


async def test_a_suspended_tenant_cannot_create_projects(account: Any, tenant: str) -> None:
    await account.SuspendTenant(rpc.SuspendTenantRequest(tenant_id=tenant), metadata=operator(), timeout=5)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await account.CreateProject(rpc.CreateProjectRequest(name="p"), metadata=human(tenant), timeout=5)
    assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (rpc.CreateTenantRequest(name="ok", plan=99), "plan"),  # issue 11: 500 before (the enum was out of range)
        (rpc.CreateTenantRequest(name="ok", plan=-1), "plan"),
        (rpc.CreateTenantRequest(name="Acme\u202egnp.exe"), "name"),
        (rpc.CreateTenantRequest(name="Ac\u200bme"), "name"),
    ],
)
async def test_out_of_range_enums_and_hidden_characters_are_refused(account: Any, request_: Any, field: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await account.CreateTenant(request_, metadata=human(), timeout=5)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT and caught.value.details().startswith(f"{field}:")


async def test_signups_are_limited_per_user(account: Any) -> None:
    user = f"serial-{uuid.uuid4().hex[:8]}"
    for i in range(5):
        await account.CreateTenant(rpc.CreateTenantRequest(name=f"T{i}"), metadata=human(user=user), timeout=5)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await account.CreateTenant(rpc.CreateTenantRequest(name="T6"), metadata=human(user=user), timeout=5)
    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED and "at most 5 tenants" in caught.value.details()
    # Another user is not affected.
    await account.CreateTenant(rpc.CreateTenantRequest(name="Other"), metadata=human(), timeout=5)


async def test_concurrent_signups_of_one_user_never_pass_the_limit(account: Any, tenant: str) -> None:
    user = f"burst-{uuid.uuid4().hex[:8]}"
    outcomes = await asyncio.gather(
        *(
            account.CreateTenant(rpc.CreateTenantRequest(name=f"B{i}"), metadata=human(user=user), timeout=15)
            for i in range(9)
        ),
        return_exceptions=True,
    )
    refused = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert len(outcomes) - len(refused) == 5
    assert {r.code() for r in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
