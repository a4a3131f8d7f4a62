"""Health follows the database: NOT_SERVING and UNAVAILABLE while it is down, back by itself after."""

import asyncio
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pgserver import _commands

from aos.account.v1 import account_service_pb2 as rpc
from aos.account.v1 import account_service_pb2_grpc
from cli import stack
from services.common import server
from tests.conftest import human, settings_for, start_service, wait_for_health


async def test_health_and_rpcs_follow_the_database(own_database: tuple[Any, Path]) -> None:
    pg, pgdata = own_database
    urls = await asyncio.to_thread(stack.prepare_databases, pg.get_uri(), "hc_")
    svc = await start_service("account", settings_for("account", urls["account"], {"account": stack.free_port()}))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{svc.port}") as channel:
            health = health_pb2_grpc.HealthStub(channel).Check
            account = account_service_pb2_grpc.AccountServiceStub(channel)
            signup = rpc.CreateTenantRequest(name="Health")
            await wait_for_health(health, health_pb2.HealthCheckResponse.SERVING)
            await account.CreateTenant(signup, metadata=human(), timeout=5)

            await asyncio.to_thread(_commands.pg_ctl, ["-w", "stop", "-m", "fast"], pgdata=pgdata, user=pg.system_user)
            await wait_for_health(health, health_pb2.HealthCheckResponse.NOT_SERVING)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await account.CreateTenant(signup, metadata=human(), timeout=5)
            assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
            assert caught.value.details() == "database unavailable"

            await asyncio.to_thread(pg.ensure_postgres_running)
            await wait_for_health(health, health_pb2.HealthCheckResponse.SERVING)
            reply = await account.CreateTenant(signup, metadata=human(), timeout=5)
            assert reply.tenant.name == "Health"
    finally:
        await server.stop(svc, 1.0)
