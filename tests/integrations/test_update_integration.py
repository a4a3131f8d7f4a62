"""UpdateIntegration: any subset of fields, never status; "no fields" is refused; a new credential is re-sealed."""

from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aos.integrations.v1 import integrations_service_pb2 as rpc
from tests.conftest import human, service
from tests.integrations.conftest import GOOD_KEY, FakeProvider


async def new(integrations: Any, tenant_id: str, name: str, base_url: str = "http://127.0.0.1:9/v1") -> str:
    config = struct_pb2.Struct(fields={"base_url": struct_pb2.Value(string_value=base_url)})
    request = rpc.CreateIntegrationRequest(name=name, provider_type="openai", credential="prov-old", config=config)
    return str((await integrations.CreateIntegration(request, metadata=human(tenant_id), timeout=5)).data.id)


async def update(integrations: Any, tenant_id: str, **fields: Any) -> Any:
    request = rpc.UpdateIntegrationRequest(**fields)
    return (await integrations.UpdateIntegration(request, metadata=human(tenant_id), timeout=5)).data


async def test_partial_update_changes_only_the_given_fields(
    integrations: Any, tenant_id: str, engines: dict[str, AsyncEngine]
) -> None:
    iid = await new(integrations, tenant_id, "one")
    data = await update(integrations, tenant_id, integration_id=iid, default_model="gpt-4o", rate_limit_rpm=60)
    assert (data.name, data.default_model, data.rate_limit_rpm, data.status) == ("one", "gpt-4o", 60, "created")
    async with engines["integrations"].connect() as conn:
        payload = (
            await conn.execute(
                text("SELECT payload FROM event WHERE tenant_id = :t AND event_type = 'integration.updated'"),
                {"t": tenant_id},
            )
        ).scalar_one()
    assert payload == {"integration_id": iid, "fields": ["default_model", "rate_limit_rpm"], "health_state": "unknown"}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({}, "update"),
        ({"name": ""}, "name"),
        ({"credential_ref": "sk-x"}, "credential_ref"),
        ({"rate_limit_rpm": -5}, "rate_limit_rpm"),
    ],
)
async def test_bad_updates_name_the_field(
    integrations: Any, tenant_id: str, fields: dict[str, Any], field: str
) -> None:
    iid = await new(integrations, tenant_id, "bad")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await update(integrations, tenant_id, integration_id=iid, **fields)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().split(":")[0] == field


async def test_rename_to_a_taken_name_and_update_of_a_deleted_integration(integrations: Any, tenant_id: str) -> None:
    await new(integrations, tenant_id, "taken")
    iid = await new(integrations, tenant_id, "mine")
    with pytest.raises(grpc.aio.AioRpcError) as dup:
        await update(integrations, tenant_id, integration_id=iid, name="taken")
    assert dup.value.code() is grpc.StatusCode.ALREADY_EXISTS
    await integrations.DeleteIntegration(rpc.DeleteIntegrationRequest(integration_id=iid), metadata=human(tenant_id))
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await update(integrations, tenant_id, integration_id=iid, default_model="x")
    assert gone.value.code() is grpc.StatusCode.FAILED_PRECONDITION


async def test_a_new_credential_is_sealed_again_and_used(
    integrations: Any, tenant_id: str, provider: FakeProvider, engines: dict[str, AsyncEngine]
) -> None:
    iid = await new(integrations, tenant_id, "rekey", provider.base())
    md = human(tenant_id)
    first = await integrations.TestIntegration(rpc.TestIntegrationRequest(integration_id=iid), metadata=md, timeout=10)
    assert first.data.health_state == "failing"
    async with engines["integrations"].connect() as conn:
        before = (await conn.execute(text("SELECT credential_ref FROM integration WHERE id = :i"), {"i": iid})).one()
    await update(integrations, tenant_id, integration_id=iid, credential=GOOD_KEY)
    async with engines["integrations"].connect() as conn:
        after = (await conn.execute(text("SELECT credential_ref FROM integration WHERE id = :i"), {"i": iid})).one()
    assert after[0].startswith("encrypted://") and after != before and GOOD_KEY not in after[0]
    second = await integrations.TestIntegration(rpc.TestIntegrationRequest(integration_id=iid), metadata=md, timeout=10)
    assert second.data.health_state == "healthy"


