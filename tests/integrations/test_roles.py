"""Owners and admins manage integrations, connectors and datasources; members and viewers only read
(issue 11: a viewer re-pointed an owner's integration and received its credential through `:test`)."""

from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aos.integrations.v1 import integrations_service_pb2 as rpc
from tests.conftest import human
from tests.integrations.conftest import GOOD_KEY, FakeProvider

Ids = dict[str, str]
# Every write RPC (all that change a row or send a credential out), by the ids of an owner's rows.
WRITES: dict[str, Callable[[Ids], Any]] = {
    "CreateIntegration": lambda i: rpc.CreateIntegrationRequest(name="v", provider_type="openai", credential="x"),
    "UpdateIntegration": lambda i: rpc.UpdateIntegrationRequest(
        integration_id=i["integration"], config=struct_pb2.Struct(fields={"base_url": value("http://127.0.0.1:1/")})
    ),
    "DeleteIntegration": lambda i: rpc.DeleteIntegrationRequest(integration_id=i["integration"]),
    "EnableIntegration": lambda i: rpc.EnableIntegrationRequest(integration_id=i["integration"]),
    "DisableIntegration": lambda i: rpc.DisableIntegrationRequest(integration_id=i["integration"]),
    "TestIntegration": lambda i: rpc.TestIntegrationRequest(integration_id=i["integration"]),
    "CreateLegacyIntegration": lambda i: rpc.CreateLegacyIntegrationRequest(
        name="v", provider_type="openai", credential="x"
    ),
    "UpdateLegacyIntegration": lambda i: rpc.UpdateLegacyIntegrationRequest(
        integration_id=i["integration"], name="legacy"
    ),
    "CreateConnector": lambda i: rpc.CreateConnectorRequest(name="v", connector_type="http"),
    "UpdateConnector": lambda i: rpc.UpdateConnectorRequest(connector_id=i["connector"], name="mine"),
    "DeleteConnector": lambda i: rpc.DeleteConnectorRequest(connector_id=i["connector"]),
    "EnableConnector": lambda i: rpc.EnableConnectorRequest(connector_id=i["connector"]),
    "DisableConnector": lambda i: rpc.DisableConnectorRequest(connector_id=i["connector"]),
    "TestConnector": lambda i: rpc.TestConnectorRequest(connector_id=i["connector"]),
    "CreateDatasource": lambda i: rpc.CreateDatasourceRequest(name="v", source_type="api"),
    "UpdateDatasource": lambda i: rpc.UpdateDatasourceRequest(source_id=i["datasource"], name="mine"),
    "DeleteDatasource": lambda i: rpc.DeleteDatasourceRequest(source_id=i["datasource"]),
    "EnableDatasource": lambda i: rpc.EnableDatasourceRequest(source_id=i["datasource"]),
    "DisableDatasource": lambda i: rpc.DisableDatasourceRequest(source_id=i["datasource"]),
    "TestDatasource": lambda i: rpc.TestDatasourceRequest(source_id=i["datasource"]),
}
READS: dict[str, Callable[[Ids], Any]] = {
    "GetIntegration": lambda i: rpc.GetIntegrationRequest(integration_id=i["integration"]),
    "ListIntegrations": lambda i: rpc.ListIntegrationsRequest(),
    "ListIntegrationsFacade": lambda i: rpc.ListIntegrationsFacadeRequest(),
    "GetIntegrationHealth": lambda i: rpc.GetIntegrationHealthRequest(integration_id=i["integration"]),
    "GetIntegrationLimits": lambda i: rpc.GetIntegrationLimitsRequest(integration_id=i["integration"]),
    "GetLegacyIntegration": lambda i: rpc.GetLegacyIntegrationRequest(integration_id=i["integration"]),
    "GetLegacyIntegrationHealth": lambda i: rpc.GetLegacyIntegrationHealthRequest(integration_id=i["integration"]),
    "GetLegacyIntegrationLimits": lambda i: rpc.GetLegacyIntegrationLimitsRequest(integration_id=i["integration"]),
    "GetConnector": lambda i: rpc.GetConnectorRequest(connector_id=i["connector"]),
    "ListConnectors": lambda i: rpc.ListConnectorsRequest(),
    "GetDatasource": lambda i: rpc.GetDatasourceRequest(source_id=i["datasource"]),
    "ListDatasources": lambda i: rpc.ListDatasourcesRequest(),
}
INTERNAL = {"GetActivationEvidence", "CheckIntegrations"}


