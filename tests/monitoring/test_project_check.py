"""CreateRun's project check through account (MONITORING.md section 1, 0.12's rule for a peer that is down;
M34): another tenant's or an unknown project is 404 with nothing written; account unreachable is 503 naming it."""

from __future__ import annotations

import socket
from typing import Any

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from aos.account.v1 import account_service_pb2 as account_rpc
from services.common import channels, errors
from services.monitoring import clients
from tests.conftest import human, identity_of
from tests.monitoring.conftest import new_run, sql


@pytest.fixture
async def signed_up(account: Any) -> str:
    """A tenant account knows (the project's owner): monitoring's own tests use ids account never saw."""
    reply = await account.CreateTenant(account_rpc.CreateTenantRequest(name="Projects"), metadata=human(), timeout=5)
    return str(reply.tenant.tenant_id)


async def test_a_run_names_only_its_tenants_projects(
    activity: Any, account: Any, signed_up: str, engines: dict[str, AsyncEngine]
) -> None:
    tenant = signed_up
    project = await account.CreateProject(account_rpc.CreateProjectRequest(name="p"), metadata=human(tenant), timeout=5)
    run = await new_run(activity, tenant, project_id=project.project_id)
    assert run.project_id == project.project_id
    stranger = f"other-{tenant}"
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await new_run(activity, stranger, project_id=project.project_id)
    assert refused.value.code() is grpc.StatusCode.NOT_FOUND
    assert await sql(engines, "SELECT 1 FROM run WHERE tenant_id = :t", t=stranger) == []


async def test_account_down_is_unavailable_naming_it() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    channel = channels.peer(f"127.0.0.1:{port}", identity_of("monitoring"), "account")
    try:
        for account in (clients.Account(channel), clients.Account(None)):
            with pytest.raises(errors.Unavailable) as down:
                await account.project_exists("t-1", "p-1")
            assert down.value.metadata == {"dependency": "account"}
    finally:
        await channel.close()
