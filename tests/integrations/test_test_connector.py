"""Connectors and datasources: persisted, tenant-scoped, the same machine and events, and real checks
(http: a request to the endpoint; sql: connect and SELECT 1 against the test PostgreSQL)."""

from typing import Any

import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from aos.integrations.v1 import integrations_service_pb2 as rpc
from tests.conftest import human, service
from tests.integrations.conftest import GOOD_KEY, FakeProvider


async def connector(integrations: Any, tenant_id: str, **fields: Any) -> Any:
    fields.setdefault("name", f"c-{fields.get('connector_type')}-{len(fields)}")
    request = rpc.CreateConnectorRequest(**fields)
    return (await integrations.CreateConnector(request, metadata=human(tenant_id), timeout=5)).connector


async def check(integrations: Any, tenant_id: str, connector_id: str) -> Any:
    request = rpc.TestConnectorRequest(connector_id=connector_id)
    return (await integrations.TestConnector(request, metadata=human(tenant_id), timeout=15)).connector


async def test_http_connector_is_checked_against_its_endpoint(
    integrations: Any, tenant_id: str, provider: FakeProvider
) -> None:
    good = await connector(
        integrations, tenant_id, connector_type="http", endpoint=provider.base() + "/models", credential=GOOD_KEY
    )
    assert good.status == "registered" and good.capabilities == ["read", "write", "query"] and good.has_credential
    checked = await check(integrations, tenant_id, good.connector_id)
    assert checked.health_state == "healthy" and checked.connection_count == 1 and checked.last_connected.seconds
    bad = await connector(
        integrations, tenant_id, name="bad", connector_type="http", endpoint=provider.base() + "/models", credential="x"
    )
    failed = await check(integrations, tenant_id, bad.connector_id)
    assert failed.health_state == "failing" and failed.error_count == 1


async def test_sql_connector_connects_and_selects_one(
    integrations: Any, tenant_id: str, pg_base: str, engines: dict[str, AsyncEngine]
) -> None:
    ok = await connector(integrations, tenant_id, name="pg", connector_type="sql", credential=pg_base)
    assert "transaction" in ok.capabilities
    checked = await check(integrations, tenant_id, ok.connector_id)
    assert checked.health_state == "healthy", checked.health_message
    secret_dsn = make_url(pg_base).set(password="hunter2-pw", database="no_such_db").render_as_string(False)
    wrong = await connector(integrations, tenant_id, name="pg-wrong", connector_type="sql", credential=secret_dsn)
    failed = await check(integrations, tenant_id, wrong.connector_id)
    assert failed.health_state == "failing" and "hunter2-pw" not in str(failed)
    async with engines["integrations"].connect() as conn:
        dump = await conn.execute(
            text(
                "SELECT (SELECT json_agg(c)::text FROM connector c WHERE tenant_id = :t) || "
                "(SELECT json_agg(e)::text FROM event e WHERE tenant_id = :t)"
            ),
            {"t": tenant_id},
        )
        assert "hunter2-pw" not in dump.scalar_one()
    missing = await connector(integrations, tenant_id, name="pg-none", connector_type="sql")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await check(integrations, tenant_id, missing.connector_id)
    assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION


