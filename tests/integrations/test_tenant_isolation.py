"""Another tenant's id answers NOT_FOUND for every RPC that takes one, and changes nothing (SPEC 0.9, scenario 28)."""

from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aos.integrations.v1 import integrations_service_pb2 as rpc
from tests.conftest import human
from tests.integrations.conftest import GOOD_KEY

CALLS = [
    ("GetIntegration", lambda i: rpc.GetIntegrationRequest(integration_id=i)),
    ("UpdateIntegration", lambda i: rpc.UpdateIntegrationRequest(integration_id=i, name="stolen")),
    ("UpdateIntegration", lambda i: rpc.UpdateIntegrationRequest(integration_id=i, credential="other-key")),
    ("DeleteIntegration", lambda i: rpc.DeleteIntegrationRequest(integration_id=i)),
    ("EnableIntegration", lambda i: rpc.EnableIntegrationRequest(integration_id=i)),
    ("DisableIntegration", lambda i: rpc.DisableIntegrationRequest(integration_id=i)),
    ("TestIntegration", lambda i: rpc.TestIntegrationRequest(integration_id=i)),
    ("GetIntegrationHealth", lambda i: rpc.GetIntegrationHealthRequest(integration_id=i)),
    ("GetIntegrationLimits", lambda i: rpc.GetIntegrationLimitsRequest(integration_id=i)),
]


async def snapshot(engines: dict[str, AsyncEngine], victim: str) -> list[Any]:
    async with engines["integrations"].connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT (SELECT json_agg(i)::text FROM integration i WHERE tenant_id = :t), "
                "(SELECT count(*) FROM event WHERE tenant_id = :t), "
                "(SELECT count(*) FROM tenant_key WHERE tenant_id = :t)"
            ),
            {"t": victim},
        )
        return list(rows.one())


async def test_every_call_with_another_tenants_id_is_not_found_and_changes_nothing(
    integrations: Any, tenant_id: str, engines: dict[str, AsyncEngine], provider: Any
) -> None:
    config = struct_pb2.Struct(fields={"base_url": struct_pb2.Value(string_value=provider.base())})
    request = rpc.CreateIntegrationRequest(name="victim", provider_type="openai", credential=GOOD_KEY, config=config)
    victim = (await integrations.CreateIntegration(request, metadata=human(tenant_id), timeout=5)).data.id
    await integrations.EnableIntegration(rpc.EnableIntegrationRequest(integration_id=victim), metadata=human(tenant_id))
    before = await snapshot(engines, tenant_id)
    attacker = human("attacker-" + tenant_id)
    for name, build in CALLS:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await getattr(integrations, name)(build(victim), metadata=attacker, timeout=5)
        assert caught.value.code() is grpc.StatusCode.NOT_FOUND, name
    listed = await integrations.ListIntegrations(rpc.ListIntegrationsRequest(), metadata=attacker, timeout=5)
    assert list(listed.data) == [] and listed.meta.total == 0
    assert await snapshot(engines, tenant_id) == before


async def test_unknown_and_malformed_ids(integrations: Any, tenant_id: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await integrations.EnableIntegration(
            rpc.EnableIntegrationRequest(integration_id="00000000-0000-4000-8000-000000000000"),
            metadata=human(tenant_id),
        )
    assert unknown.value.code() is grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as malformed:
        await integrations.GetIntegration(rpc.GetIntegrationRequest(integration_id="nope"), metadata=human(tenant_id))
    assert malformed.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert malformed.value.details().startswith("integration_id:")