def value(text_: str) -> struct_pb2.Value:
    return struct_pb2.Value(string_value=text_)


async def owners_rows(integrations: Any, tenant_id: str, provider: FakeProvider) -> Ids:
    md = human(tenant_id)
    config = struct_pb2.Struct(fields={"base_url": value(provider.base())})
    integration = await integrations.CreateIntegration(
        rpc.CreateIntegrationRequest(name="owners", provider_type="openai", credential=GOOD_KEY, config=config),
        metadata=md,
    )
    connector = await integrations.CreateConnector(
        rpc.CreateConnectorRequest(
            name="owners", connector_type="http", endpoint=provider.base() + "/models", credential=GOOD_KEY
        ),
        metadata=md,
    )
    datasource = await integrations.CreateDatasource(
        rpc.CreateDatasourceRequest(name="owners", source_type="api", endpoint=provider.base() + "/models"), metadata=md
    )
    return {
        "integration": integration.data.id,
        "connector": connector.connector.connector_id,
        "datasource": datasource.datasource.source_id,
    }


async def snapshot(engines: dict[str, AsyncEngine], tenant_id: str) -> list[Any]:
    async with engines["integrations"].connect() as conn:
        found = await conn.execute(
            text(
                "SELECT (SELECT json_agg(i ORDER BY id)::text FROM integration i WHERE tenant_id = :t), "
                "(SELECT json_agg(c ORDER BY id)::text FROM connector c WHERE tenant_id = :t), "
                "(SELECT json_agg(d ORDER BY id)::text FROM datasource d WHERE tenant_id = :t), "
                "(SELECT count(*) FROM event WHERE tenant_id = :t)"
            ),
            {"t": tenant_id},
        )
        return list(found.one())


def test_every_rpc_is_classified() -> None:
    methods = {m.name for m in rpc.DESCRIPTOR.services_by_name["IntegrationsService"].methods}
    assert methods == WRITES.keys() | READS.keys() | INTERNAL


@pytest.mark.parametrize("role", ["member", "viewer"])
async def test_members_and_viewers_read_but_change_and_test_nothing(
    integrations: Any, tenant_id: str, provider: FakeProvider, engines: dict[str, AsyncEngine], role: str
) -> None:
    ids = await owners_rows(integrations, tenant_id, provider)
    before, calls = await snapshot(engines, tenant_id), len(provider.seen)
    reader = human(tenant_id, role=role)
    for name, build in WRITES.items():
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await getattr(integrations, name)(build(ids), metadata=reader, timeout=5)
        assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED, name
    for name, build in READS.items():
        await getattr(integrations, name)(build(ids), metadata=reader, timeout=5)
    assert await snapshot(engines, tenant_id) == before and len(provider.seen) == calls


async def test_admins_manage(integrations: Any, tenant_id: str, provider: FakeProvider) -> None:
    ids = await owners_rows(integrations, tenant_id, provider)
    admin = human(tenant_id, role="admin")
    tested = await integrations.TestIntegration(
        rpc.TestIntegrationRequest(integration_id=ids["integration"]), metadata=admin, timeout=10
    )
    assert tested.data.health_state == "healthy"
    renamed = await integrations.UpdateConnector(
        rpc.UpdateConnectorRequest(connector_id=ids["connector"], name="renamed"), metadata=admin, timeout=5
    )
    assert renamed.connector.name == "renamed"
