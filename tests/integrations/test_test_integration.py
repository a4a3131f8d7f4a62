"""TestIntegration against a real fake provider on 127.0.0.1: health mapping, latency, cached health (scenario 29),
the guard against internal destinations, and the activation evidence onboarding reads."""

import os
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aos.integrations.v1 import integrations_service_pb2 as rpc
from aos.integrations.v1 import integrations_service_pb2_grpc
from cli import stack
from services.common import server
from tests.conftest import human, service, settings_for, start_service
from tests.integrations.conftest import GOOD_KEY, SLOW_SECONDS, FakeProvider


def config(**values: str) -> struct_pb2.Struct:
    return struct_pb2.Struct(fields={k: struct_pb2.Value(string_value=v) for k, v in values.items()})


async def register(integrations: Any, tenant_id: str, base_url: str, provider: str = "openai", **fields: Any) -> str:
    if "credential_ref" not in fields:
        fields.setdefault("credential", GOOD_KEY)
    request = rpc.CreateIntegrationRequest(
        name=f"{provider}-{len(base_url)}-{os.urandom(3).hex()}",
        provider_type=provider,
        config=config(base_url=base_url),
        **fields,
    )
    return str((await integrations.CreateIntegration(request, metadata=human(tenant_id), timeout=5)).data.id)


async def run_test(integrations: Any, tenant_id: str, integration_id: str) -> Any:
    request = rpc.TestIntegrationRequest(integration_id=integration_id)
    return (await integrations.TestIntegration(request, metadata=human(tenant_id), timeout=15)).data


@pytest.mark.parametrize(
    ("mode", "credential", "state"),
    [
        ("", GOOD_KEY, "healthy"),
        ("", "prov-wrong-key", "failing"),
        ("boom", GOOD_KEY, "degraded"),
        ("busy", GOOD_KEY, "degraded"),
        ("slow", GOOD_KEY, "degraded"),
    ],
)
async def test_health_follows_the_providers_answer(
    integrations: Any, tenant_id: str, provider: FakeProvider, mode: str, credential: str, state: str
) -> None:
    iid = await register(integrations, tenant_id, provider.base(mode), credential=credential)
    result = await run_test(integrations, tenant_id, iid)
    assert result.health_state == state and result.checked_at.seconds > 0
    assert result.latency_ms >= (SLOW_SECONDS * 1000 - 1500 if mode == "slow" else 0)
    if state == "failing":
        assert "401" in result.message and credential not in result.message
    health = await integrations.GetIntegrationHealth(
        rpc.GetIntegrationHealthRequest(integration_id=iid), metadata=human(tenant_id), timeout=5
    )
    assert (health.data.health_state, health.data.health_checked_at, health.data.latency_ms) == (
        result.health_state,
        result.checked_at,
        result.latency_ms,
    )


async def test_the_decrypted_credential_is_what_the_provider_receives(
    integrations: Any, tenant_id: str, provider: FakeProvider
) -> None:
    openai = await register(integrations, tenant_id, provider.base())
    anthropic = await register(integrations, tenant_id, provider.base(), provider="anthropic")
    assert (await run_test(integrations, tenant_id, openai)).health_state == "healthy"
    assert provider.seen[-1]["path"] == "/v1/models"
    assert provider.seen[-1]["headers"]["authorization"] == f"Bearer {GOOD_KEY}"
    assert (await run_test(integrations, tenant_id, anthropic)).health_state == "healthy"
    assert provider.seen[-1]["headers"]["x-api-key"] == GOOD_KEY


@pytest.fixture
async def allowlisting(db_urls: dict[str, str], ports: dict[str, int]) -> AsyncIterator[Any]:
    """An integrations server (on the same database) whose operator allowlisted two variables for env://."""
    settings = settings_for("integrations", db_urls["integrations"], ports).model_copy(
        update={"grpc_port": stack.free_port(), "env_credential_allowlist": frozenset(ALLOWLISTED)}
    )
    svc = await start_service("integrations", settings)
    try:
        # A channel of its own: this server lives only inside this test, and its port may be reused after.
        async with grpc.aio.insecure_channel(f"127.0.0.1:{svc.port}") as channel:
            yield integrations_service_pb2_grpc.IntegrationsServiceStub(channel)
    finally:
        await server.stop(svc, 1.0)


ALLOWLISTED = ("AOS_TEST_PROVIDER_KEY", "AOS_TEST_UNSET_KEY")


async def test_env_reference_resolves_only_when_allowlisted(
    allowlisting: Any, integrations: Any, tenant_id: str, provider: FakeProvider
) -> None:
    os.environ["AOS_TEST_PROVIDER_KEY"] = GOOD_KEY
    iid = await register(allowlisting, tenant_id, provider.base(), credential_ref="env://AOS_TEST_PROVIDER_KEY")
    assert (await run_test(allowlisting, tenant_id, iid)).health_state == "healthy"
    missing = await register(allowlisting, tenant_id, provider.base(), credential_ref="env://AOS_TEST_UNSET_KEY")
    assert (await run_test(allowlisting, tenant_id, missing)).health_state == "failing"
    with pytest.raises(grpc.aio.AioRpcError) as caught:  # allowlisted there, not on this (default) server
        await register(integrations, tenant_id, provider.base(), credential_ref="env://AOS_TEST_PROVIDER_KEY")
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    # A reference stored earlier resolves only while its variable is allowlisted.
    seen = len(provider.seen)
    assert (await run_test(integrations, tenant_id, iid)).health_state == "failing"
    assert len(provider.seen) == seen


