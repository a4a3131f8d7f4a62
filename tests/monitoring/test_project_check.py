"""CreateRun's project check through account (MONITORING.md section 1, 0.12's rule for a peer that is down;
M34): another tenant's or an unknown project is 404 with nothing written; account unreachable is 503 naming it."""

from __future__ import annotations

import socket
from typing import Any

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from aos.monitoring.v1 import monitoring_service_pb2_grpc as grpc_api
from cli import stack
from services.common import channels, errors, server
from services.monitoring import clients
from tests.conftest import Channels, identity_of, settings_for, start_service
from tests.monitoring.conftest import new_run, sql


async def test_a_run_names_only_its_tenants_projects(
    activity: Any, project: tuple[str, str], engines: dict[str, AsyncEngine]
) -> None:
    tenant, project_id = project
    run = await new_run(activity, tenant, project_id=project_id)
    assert run.project_id == project_id
    stranger = f"other-{tenant}"
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await new_run(activity, stranger, project_id=project_id)
    assert refused.value.code() is grpc.StatusCode.NOT_FOUND
    assert await sql(engines, "SELECT 1 FROM run WHERE tenant_id = :t", t=stranger) == []


def _closed_port() -> int:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_account_down_is_unavailable_naming_it() -> None:
    port = _closed_port()
    channel = channels.peer(f"127.0.0.1:{port}", identity_of("monitoring"), "account")
    try:
        for account in (clients.Account(channel), clients.Account(None)):
            with pytest.raises(errors.Unavailable) as down:
                await account.project_exists("t-1", "p-1")
            assert down.value.metadata == {"dependency": "account"}
    finally:
        await channel.close()


async def test_create_run_with_a_project_is_503_while_account_is_down(
    db_urls: dict[str, str], ports: dict[str, int], channels: Channels, tenant: str
) -> None:
    """A second monitoring whose account is unreachable: a run naming a project is refused with 503 (never
    assumed to exist or not), nothing written; a run without one does not ask account."""
    down = {**ports, "monitoring": stack.free_port(), "account": _closed_port()}
    settings = settings_for("monitoring", db_urls["monitoring"], down)
    assert settings.account_addr == f"127.0.0.1:{down['account']}"
    lonely = await start_service("monitoring", settings)
    try:
        stub = grpc_api.ActivityServiceStub(channels.channel(lonely))
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await new_run(stub, tenant, project_id="p-1")
        assert refused.value.code() is grpc.StatusCode.UNAVAILABLE and "account" in (refused.value.details() or "")
        assert (await new_run(stub, tenant)).project_id == ""
    finally:
        await server.stop(lonely, 1.0)