def base_url(url: str) -> struct_pb2.Struct:
    return struct_pb2.Struct(fields={"base_url": struct_pb2.Value(string_value=url)})


async def stored(engines: dict[str, AsyncEngine], iid: str) -> Any:
    async with engines["integrations"].connect() as conn:
        found = await conn.execute(
            text("SELECT credential_ref, health_state, config FROM integration WHERE id = :i"), {"i": iid}
        )
        return found.one()


async def test_a_new_destination_without_the_credential_clears_it(
    integrations: Any, tenant_id: str, provider: FakeProvider, engines: dict[str, AsyncEngine]
) -> None:
    """Issue 11: a new base_url kept the stored credential, which `:test` then sent there."""
    md = human(tenant_id)
    iid = await new(integrations, tenant_id, "bound", provider.base())
    await update(integrations, tenant_id, integration_id=iid, credential=GOOD_KEY)
    await integrations.EnableIntegration(rpc.EnableIntegrationRequest(integration_id=iid), metadata=md)
    tested = await integrations.TestIntegration(rpc.TestIntegrationRequest(integration_id=iid), metadata=md, timeout=10)
    assert tested.data.health_state == "healthy"
    same = await update(integrations, tenant_id, integration_id=iid, config=base_url(provider.base()))
    assert same.has_credential  # the same destination: nothing to clear

    moved = await update(integrations, tenant_id, integration_id=iid, config=base_url(provider.base("elsewhere")))
    assert not moved.has_credential and moved.health_state == "unknown"
    row = await stored(engines, iid)
    assert row.credential_ref == "" and row.health_state == "unknown"
    evidence = rpc.GetActivationEvidenceRequest(tenant_id=tenant_id)
    assert not (await integrations.GetActivationEvidence(evidence, metadata=service())).has_validated_connector
    calls = len(provider.seen)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await integrations.TestIntegration(rpc.TestIntegrationRequest(integration_id=iid), metadata=md, timeout=10)
    assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION and "credential" in caught.value.details()
    assert len(provider.seen) == calls  # nothing was sent anywhere
    async with engines["integrations"].connect() as conn:
        payload = await conn.execute(
            text(
                "SELECT payload FROM event WHERE tenant_id = :t AND event_type = 'integration.updated' "
                "ORDER BY sequence_no DESC LIMIT 1"
            ),
            {"t": tenant_id},
        )
    assert payload.scalar_one() == {
        "integration_id": iid,
        "fields": ["config", "credential_ref"],
        "health_state": "unknown",
        "credential_cleared": True,
    }

    # Sent again with the new destination, in the same request: kept, and used there.
    again = await update(
        integrations, tenant_id, integration_id=iid, config=base_url(provider.base("busy")), credential=GOOD_KEY
    )
    assert again.has_credential
    retested = await integrations.TestIntegration(
        rpc.TestIntegrationRequest(integration_id=iid), metadata=md, timeout=10
    )
    assert retested.data.health_state == "degraded" and provider.seen[-1]["path"].startswith("/busy/")


async def test_a_region_change_is_a_new_destination_too(
    integrations: Any, tenant_id: str, engines: dict[str, AsyncEngine]
) -> None:
    request = rpc.CreateIntegrationRequest(name="aws", provider_type="bedrock", credential="aws-secret-x")
    iid = (await integrations.CreateIntegration(request, metadata=human(tenant_id), timeout=5)).data.id
    region = struct_pb2.Struct(fields={"region": struct_pb2.Value(string_value="eu-west-1")})
    moved = await update(integrations, tenant_id, integration_id=iid, config=region)
    assert not moved.has_credential and (await stored(engines, iid)).credential_ref == ""
