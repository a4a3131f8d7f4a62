import asyncio
import uuid
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aos.account.v1 import account_service_pb2 as rpc
from aos.events.v1 import events_service_pb2, events_service_pb2_grpc
from services.common import server
from tests.conftest import Channels, human, service


def violations(err: grpc.aio.AioRpcError) -> list[str]:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    fields = []
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields += [v.field for v in bad.field_violations]
    return fields


async def project_count(engines: dict[str, AsyncEngine], tenant: str) -> int:
    async with engines["account"].connect() as conn:
        return int(
            (await conn.execute(text("SELECT count(*) FROM project WHERE tenant_id = :t"), {"t": tenant})).scalar_one()
        )


async def test_create_get_and_list_a_project(account: Any, tenant: str) -> None:
    created = await account.CreateProject(
        rpc.CreateProjectRequest(name=" Checkout ", description="web"), metadata=human(tenant), timeout=5
    )
    assert created.name == "Checkout" and created.status == "ACTIVE"
    got = await account.GetProject(
        rpc.GetProjectRequest(project_id=created.project_id), metadata=human(tenant), timeout=5
    )
    assert got.SerializeToString() == created.SerializeToString()
    listed = await account.ListProjects(rpc.ListProjectsRequest(), metadata=human(tenant), timeout=5)
    assert [p.project_id for p in listed.items] == [created.project_id]
    assert listed.total == 1 and not listed.has_more and listed.filters_applied["tenant_id"] == tenant


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (rpc.CreateProjectRequest(name=""), "name"),
        (rpc.CreateProjectRequest(name="   "), "name"),
        (rpc.CreateProjectRequest(name="x" * 201), "name"),
        (rpc.CreateProjectRequest(name="ok", description="d" * 1001), "description"),
    ],
)
async def test_invalid_project_is_refused_naming_the_field_and_writes_nothing(
    account: Any, tenant: str, engines: dict[str, AsyncEngine], request_: Any, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await account.CreateProject(request_, metadata=human(tenant), timeout=5)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert violations(caught.value) == [field]
    assert await project_count(engines, tenant) == 0


async def test_200_character_name_is_accepted(account: Any, tenant: str) -> None:
    reply = await account.CreateProject(rpc.CreateProjectRequest(name="x" * 200), metadata=human(tenant), timeout=5)
    assert len(reply.name) == 200


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (rpc.ListProjectsRequest(page_token="not-a-token"), "page_token"),
        (rpc.ListProjectsRequest(page_token="bm9wZQ=="), "page_token"),
        (rpc.ListProjectsRequest(status="suspended-ish"), "status"),
        (rpc.ListProjectsRequest(limit=101), "limit"),
        (rpc.ListProjectsRequest(page_size=-1), "page_size"),
        (rpc.ListProjectsRequest(offset=-1, limit=5), "offset"),
    ],
)
async def test_bad_list_parameters_name_the_field(account: Any, tenant: str, request_: Any, field: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await account.ListProjects(request_, metadata=human(tenant), timeout=5)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert violations(caught.value) == [field]


async def test_keyset_pages_and_legacy_offset_agree(account: Any, tenant: str) -> None:
    for i in range(7):
        await account.CreateProject(rpc.CreateProjectRequest(name=f"p{i}"), metadata=human(tenant), timeout=5)
    seen, token = [], ""
    while True:
        page = await account.ListProjects(
            rpc.ListProjectsRequest(page_size=3, page_token=token), metadata=human(tenant), timeout=5
        )
        seen += [p.name for p in page.items]
        token = page.next_page_token
        if not token:
            break
    assert seen == [f"p{i}" for i in reversed(range(7))]
    legacy = await account.ListProjects(rpc.ListProjectsRequest(limit=3, offset=3), metadata=human(tenant), timeout=5)
    assert [p.name for p in legacy.items] == seen[3:6] and legacy.total == 7 and legacy.has_more
    last = await account.ListProjects(rpc.ListProjectsRequest(limit=3, offset=6), metadata=human(tenant), timeout=5)
    assert [p.name for p in last.items] == seen[6:] and not last.has_more


async def test_status_filter(account: Any, tenant: str) -> None:
    keep = await account.CreateProject(rpc.CreateProjectRequest(name="keep"), metadata=human(tenant), timeout=5)
    gone = await account.CreateProject(rpc.CreateProjectRequest(name="gone"), metadata=human(tenant), timeout=5)
    await account.ArchiveProject(
        rpc.ArchiveProjectRequest(project_id=gone.project_id), metadata=human(tenant), timeout=5
    )
    active = await account.ListProjects(rpc.ListProjectsRequest(status="ACTIVE"), metadata=human(tenant), timeout=5)
    assert [p.project_id for p in active.items] == [keep.project_id]
    assert active.filters_applied["status"] == "active"


async def test_another_tenants_project_looks_missing(account: Any, tenant: str) -> None:
    other = await account.CreateTenant(rpc.CreateTenantRequest(name="Other"), metadata=human(), timeout=5)
    theirs = await account.CreateProject(
        rpc.CreateProjectRequest(name="secret"), metadata=human(other.tenant.tenant_id), timeout=5
    )
    for call in (
        account.GetProject(rpc.GetProjectRequest(project_id=theirs.project_id), metadata=human(tenant), timeout=5),
        account.ArchiveProject(
            rpc.ArchiveProjectRequest(project_id=theirs.project_id), metadata=human(tenant), timeout=5
        ),
        account.GetProject(rpc.GetProjectRequest(project_id=str(uuid.uuid4())), metadata=human(tenant), timeout=5),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() is grpc.StatusCode.NOT_FOUND
        assert caught.value.details() == "project not found"
    mine = await account.ListProjects(rpc.ListProjectsRequest(), metadata=human(tenant), timeout=5)
    assert theirs.project_id not in [p.project_id for p in mine.items]
    still = await account.GetProject(
        rpc.GetProjectRequest(project_id=theirs.project_id), metadata=human(other.tenant.tenant_id), timeout=5
    )
    assert still.status == "ACTIVE"


async def test_request_id_makes_create_idempotent(account: Any, tenant: str, engines: dict[str, AsyncEngine]) -> None:
    req = rpc.CreateProjectRequest(name="once", request_id="req-1")
    first, second = await asyncio.gather(
        *(account.CreateProject(req, metadata=human(tenant), timeout=5) for _ in range(2))
    )
    assert first.project_id == second.project_id
    assert await project_count(engines, tenant) == 1


async def test_viewer_cannot_create_but_can_read(account: Any, tenant: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await account.CreateProject(
            rpc.CreateProjectRequest(name="v"), metadata=human(tenant, role="viewer"), timeout=5
        )
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
    await account.ListProjects(rpc.ListProjectsRequest(), metadata=human(tenant, role="viewer"), timeout=5)


async def test_100_concurrent_creates_emit_a_gapless_sequence(
    account: Any, channels: Channels, running: dict[str, server.Service], engines: dict[str, AsyncEngine]
) -> None:
    tenant = str(uuid.uuid4())
    async with engines["account"].begin() as conn:  # no tenant.created event: the stream starts empty
        await conn.execute(
            text(
                "INSERT INTO tenant (id, org_id, name, slug, plan, status, max_workers, max_runs_per_day, "
                "max_concurrent_runs, max_tokens_per_month, max_api_keys, created_by) "
                "VALUES (:t, :t, 'Race', :t, 'free', 'active', 3, 100, 5, 1000000, 5, 'test')"
            ),
            {"t": tenant},
        )
    await asyncio.gather(
        *(
            account.CreateProject(rpc.CreateProjectRequest(name=f"p{i}"), metadata=human(tenant), timeout=30)
            for i in range(100)
        )
    )
    log = channels.stub(events_service_pb2_grpc.EventLogServiceStub, running["account"], "onboarding")
    listed = await log.ListEvents(
        events_service_pb2.ListEventsRequest(tenant_id=tenant, page_size=1000), metadata=service(), timeout=5
    )
    assert [e.event_type for e in listed.events] == ["project.created"] * 100
    assert sorted(e.sequence_no for e in listed.events) == list(range(1, 101))
    assert {e.decision_owner for e in listed.events} == {"account"}
    assert sorted(e.payload["name"] for e in listed.events) == sorted(f"p{i}" for i in range(100))  # none lost
    assert await project_count(engines, tenant) == 100


async def test_nul_characters_are_invalid_input_not_internal_errors(account: Any, tenant: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await account.CreateProject(rpc.CreateProjectRequest(name="a\x00b"), metadata=human(tenant), timeout=5)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT and violations(caught.value) == ["name"]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await account.GetProject(rpc.GetProjectRequest(project_id="x\x00"), metadata=human(tenant), timeout=5)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