async def test_connector_lifecycle_events_evidence_and_isolation(
    integrations: Any, evidence_reader: Any, tenant_id: str, provider: FakeProvider, engines: dict[str, AsyncEngine]
) -> None:
    md = human(tenant_id)
    c = await connector(integrations, tenant_id, connector_type="http", endpoint=provider.base() + "/models")
    cid = c.connector_id
    evidence = rpc.GetActivationEvidenceRequest(tenant_id=tenant_id)
    enabled = await integrations.EnableConnector(rpc.EnableConnectorRequest(connector_id=cid), metadata=md)
    assert enabled.connector.status == "connected"
    assert not (await evidence_reader.GetActivationEvidence(evidence, metadata=service())).has_validated_connector
    assert (await check(integrations, tenant_id, cid)).health_state == "failing"  # no credential → 401
    await integrations.DisableConnector(rpc.DisableConnectorRequest(connector_id=cid), metadata=md)
    with pytest.raises(grpc.aio.AioRpcError) as twice:
        await integrations.DisableConnector(rpc.DisableConnectorRequest(connector_id=cid), metadata=md)
    assert dict(twice.value.trailing_metadata() or ())["x-aos-http-status"] == "409"
    other = human("other-" + tenant_id)
    for name, request in (
        ("GetConnector", rpc.GetConnectorRequest(connector_id=cid)),
        ("EnableConnector", rpc.EnableConnectorRequest(connector_id=cid)),
        ("DisableConnector", rpc.DisableConnectorRequest(connector_id=cid)),
        ("DeleteConnector", rpc.DeleteConnectorRequest(connector_id=cid)),
        ("TestConnector", rpc.TestConnectorRequest(connector_id=cid)),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await getattr(integrations, name)(request, metadata=other, timeout=5)
        assert caught.value.code() is grpc.StatusCode.NOT_FOUND, name
    assert not (await integrations.ListConnectors(rpc.ListConnectorsRequest(), metadata=other)).connectors
    deleted = await integrations.DeleteConnector(rpc.DeleteConnectorRequest(connector_id=cid), metadata=md)
    assert deleted.connector.status == "deprecated" and deleted.connector.deleted
    with pytest.raises(grpc.aio.AioRpcError) as after:
        await integrations.EnableConnector(rpc.EnableConnectorRequest(connector_id=cid), metadata=md)
    assert after.value.details() == "Cannot enable deleted connector"
    async with engines["integrations"].connect() as conn:
        types = (
            await conn.execute(
                text("SELECT event_type FROM event WHERE tenant_id = :t ORDER BY sequence_no"), {"t": tenant_id}
            )
        ).scalars()
        assert list(types) == [
            "connector.created",
            "connector.enabled",
            "connector.tested",
            "connector.disabled",
            "connector.deleted",
        ]
    good = await connector(
        integrations,
        tenant_id,
        name="good",
        connector_type="http",
        endpoint=provider.base() + "/models",
        credential=GOOD_KEY,
    )
    await integrations.EnableConnector(rpc.EnableConnectorRequest(connector_id=good.connector_id), metadata=md)
    await check(integrations, tenant_id, good.connector_id)
    assert (await evidence_reader.GetActivationEvidence(evidence, metadata=service())).has_validated_connector


async def test_datasources_are_persisted_checked_and_scoped(
    integrations: Any, tenant_id: str, pg_base: str, provider: FakeProvider
) -> None:
    md = human(tenant_id)
    db = await integrations.CreateDatasource(
        rpc.CreateDatasourceRequest(name="warehouse", source_type="database", credential=pg_base, tags=["prod"]),
        metadata=md,
    )
    sid = db.datasource.source_id
    assert db.datasource.status == "pending" and list(db.datasource.tags) == ["prod"]
    tested = await integrations.TestDatasource(rpc.TestDatasourceRequest(source_id=sid), metadata=md, timeout=15)
    assert tested.datasource.health_state == "healthy"
    api = await integrations.CreateDatasource(
        rpc.CreateDatasourceRequest(name="api", source_type="api", endpoint=provider.base("boom") + "/models"),
        metadata=md,
    )
    degraded = await integrations.TestDatasource(
        rpc.TestDatasourceRequest(source_id=api.datasource.source_id), metadata=md, timeout=15
    )
    assert degraded.datasource.health_state == "degraded"
    assert (
        await integrations.EnableDatasource(rpc.EnableDatasourceRequest(source_id=sid), metadata=md)
    ).datasource.status == "active"
    assert (
        await integrations.DisableDatasource(rpc.DisableDatasourceRequest(source_id=sid), metadata=md)
    ).datasource.status == "inactive"
    listed = await integrations.ListDatasources(rpc.ListDatasourcesRequest(page_size=1), metadata=md)
    assert len(listed.datasources) == 1 and listed.next_page_token
    rest = await integrations.ListDatasources(
        rpc.ListDatasourcesRequest(page_size=1, page_token=listed.next_page_token), metadata=md
    )
    assert {listed.datasources[0].source_id, rest.datasources[0].source_id} == {sid, api.datasource.source_id}
    other = human("x-" + tenant_id)
    for name, request in (
        ("GetDatasource", rpc.GetDatasourceRequest(source_id=sid)),
        ("UpdateDatasource", rpc.UpdateDatasourceRequest(source_id=sid, name="stolen")),
        ("EnableDatasource", rpc.EnableDatasourceRequest(source_id=sid)),
        ("DisableDatasource", rpc.DisableDatasourceRequest(source_id=sid)),
        ("DeleteDatasource", rpc.DeleteDatasourceRequest(source_id=sid)),
        ("TestDatasource", rpc.TestDatasourceRequest(source_id=sid)),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await getattr(integrations, name)(request, metadata=other, timeout=5)
        assert caught.value.code() is grpc.StatusCode.NOT_FOUND, name
    mine = await integrations.GetDatasource(rpc.GetDatasourceRequest(source_id=sid), metadata=md)
    assert mine.datasource.name == "warehouse" and mine.datasource.status == "inactive"
    gone = await integrations.DeleteDatasource(rpc.DeleteDatasourceRequest(source_id=sid), metadata=md)
    assert gone.datasource.status == "deprecated"
