"""CheckProject, the internal project check monitoring's CreateRun asks (MONITORING.md section 1; M34)."""

from typing import Any

import grpc
import pytest

from aos.account.v1 import account_service_pb2 as rpc
from aos.account.v1 import account_service_pb2_grpc
from services.common import server
from tests.conftest import Channels, human, service


@pytest.fixture
async def account_as_monitoring(channels: Channels, running: dict[str, server.Service]) -> Any:
    return account_service_pb2_grpc.AccountServiceStub(channels.channel(running["account"], "monitoring"))


async def test_a_project_exists_only_in_its_own_tenant(account: Any, account_as_monitoring: Any, tenant: str) -> None:
    made = await account.CreateProject(rpc.CreateProjectRequest(name="p"), metadata=human(tenant), timeout=5)

    async def check(tenant_id: str, project_id: str) -> rpc.CheckProjectResponse:
        request = rpc.CheckProjectRequest(tenant_id=tenant_id, project_id=project_id)
        return await account_as_monitoring.CheckProject(request, metadata=service("monitoring"), timeout=5)

    mine = await check(tenant, made.project_id)
    assert (mine.exists, mine.status) == (True, made.status)
    for tenant_id, project_id in (("another-tenant", made.project_id), (tenant, "no-such-project")):
        assert not (await check(tenant_id, project_id)).exists
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await check(tenant, "")
    assert bad.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_only_monitoring_may_check(account: Any, account_as_onboarding: Any, tenant: str) -> None:
    request = rpc.CheckProjectRequest(tenant_id=tenant, project_id="p")
    for stub, metadata in ((account_as_onboarding, service()), (account, human(tenant))):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.CheckProject(request, metadata=metadata, timeout=5)
        assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED, refused.value.details()
