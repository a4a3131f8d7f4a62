"""CreateConnector (and its siblings) refuse bad input with 400 naming the field, never 500: names are
NFC-normalised and free of hidden characters, endpoints and connection URLs are parsed at create/update
and again at `:test` (issue 11)."""

import unicodedata
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aos.integrations.v1 import integrations_service_pb2 as rpc
from tests.conftest import human

NFC = "Café-prod"
NFD = unicodedata.normalize("NFD", NFC)


async def refused(call: Any, request: Any, tenant_id: str) -> str:
    """The field an INVALID_ARGUMENT names."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(request, metadata=human(tenant_id), timeout=10)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    return str(caught.value.details()).split(":", 1)[0]


async def test_composed_and_decomposed_names_are_one_name(integrations: Any, tenant_id: str) -> None:
    assert NFC != NFD
    md = human(tenant_id)
    first = await integrations.CreateConnector(rpc.CreateConnectorRequest(name=NFD, connector_type="http"), metadata=md)
    assert first.connector.name == NFC  # stored composed
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await integrations.CreateConnector(rpc.CreateConnectorRequest(name=NFC, connector_type="http"), metadata=md)
    assert caught.value.code() is grpc.StatusCode.ALREADY_EXISTS
    await integrations.CreateIntegration(
        rpc.CreateIntegrationRequest(name=NFC, provider_type="openai", credential="k"), metadata=md
    )
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await integrations.CreateIntegration(
            rpc.CreateIntegrationRequest(name=NFD, provider_type="openai", credential="k"), metadata=md
        )
    assert again.value.code() is grpc.StatusCode.ALREADY_EXISTS


@pytest.mark.parametrize("hidden", ["\u202e", "\u2066", "\u200b", "\ufeff", "\x1b"])
async def test_names_with_hidden_characters_are_refused(
    integrations: Any, tenant_id: str, engines: dict[str, AsyncEngine], hidden: str
) -> None:
    name = f"prod{hidden}db"
    assert (
        await refused(
            integrations.CreateConnector, rpc.CreateConnectorRequest(name=name, connector_type="http"), tenant_id
        )
        == "name"
    )
    assert (
        await refused(
            integrations.CreateDatasource, rpc.CreateDatasourceRequest(name=name, source_type="api"), tenant_id
        )
        == "name"
    )
    assert (
        await refused(
            integrations.CreateIntegration,
            rpc.CreateIntegrationRequest(name=name, provider_type="openai", credential="k"),
            tenant_id,
        )
        == "name"
    )
    async with engines["integrations"].connect() as conn:
        found = await conn.execute(text("SELECT count(*) FROM connector WHERE tenant_id = :t"), {"t": tenant_id})
        assert found.scalar_one() == 0


@pytest.mark.parametrize("url", ["http://127.0.0.1:99999/", "http:///nohost", "http://[::1/", "gopher://x/"])
async def test_malformed_endpoints_are_refused_at_create_and_update(
    integrations: Any, tenant_id: str, url: str
) -> None:
    create = rpc.CreateConnectorRequest(name="c", connector_type="http", endpoint=url)
    assert await refused(integrations.CreateConnector, create, tenant_id) == "endpoint"
    source = rpc.CreateDatasourceRequest(name="d", source_type="api", endpoint=url)
    assert await refused(integrations.CreateDatasource, source, tenant_id) == "endpoint"
    config = struct_pb2.Struct(fields={"base_url": struct_pb2.Value(string_value=url)})
    provider = rpc.CreateIntegrationRequest(name="i", provider_type="custom", credential="k", config=config)
    assert await refused(integrations.CreateIntegration, provider, tenant_id) == "config.base_url"
    made = await integrations.CreateConnector(
        rpc.CreateConnectorRequest(name="ok", connector_type="http"), metadata=human(tenant_id)
    )
    update = rpc.UpdateConnectorRequest(connector_id=made.connector.connector_id, endpoint=url)
    assert await refused(integrations.UpdateConnector, update, tenant_id) == "endpoint"


async def test_a_stored_malformed_endpoint_is_refused_at_test(
    integrations: Any, tenant_id: str, engines: dict[str, AsyncEngine]
) -> None:
    """Rows written before endpoints were checked: `:test` answers 400, not 500 (issue 11)."""
    made = rpc.CreateConnectorRequest(name="old", connector_type="http", endpoint="http://127.0.0.1:9/")
    test = await legacy(integrations, engines, tenant_id, made, "endpoint = 'http://[::1/'")
    assert await refused(integrations.TestConnector, test, tenant_id) == "endpoint"


async def legacy(
    integrations: Any, engines: dict[str, AsyncEngine], tenant_id: str, made: Any, change: str
) -> rpc.TestConnectorRequest:
    """A connector as a row stored before today's checks could be: created, then changed in SQL behind the
    service's back. Returns the request that tests it."""
    cid = (await integrations.CreateConnector(made, metadata=human(tenant_id))).connector.connector_id
    async with engines["integrations"].begin() as conn:
        await conn.execute(text(f"UPDATE connector SET {change} WHERE id = :i"), {"i": cid})
    return rpc.TestConnectorRequest(connector_id=cid)


async def test_a_connection_url_that_does_not_parse_is_400_at_create_update_and_test(
    integrations: Any, tenant_id: str, engines: dict[str, AsyncEngine]
) -> None:
    create = rpc.CreateConnectorRequest(name="pg", connector_type="sql", credential="not a url")
    assert await refused(integrations.CreateConnector, create, tenant_id) == "credential"
    source = rpc.CreateDatasourceRequest(name="pg", source_type="database", credential="postgresql://u:p@h:99999/d")
    assert await refused(integrations.CreateDatasource, source, tenant_id) == "credential"
    made = await integrations.CreateConnector(
        rpc.CreateConnectorRequest(name="pg", connector_type="sql"), metadata=human(tenant_id)
    )
    update = rpc.UpdateConnectorRequest(connector_id=made.connector.connector_id, credential="not a url")
    assert await refused(integrations.UpdateConnector, update, tenant_id) == "credential"
    # An http connector (whose credential is no URL) turned sql: the URL is checked again at `:test`.
    made = rpc.CreateConnectorRequest(name="legacy", connector_type="http", credential="not a url")
    test = await legacy(integrations, engines, tenant_id, made, "connector_type = 'sql'")
    assert await refused(integrations.TestConnector, test, tenant_id) == "credential"
