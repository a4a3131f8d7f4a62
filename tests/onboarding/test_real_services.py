"""Issue 5's failure guarantees with the four real services (no fakes), on databases and ports of their own so
that stopping one disturbs nothing else: Finalize fails closed while integrations is down and works when it
is back; a key created while onboarding is down advances the tenant once onboarding returns (its cursor)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from sqlalchemy import text

from aos.account.v1 import account_service_pb2 as account_rpc
from aos.account.v1 import account_service_pb2_grpc
from aos.api_keys.v1 import api_keys_service_pb2 as keys_rpc
from aos.api_keys.v1 import api_keys_service_pb2_grpc
from aos.integrations.v1 import integrations_service_pb2 as integrations_rpc
from aos.integrations.v1 import integrations_service_pb2_grpc
from aos.onboarding.v1 import onboarding_service_pb2 as rpc
from aos.onboarding.v1 import onboarding_service_pb2_grpc
from cli import stack
from services.common import db, server
from services.common.settings import async_url
from tests.conftest import eventually, human, settings_for, start_service, tls_channel, unavailable
from tests.integrations.conftest import FakeProvider, provider  # noqa: F401  (fixture)
from tests.integrations.test_test_integration import register
from tests.onboarding.test_predicate import error_info
from tests.onboarding.test_transitions import key

NAMES = ("account", "api_keys", "integrations", "onboarding")


class Stack:
    """The four real services, each restartable on its own port."""

    def __init__(self, urls: dict[str, str]) -> None:
        self.ports = {svc: stack.free_port() for svc in NAMES}
        self.settings = {svc: settings_for(svc, urls[svc], self.ports) for svc in NAMES}
        self.running: dict[str, server.Service] = {}
        self.engine = db.create_engine(async_url(urls["onboarding"]), pool_size=2)
        # Subchannels of their own: the services' channels to the same addresses may be in reconnect backoff.
        local = [("grpc.use_local_subchannel_pool", 1)]
        self.channels = {svc: tls_channel(f"127.0.0.1:{self.ports[svc]}", options=local) for svc in NAMES}
        self.account = account_service_pb2_grpc.AccountServiceStub(self.channels["account"])
        self.keys = api_keys_service_pb2_grpc.ApiKeysServiceStub(self.channels["api_keys"])
        self.integrations = integrations_service_pb2_grpc.IntegrationsServiceStub(self.channels["integrations"])
        self.onboarding = onboarding_service_pb2_grpc.OnboardingServiceStub(self.channels["onboarding"])

    async def start(self, svc: str) -> None:
        self.running[svc] = await start_service(svc, self.settings[svc])

    async def stop(self, svc: str) -> None:
        await server.stop(self.running.pop(svc), 0.5)

    async def state(self, tenant: str) -> int | None:
        async with self.engine.connect() as conn:
            found = await conn.execute(text("SELECT state FROM onboarding_state WHERE tenant_id = :t"), {"t": tenant})
            return found.scalar_one_or_none()

    async def completions(self, tenant: str) -> int:
        async with self.engine.connect() as conn:
            found = await conn.execute(
                text(
                    "SELECT count(*) FROM event WHERE tenant_id = :t AND event_type = 'onboarding.state.transition' "
                    "AND payload->>'to_state' = 'COMPLETE'"
                ),
                {"t": tenant},
            )
            return int(found.scalar_one())

    async def new_tenant(self) -> str:
        owner = human()
        reply = await self.account.CreateTenant(account_rpc.CreateTenantRequest(name="Real"), metadata=owner, timeout=5)
        tenant = str(reply.tenant.tenant_id)
        verified = await self.onboarding.VerifyIdentity(rpc.VerifyIdentityRequest(), metadata=human(tenant), timeout=5)
        assert verified.current_state == "IDENTITY_VERIFIED"
        return tenant

    async def new_key(self, tenant: str) -> Any:
        request = keys_rpc.CreateApiKeyRequest(name="ci")
        return await self.keys.CreateApiKey(request, metadata=human(tenant), timeout=10)


@pytest.fixture
async def real(pg_base: str) -> AsyncIterator[Stack]:
    prefix = f"t{os.getpid()}_real{time.monotonic_ns() % 10**6}_"
    urls = await asyncio.to_thread(stack.prepare_databases, pg_base, prefix, True)
    own = Stack(urls)
    for svc in NAMES:
        await own.start(svc)
    try:
        yield own
    finally:
        for svc in list(own.running):
            await own.stop(svc)
        for channel in own.channels.values():
            await channel.close()
        await own.engine.dispose()


async def test_finalize_fails_closed_while_integrations_is_down_and_works_after(
    real: Stack,
    provider: FakeProvider,  # noqa: F811
) -> None:
    tenant = await eventually(real.new_tenant, within=10)
    owner = human(tenant)
    await real.new_key(tenant)
    await real.account.CreateProject(account_rpc.CreateProjectRequest(name="web"), metadata=owner, timeout=5)
    iid = await register(real.integrations, tenant, provider.base())
    enable = integrations_rpc.EnableIntegrationRequest(integration_id=iid)
    await real.integrations.EnableIntegration(enable, metadata=owner, timeout=5)
    test = integrations_rpc.TestIntegrationRequest(integration_id=iid)
    assert (await real.integrations.TestIntegration(test, metadata=owner, timeout=15)).data.health_state == "healthy"
    assert await real.state(tenant) == 2  # every piece of evidence but the attestation; no promotion below 3

    await real.stop("integrations")
    handshake = rpc.SdkHandshakeRequest(sdk_version="1.2.0", sdk_language="python", client_id="c1")
    reply = await real.onboarding.SdkHandshake(handshake, metadata=key(tenant), timeout=5)
    assert reply.onboarding_state == "SDK_CONNECTED"  # promotion could not ask integrations: no COMPLETE

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await real.onboarding.CompleteOnboarding(rpc.CompleteOnboardingRequest(), metadata=owner, timeout=5)
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
    assert "integrations" in (caught.value.details() or "")
    info = error_info(caught.value)
    assert info["dependency"] == "integrations" and info["connector_validated"] == "unknown"
    assert info["key_ready"] == info["project_ready"] == info["sdk_attested"] == "met"
    assert await real.state(tenant) == 3 and await real.completions(tenant) == 0

    await real.start("integrations")

    def finalize() -> Any:  # UNAVAILABLE only until the channel reconnects
        return real.onboarding.CompleteOnboarding(rpc.CompleteOnboardingRequest(), metadata=owner, timeout=5)

    done = await eventually(finalize, within=10, retry=unavailable)
    assert done.to_state == "COMPLETE"
    assert await real.state(tenant) == 4 and await real.completions(tenant) == 1


async def test_a_key_created_while_onboarding_is_down_advances_the_tenant_after_it_returns(real: Stack) -> None:
    tenant = await eventually(real.new_tenant, within=10)
    await real.stop("onboarding")

    created = await real.new_key(tenant)  # the synchronous notification fails; the event stays in the outbox
    assert created.key.startswith("aos_")
    await asyncio.sleep(0.5)  # nothing may apply it while onboarding is down
    assert await real.state(tenant) == 1

    await real.start("onboarding")

    async def advanced() -> bool:
        return await real.state(tenant) == 2

    await eventually(advanced, within=10, what="onboarding's api_keys consumer applying the key created while down")
    # A channel of its own: the shared subchannel to the old process would still be in reconnect backoff.
    options = [("grpc.use_local_subchannel_pool", 1)]
    async with tls_channel(f"127.0.0.1:{real.ports['onboarding']}", options=options) as fresh:
        status = await onboarding_service_pb2_grpc.OnboardingServiceStub(fresh).GetOnboardingStatus(
            rpc.GetOnboardingStatusRequest(), metadata=human(tenant), timeout=5
        )
    assert status.current_state == "API_KEY_CREATED"
    async with real.engine.connect() as conn:
        transition = await conn.execute(
            text("SELECT trigger FROM onboarding_transition WHERE tenant_id = :t AND to_state = 2"), {"t": tenant}
        )
        assert transition.scalars().all() == ["first_api_key_created"]


async def test_api_keys_reaches_an_account_that_started_after_it(pg_base: str) -> None:
    """`aos up` starts every service at once: api_keys' first calls to account may find it not listening
    yet. Its channel must not then sit in gRPC's default reconnect backoff (1 s, growing to 120 s) and
    answer key creations with 503 after account is up."""
    prefix = f"t{os.getpid()}_late{time.monotonic_ns() % 10**6}_"
    own = Stack(await asyncio.to_thread(stack.prepare_databases, pg_base, prefix, True))
    try:
        await own.start("api_keys")
        await asyncio.sleep(4)  # its account watch fails repeatedly meanwhile, backing the channel off
        await own.start("account")
        owner = human()
        signup = await own.account.CreateTenant(account_rpc.CreateTenantRequest(name="Late"), metadata=owner, timeout=5)
        tenant = str(signup.tenant.tenant_id)
        created = await own.new_key(tenant)
        assert created.key.startswith("aos_")
    finally:
        for svc in list(own.running):
            await own.stop(svc)
        for channel in own.channels.values():
            await channel.close()
        await own.engine.dispose()
