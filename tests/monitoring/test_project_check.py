"""CreateRun's project check through account (MONITORING.md section 1, 0.12's rule for a peer that is down;
M34): another tenant's or an unknown project is 404 with nothing written; account unreachable is 503 naming it."""

from __future__ import annotations

import socket
from typing import Any

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common import channels, errors
from services.monitoring import clients
from tests.conftest import identity_of
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
