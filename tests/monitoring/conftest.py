"""Fixtures for the monitoring tests: stubs on the running service, caller metadata as the gateway sets it,
and shortcuts for runs in a given state. Tenants are fresh ids: monitoring asks account nothing to serve them."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aos.integrations.v1 import integrations_service_pb2 as integrations_rpc
from aos.integrations.v1 import integrations_service_pb2_grpc
from aos.monitoring.v1 import monitoring_service_pb2 as rpc
from aos.monitoring.v1 import monitoring_service_pb2_grpc as grpc_api
from services.common import server
from tests.conftest import Channels, human


@pytest.fixture(scope="session")
async def activity(channels: Channels, running: dict[str, server.Service]) -> Any:
    return channels.stub(grpc_api.ActivityServiceStub, running["monitoring"])


@pytest.fixture(scope="session")
async def telemetry(channels: Channels, running: dict[str, server.Service]) -> Any:
    return channels.stub(grpc_api.TelemetryServiceStub, running["monitoring"])


@pytest.fixture(scope="session")
async def telemetry_as_integrations(channels: Channels, running: dict[str, server.Service]) -> Any:
    """monitoring as integrations calls it (integrations' certificate): the internal GetIntegrationUsage."""
    return grpc_api.TelemetryServiceStub(channels.channel(running["monitoring"], "integrations"))


@pytest.fixture(scope="session")
async def incidents(channels: Channels, running: dict[str, server.Service]) -> Any:
    return channels.stub(grpc_api.IncidentsServiceStub, running["monitoring"])


@pytest.fixture(scope="session")
async def integrations(channels: Channels, running: dict[str, server.Service]) -> Any:
    return channels.stub(integrations_service_pb2_grpc.IntegrationsServiceStub, running["integrations"])


async def new_integration(integrations: Any, tenant: str, name: str = "main") -> str:
    """A real integration of the tenant (ingest asks integrations whether the tenant owns it)."""
    request = integrations_rpc.CreateIntegrationRequest(
        name=name, provider_type="openai", credential=f"sk-{uuid.uuid4().hex}"
    )
    return str((await integrations.CreateIntegration(request, metadata=human(tenant), timeout=10)).data.id)


@pytest.fixture
def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def project(account: Any) -> tuple[str, str]:
    """A tenant account knows and one of its projects: CreateRun checks a run's project with account."""
    from aos.account.v1 import account_service_pb2 as account_rpc

    owner = human()
    reply = await account.CreateTenant(account_rpc.CreateTenantRequest(name="Projects"), metadata=owner, timeout=5)
    tenant_id = str(reply.tenant.tenant_id)
    request = account_rpc.CreateProjectRequest(name="p")
    made = await account.CreateProject(request, metadata=human(tenant_id, user=owner[1][1]), timeout=5)
    return tenant_id, str(made.project_id)


def key(tenant: str, scopes: str = "run:*,read:*", key_id: str = "key-1", prefix: str = "aos_0123abcd") -> Any:
    """Caller metadata of an API key as the gate injects it."""
    return (
        ("x-aos-actor-type", "api_key"),
        ("x-aos-actor-id", key_id),
        ("x-aos-tenant-id", tenant),
        ("x-aos-scopes", scopes),
        ("x-aos-key-prefix", prefix),
    )


async def new_run(activity: Any, tenant: str, **fields: Any) -> Any:
    fields = {"agent_id": "a1", "goal": "summarise", **fields}
    return await activity.CreateRun(rpc.CreateRunRequest(**fields), metadata=key(tenant), timeout=10)


async def finish(activity: Any, tenant: str, run_id: str, status: str = "succeeded", **fields: Any) -> Any:
    request = rpc.CompleteRunRequest(run_id=run_id, status=status, **fields)
    return await activity.CompleteRun(request, metadata=key(tenant), timeout=10)


async def sql(engines: dict[str, AsyncEngine], query: str, **params: Any) -> list[Any]:
    async with engines["monitoring"].begin() as conn:
        result = await conn.execute(text(query), params)
        return list(result.all()) if result.returns_rows else []


async def event_types(engines: dict[str, AsyncEngine], tenant: str) -> list[str]:
    rows = await sql(engines, "SELECT event_type FROM event WHERE tenant_id = :t ORDER BY position", t=tenant)
    return [r.event_type for r in rows]
