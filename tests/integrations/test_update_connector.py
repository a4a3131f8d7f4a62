"""UpdateConnector and UpdateDatasource: partial updates with their events; never status; scoped like the rest."""

from typing import Any

import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aos.integrations.v1 import integrations_service_pb2 as rpc
from tests.conftest import human
from tests.integrations.conftest import GOOD_KEY, FakeProvider


async def test_connector_update_reseals_the_credential_and_emits_updated(
    integrations: Any, tenant_id: str, provider: FakeProvider, engines: dict[str, AsyncEngine]
) -> None:
    md = human(tenant_id)
    created = await integrations.CreateConnector(
        rpc.CreateConnectorRequest(name="api", connector_type="http", endpoint=provider.base("boom") + "/models"),
        metadata=md,
    )
    cid = created.connector.connector_id
    updated = await integrations.UpdateConnector(
        rpc.UpdateConnectorRequest(
            connector_id=cid, endpoint=provider.base() + "/models", credential=GOOD_KEY, capabilities=["read"]
        ),
        metadata=md,
    )
    assert updated.connector.has_credential and list(updated.connector.capabilities) == ["read"]
    assert updated.connector.status == "registered"
    tested = await integrations.TestConnector(rpc.TestConnectorRequest(connector_id=cid), metadata=md, timeout=10)
    assert tested.connector.health_state == "healthy"
    async with engines["integrations"].connect() as conn:
        payload = (
            await conn.execute(
                text("SELECT payload FROM event WHERE tenant_id = :t AND event_type = 'connector.updated'"),
                {"t": tenant_id},
            )
        ).scalar_one()
    assert payload == {
        "connector_id": cid,
        "fields": ["capabilities", "credential_ref", "endpoint"],
        "health_state": "unknown",
    }
    with pytest.raises(grpc.aio.AioRpcError) as empty:
        await integrations.UpdateConnector(rpc.UpdateConnectorRequest(connector_id=cid), metadata=md)
    assert empty.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as bad_url:
        await integrations.UpdateConnector(
            rpc.UpdateConnectorRequest(connector_id=cid, endpoint="http://user:pw@example.com/"), metadata=md
        )
    assert bad_url.value.details().startswith("endpoint:") and "pw" not in bad_url.value.details().split(":", 1)[1]
    with pytest.raises(grpc.aio.AioRpcError) as other:
        await integrations.UpdateConnector(
            rpc.UpdateConnectorRequest(connector_id=cid, name="stolen"), metadata=human("o-" + tenant_id)
        )
    assert other.value.code() is grpc.StatusCode.NOT_FOUND


async def test_datasource_update_and_duplicate_names(integrations: Any, tenant_id: str) -> None:
    md = human(tenant_id)
    for name in ("a", "b"):
        await integrations.CreateDatasource(rpc.CreateDatasourceRequest(name=name, source_type="document"), metadata=md)
    with pytest.raises(grpc.aio.AioRpcError) as dup:
        await integrations.CreateDatasource(rpc.CreateDatasourceRequest(name="a", source_type="file"), metadata=md)
    assert dup.value.code() is grpc.StatusCode.ALREADY_EXISTS
    listed = await integrations.ListDatasources(rpc.ListDatasourcesRequest(), metadata=md)
    b = next(d for d in listed.datasources if d.name == "b")
    changed = await integrations.UpdateDatasource(
        rpc.UpdateDatasourceRequest(source_id=b.source_id, description="docs", tags=["x", "y"]), metadata=md
    )
    assert changed.datasource.description == "docs" and list(changed.datasource.tags) == ["x", "y"]
    with pytest.raises(grpc.aio.AioRpcError) as taken:
        await integrations.UpdateDatasource(rpc.UpdateDatasourceRequest(source_id=b.source_id, name="a"), metadata=md)
    assert taken.value.code() is grpc.StatusCode.ALREADY_EXISTS
    with pytest.raises(grpc.aio.AioRpcError) as no_check:
        await integrations.TestDatasource(rpc.TestDatasourceRequest(source_id=b.source_id), metadata=md)
    assert no_check.value.code() is grpc.StatusCode.FAILED_PRECONDITION


async def test_a_new_endpoint_without_the_credential_clears_it(
    integrations: Any, tenant_id: str, provider: FakeProvider
) -> None:
    md = human(tenant_id)
    endpoint = provider.base() + "/models"
    created = await integrations.CreateConnector(
        rpc.CreateConnectorRequest(name="bound", connector_type="http", endpoint=endpoint, credential=GOOD_KEY),
        metadata=md,
    )
    cid = created.connector.connector_id
    renamed = await integrations.UpdateConnector(rpc.UpdateConnectorRequest(connector_id=cid, name="b2"), metadata=md)
    assert renamed.connector.has_credential
    moved = await integrations.UpdateConnector(
        rpc.UpdateConnectorRequest(connector_id=cid, endpoint=provider.base("elsewhere") + "/models"), metadata=md
    )
    assert not moved.connector.has_credential and moved.connector.health_state == "unknown"
    tested = await integrations.TestConnector(rpc.TestConnectorRequest(connector_id=cid), metadata=md, timeout=10)
    assert "authorization" not in provider.seen[-1]["headers"] and tested.connector.health_state == "failing"

    source = await integrations.CreateDatasource(
        rpc.CreateDatasourceRequest(name="bound", source_type="api", endpoint=endpoint, credential=GOOD_KEY),
        metadata=md,
    )
    sid = source.datasource.source_id
    kept = await integrations.UpdateDatasource(
        rpc.UpdateDatasourceRequest(source_id=sid, endpoint=provider.base("busy") + "/models", credential=GOOD_KEY),
        metadata=md,
    )
    assert kept.datasource.has_credential
    cleared = await integrations.UpdateDatasource(
        rpc.UpdateDatasourceRequest(source_id=sid, endpoint=endpoint), metadata=md
    )
    assert not cleared.datasource.has_credential and cleared.datasource.health_state == "unknown"
