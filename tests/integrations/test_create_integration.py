"""CreateIntegration: SPEC scenarios 24 and 25, validation naming the field, and credentials that never leak."""

import logging
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aos.integrations.v1 import integrations_service_pb2 as rpc
from tests.conftest import human
from tests.integrations.conftest import GOOD_KEY, FakeProvider

SECRET = "sk-live-" + "s3cr3t" * 6


def create(name: str = "openai-prod", **fields: Any) -> rpc.CreateIntegrationRequest:
    fields.setdefault("provider_type", "openai")
    if "credential_ref" not in fields:
        fields.setdefault("credential", GOOD_KEY)
    return rpc.CreateIntegrationRequest(name=name, **fields)


def field_of(err: grpc.aio.AioRpcError) -> str:
    return str(dict(err.trailing_metadata() or ()).get("x-aos-http-status", "")) + "|" + (err.details() or "")


async def rows(engines: dict[str, AsyncEngine], sql: str, **params: Any) -> list[Any]:
    async with engines["integrations"].connect() as conn:
        return list((await conn.execute(text(sql), params)).all())


async def test_create_returns_created_status_unknown_health_and_no_credential(
    integrations: Any, tenant_id: str
) -> None:
    reply = await integrations.CreateIntegration(
        create(credential_ref="encrypted://" + "A" * 60, default_model="gpt-4o"), metadata=human(tenant_id), timeout=5
    )
    assert reply.success and reply.data.status == "created" and reply.data.health_state == "unknown"
    assert reply.data.tenant_id == tenant_id and reply.data.has_credential and reply.meta.request_id
    assert not hasattr(reply.data, "credential_ref") and not hasattr(reply.data, "config")


@pytest.mark.parametrize("ref", ["sk-abc", "anthropic-key", "az-123", "aws_secret", "SK-upper"])
async def test_raw_secret_in_credential_ref_is_refused_naming_the_field(
    integrations: Any, tenant_id: str, engines: dict[str, AsyncEngine], ref: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await integrations.CreateIntegration(create(credential_ref=ref), metadata=human(tenant_id), timeout=5)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().startswith("credential_ref:") and ref not in caught.value.details()
    assert await rows(engines, "SELECT id FROM integration WHERE tenant_id = :t", t=tenant_id) == []


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 256}, "name"),
        ({"provider_type": "cohere"}, "provider_type"),
        ({"credential_ref": "vault://x"}, "credential_ref"),
        ({"credential_ref": "", "credential": ""}, "credential"),
        ({"credential_ref": "env://OPENAI_KEY", "credential": "x"}, "credential"),
        ({"budget_limit_cents": -1}, "budget_limit_cents"),
        ({"default_model": "m" * 101}, "default_model"),
        (
            {"config": struct_pb2.Struct(fields={"base_url": struct_pb2.Value(string_value="ftp://x")})},
            "config.base_url",
        ),
    ],
)
async def test_invalid_input_names_the_field_and_writes_nothing(
    integrations: Any, tenant_id: str, engines: dict[str, AsyncEngine], fields: dict[str, Any], field: str
) -> None:
    request = create(**({"name": "ok"} | fields)) if "name" not in fields else create(**fields)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await integrations.CreateIntegration(request, metadata=human(tenant_id), timeout=5)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().split(":")[0] == field
    assert await rows(engines, "SELECT event_id FROM event WHERE tenant_id = :t", t=tenant_id) == []


async def test_duplicate_name_is_already_exists_but_another_tenant_may_use_it(
    integrations: Any, tenant_id: str
) -> None:
    await integrations.CreateIntegration(create("shared"), metadata=human(tenant_id), timeout=5)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await integrations.CreateIntegration(create("shared"), metadata=human(tenant_id), timeout=5)
    assert caught.value.code() is grpc.StatusCode.ALREADY_EXISTS
    assert "Integration with name 'shared' already exists" in caught.value.details()
    other = await integrations.CreateIntegration(create("shared"), metadata=human("t-" + tenant_id), timeout=5)
    assert other.data.status == "created"


async def test_credential_never_leaves_in_clear(
    integrations: Any,
    tenant_id: str,
    engines: dict[str, AsyncEngine],
    caplog: pytest.LogCaptureFixture,
    provider: FakeProvider,
) -> None:
    caplog.set_level(logging.DEBUG)
    md = human(tenant_id)
    base = struct_pb2.Struct(fields={"base_url": struct_pb2.Value(string_value=provider.base())})
    created = await integrations.CreateIntegration(
        create("leak-check", credential=SECRET, config=base), metadata=md, timeout=5
    )
    iid = created.data.id
    got = await integrations.GetIntegration(rpc.GetIntegrationRequest(integration_id=iid), metadata=md)
    listed = await integrations.ListIntegrations(rpc.ListIntegrationsRequest(), metadata=md, timeout=5)
    tested = await integrations.TestIntegration(rpc.TestIntegrationRequest(integration_id=iid), metadata=md)
    assert tested.data.health_state == "failing"  # the provider saw the real (wrong) key
    assert provider.seen[-1]["headers"]["authorization"] == f"Bearer {SECRET}"
    updated = await integrations.UpdateIntegration(
        rpc.UpdateIntegrationRequest(integration_id=iid, credential=SECRET + "2"), metadata=md
    )
    for reply in (created, got, listed, tested, updated):
        assert SECRET.encode() not in reply.SerializeToString()
    dump = await rows(engines, "SELECT row_to_json(i)::text FROM integration i WHERE tenant_id = :t", t=tenant_id)
    dump += await rows(engines, "SELECT row_to_json(e)::text FROM event e WHERE tenant_id = :t", t=tenant_id)
    dump += await rows(engines, "SELECT row_to_json(k)::text FROM tenant_key k WHERE tenant_id = :t", t=tenant_id)
    assert len(dump) == 5 and all(SECRET not in row[0] for row in dump)
    stored = await rows(engines, "SELECT credential_ref FROM integration WHERE id = :i", i=iid)
    assert stored[0][0].startswith("encrypted://")
    assert "tested" in caplog.text and SECRET not in caplog.text