async def test_env_home_is_refused_from_tenants_even_in_dev(
    integrations: Any, tenant_id: str, provider: FakeProvider, engines: dict[str, AsyncEngine]
) -> None:
    """Issue 11: `credential_ref: env://HOME` sent the process's environment to a tenant-chosen URL."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await register(integrations, tenant_id, provider.base(), credential_ref="env://HOME")
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().startswith("credential_ref:")
    iid = await register(integrations, tenant_id, provider.base())
    with pytest.raises(grpc.aio.AioRpcError) as updated:
        await integrations.UpdateIntegration(
            rpc.UpdateIntegrationRequest(integration_id=iid, credential_ref="env://HOME"),
            metadata=human(tenant_id),
            timeout=5,
        )
    assert updated.value.details().startswith("credential_ref:")
    async with engines["integrations"].connect() as conn:
        ref = await conn.execute(text("SELECT credential_ref FROM integration WHERE id = :i"), {"i": iid})
        assert ref.scalar_one().startswith("encrypted://")


@pytest.mark.parametrize(
    "base_url", ["http://10.0.0.1/v1", "http://169.254.169.254/latest", "http://[fd00::1]/v1", "http://0.0.0.0:1/v1"]
)
async def test_internal_destinations_are_refused_and_nothing_is_recorded(
    integrations: Any, tenant_id: str, engines: dict[str, AsyncEngine], base_url: str
) -> None:
    iid = await register(integrations, tenant_id, base_url)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await run_test(integrations, tenant_id, iid)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details().startswith("config.base_url:")
    async with engines["integrations"].connect() as conn:
        row = (await conn.execute(text("SELECT health_state FROM integration WHERE id = :i"), {"i": iid})).one()
        tested = await conn.execute(
            text("SELECT count(*) FROM event WHERE event_type = 'integration.tested' AND tenant_id = :t"),
            {"t": tenant_id},
        )
    assert row.health_state == "unknown" and tested.scalar_one() == 0


async def test_custom_provider_needs_a_base_url(integrations: Any, tenant_id: str) -> None:
    request = rpc.CreateIntegrationRequest(name="custom", provider_type="custom", credential=GOOD_KEY)
    iid = (await integrations.CreateIntegration(request, metadata=human(tenant_id), timeout=5)).data.id
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await run_test(integrations, tenant_id, iid)
    assert caught.value.details().startswith("config.base_url:")


async def evidence(integrations: Any, tenant_id: str) -> bool:
    request = rpc.GetActivationEvidenceRequest(tenant_id=tenant_id)
    return bool(
        (await integrations.GetActivationEvidence(request, metadata=service(), timeout=5)).has_validated_connector
    )


async def test_evidence_needs_enabled_live_and_latest_test_passed(
    integrations: Any, tenant_id: str, provider: FakeProvider, engines: dict[str, AsyncEngine]
) -> None:
    md = human(tenant_id)
    iid = await register(integrations, tenant_id, provider.base())
    assert not await evidence(integrations, tenant_id)
    await integrations.EnableIntegration(rpc.EnableIntegrationRequest(integration_id=iid), metadata=md)
    assert not await evidence(integrations, tenant_id)  # enabled, never validated
    assert (await run_test(integrations, tenant_id, iid)).health_state == "healthy"
    assert await evidence(integrations, tenant_id)
    async with engines["integrations"].connect() as conn:
        payload = (
            await conn.execute(
                text("SELECT payload FROM event WHERE event_type = 'integration.tested' AND tenant_id = :t"),
                {"t": tenant_id},
            )
        ).scalar_one()
    assert payload["integration_id"] == iid and payload["health_state"] == "healthy" and payload["passed"] is True
    changed = await integrations.UpdateIntegration(
        rpc.UpdateIntegrationRequest(
            integration_id=iid, config=config(base_url=provider.base("boom")), credential=GOOD_KEY
        ),
        metadata=md,
    )
    assert changed.data.health_state == "unknown"  # the endpoint changed: the old result no longer counts
    assert not await evidence(integrations, tenant_id)
    renamed = await integrations.UpdateIntegration(
        rpc.UpdateIntegrationRequest(integration_id=iid, name="renamed"), metadata=md
    )
    assert renamed.data.health_state == "unknown"
    assert (await run_test(integrations, tenant_id, iid)).health_state == "degraded"
    assert not await evidence(integrations, tenant_id)  # the latest validation failed
    await integrations.UpdateIntegration(
        rpc.UpdateIntegrationRequest(integration_id=iid, config=config(base_url=provider.base()), credential=GOOD_KEY),
        metadata=md,
    )
    await run_test(integrations, tenant_id, iid)
    await integrations.DisableIntegration(rpc.DisableIntegrationRequest(integration_id=iid), metadata=md)
    assert not await evidence(integrations, tenant_id)
    await integrations.EnableIntegration(rpc.EnableIntegrationRequest(integration_id=iid), metadata=md)
    assert await evidence(integrations, tenant_id)
    await integrations.UpdateIntegration(rpc.UpdateIntegrationRequest(integration_id=iid, name="again"), metadata=md)
    assert await evidence(integrations, tenant_id)  # a rename does not touch what was validated
    await integrations.DeleteIntegration(rpc.DeleteIntegrationRequest(integration_id=iid), metadata=md)
    assert not await evidence(integrations, tenant_id)


async def test_evidence_is_internal(integrations: Any, tenant_id: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await integrations.GetActivationEvidence(
            rpc.GetActivationEvidenceRequest(tenant_id=tenant_id), metadata=human(tenant_id), timeout=5
        )
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
