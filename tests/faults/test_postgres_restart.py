"""PostgreSQL stopped and restarted under a bounded load: every RPC fails fast with UNAVAILABLE (never a
hang, never INTERNAL), health flips to NOT_SERVING and back by itself, and no acknowledged write is lost."""

import asyncio
import time
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2
from pgserver import _commands

from aos.account.v1 import account_service_pb2 as rpc
from aos.account.v1 import account_service_pb2_grpc
from cli import stack
from services.common import server
from tests.conftest import eventually, health_status, human, settings_for, start_service, tls_channel

SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
CLIENTS = 8
RPC_TIMEOUT = 5.0  # a hang shows up as DEADLINE_EXCEEDED, which the test refuses
FAIL_FAST = 2.0  # an UNAVAILABLE answer must come well within the deadline


async def test_postgres_restart_under_load_loses_no_acknowledged_write(own_database: tuple[Any, Path]) -> None:
    pg, pgdata = own_database
    urls = await asyncio.to_thread(stack.prepare_databases, pg.get_uri(), "pf_")
    svc = await start_service("account", settings_for("account", urls["account"], {"account": stack.free_port()}))
    acked: dict[str, tuple[str, str]] = {}  # project id → (tenant, name) for every create answered OK
    failures: list[tuple[grpc.StatusCode, float, str]] = []
    stop = asyncio.Event()
    try:
        # A channel of its own: this account server lives only in this test (on a database of its own).
        async with tls_channel(f"127.0.0.1:{svc.port}") as channel:
            account = account_service_pb2_grpc.AccountServiceStub(channel)
            await eventually(lambda: health_status(channel), until=lambda s: s == SERVING, within=15)
            owners, tenants = [], []
            for i in range(CLIENTS):
                md = human(user=f"pf-owner-{i}")
                reply = await account.CreateTenant(rpc.CreateTenantRequest(name=f"PF {i}"), metadata=md, timeout=5)
                tenants.append(reply.tenant.tenant_id)
                owners.append(human(reply.tenant.tenant_id, user=f"pf-owner-{i}"))

            async def client(i: int) -> None:
                n = 0
                while not stop.is_set():
                    n += 1
                    name, started = f"p{i}-{n}", time.monotonic()
                    try:
                        reply = await account.CreateProject(
                            rpc.CreateProjectRequest(name=name), metadata=owners[i], timeout=RPC_TIMEOUT
                        )
                        acked[reply.project_id] = (tenants[i], name)
                        await account.ListProjects(rpc.ListProjectsRequest(page_size=5), metadata=owners[i], timeout=5)
                    except grpc.aio.AioRpcError as exc:
                        failures.append((exc.code(), time.monotonic() - started, exc.details() or ""))
                        await asyncio.sleep(0.02)

            load = [asyncio.create_task(client(i)) for i in range(CLIENTS)]
            await asyncio.sleep(1.0)  # the load runs against a healthy database first
            before = len(acked)
            await asyncio.to_thread(_commands.pg_ctl, ["-w", "stop", "-m", "fast"], pgdata=pgdata, user=pg.system_user)
            await eventually(lambda: health_status(channel), until=lambda s: s == NOT_SERVING, within=15)
            down_failures = len(failures)
            await asyncio.sleep(1.5)  # the load keeps hammering the service while its database is down
            during = len(failures) - down_failures
            await asyncio.to_thread(pg.ensure_postgres_running)
            await eventually(lambda: health_status(channel), until=lambda s: s == SERVING, within=15)
            recovered_at = len(acked)
            await asyncio.sleep(1.0)  # and on after the restart, where creates must succeed again
            stop.set()
            await asyncio.wait_for(asyncio.gather(*load), 10)

            assert before > 0 and during > 0, (before, during)
            assert len(acked) > recovered_at, "no create succeeded after the restart: did not recover by itself"
            codes = {code for code, _, _ in failures}
            assert codes == {grpc.StatusCode.UNAVAILABLE}, failures[:5]
            assert max(elapsed for _, elapsed, _ in failures) < FAIL_FAST, sorted(failures, key=lambda f: -f[1])[:3]
            assert {d for _, _, d in failures} == {"database unavailable"}

            for project_id, (tenant, name) in acked.items():  # every acknowledged create survived
                got = await account.GetProject(
                    rpc.GetProjectRequest(project_id=project_id), metadata=human(tenant), timeout=5
                )
                assert got.name == name
    finally:
        stop.set()
        await server.stop(svc, 1.0)
