"""Health follows the database: NOT_SERVING and UNAVAILABLE while it is down, back by itself after."""

import asyncio
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2
from pgserver import _commands

from aos.account.v1 import account_service_pb2 as rpc
from aos.account.v1 import account_service_pb2_grpc
from cli import stack
from services.common import server
from tests.conftest import eventually, health_status, human, settings_for, start_service, tls_channel

SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


async def test_health_and_rpcs_follow_the_database(own_database: tuple[Any, Path]) -> None:
    pg, pgdata = own_database
    urls = await asyncio.to_thread(stack.prepare_databases, pg.get_uri(), "hc_")
    svc = await start_service("account", settings_for("account", urls["account"], {"account": stack.free_port()}))
    try:
        # A channel of its own: this account server lives only in this test (on a database of its own).
        async with tls_channel(f"127.0.0.1:{svc.port}") as channel:
            account = account_service_pb2_grpc.AccountServiceStub(channel)
            signup = rpc.CreateTenantRequest(name="Health")
            await eventually(lambda: health_status(channel), until=lambda s: s == SERVING, within=15)
            await account.CreateTenant(signup, metadata=human(), timeout=5)

            await asyncio.to_thread(_commands.pg_ctl, ["-w", "stop", "-m", "fast"], pgdata=pgdata, user=pg.system_user)
            await eventually(lambda: health_status(channel), until=lambda s: s == NOT_SERVING, within=15)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await account.CreateTenant(signup, metadata=human(), timeout=5)
            assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
            assert caught.value.details() == "database unavailable"

            await asyncio.to_thread(pg.ensure_postgres_running)
            await eventually(lambda: health_status(channel), until=lambda s: s == SERVING, within=15)
            reply = await account.CreateTenant(signup, metadata=human(), timeout=5)
            assert reply.tenant.name == "Health"
    finally:
        await server.stop(svc, 1.0)
