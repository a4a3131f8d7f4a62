"""CheckIntegrations, monitoring's question before it stores usage (MONITORING.md decision 12): which of the
ids are the tenant's undeleted integrations; only monitoring may ask."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
import pytest

from aos.integrations.v1 import integrations_service_pb2 as rpc
from aos.integrations.v1 import integrations_service_pb2_grpc
from services.common import server
from tests.conftest import Channels, human, service
from tests.integrations.conftest import GOOD_KEY


@pytest.fixture(scope="session")
async def as_monitoring(channels: Channels, running: dict[str, server.Service]) -> Any:
    """integrations as monitoring calls it: monitoring's certificate."""
    return channels.stub(integrations_service_pb2_grpc.IntegrationsServiceStub, running["integrations"], "monitoring")


async def create(integrations: Any, tenant_id: str, name: str) -> str:
    request = rpc.CreateIntegrationRequest(name=name, provider_type="openai", credential=GOOD_KEY)
    return str((await integrations.CreateIntegration(request, metadata=human(tenant_id))).data.id)


async def check(stub: Any, tenant_id: str, *ids: str) -> list[str]:
    request = rpc.CheckIntegrationsRequest(tenant_id=tenant_id, integration_ids=ids)
    return list(
        (await stub.CheckIntegrations(request, metadata=service("monitoring"), timeout=5)).owned_integration_ids
    )


async def test_only_the_tenants_undeleted_integrations_are_owned(
    integrations: Any, as_monitoring: Any, tenant_id: str
) -> None:
    mine, gone = await create(integrations, tenant_id, "mine"), await create(integrations, tenant_id, "gone")
    theirs = await create(integrations, str(uuid.uuid4()), "theirs")
    await integrations.DeleteIntegration(rpc.DeleteIntegrationRequest(integration_id=gone), metadata=human(tenant_id))
    owned = await check(as_monitoring, tenant_id, theirs, "not-a-uuid", mine, gone, mine.upper(), mine)
    assert owned == [mine]  # as sent, once; another tenant's, deleted, malformed and respelled ids are not owned


@pytest.mark.parametrize(("tenant", "count"), [("", 1), ("t", 0), ("t", 101)])
async def test_a_question_needs_a_tenant_and_1_to_100_ids(as_monitoring: Any, tenant: str, count: int) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await check(as_monitoring, tenant, *(str(uuid.uuid4()) for _ in range(count)))
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_only_monitoring_may_ask(integrations: Any, evidence_reader: Any, tenant_id: str) -> None:
    for stub, metadata in ((evidence_reader, service("onboarding")), (integrations, human(tenant_id))):
        request = rpc.CheckIntegrationsRequest(tenant_id=tenant_id, integration_ids=[str(uuid.uuid4())])
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.CheckIntegrations(request, metadata=metadata, timeout=5)
        assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
