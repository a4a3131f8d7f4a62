"""Onboarding against real PostgreSQL, the real account service and tiny fakes of api_keys and
integrations (process boundaries only, STYLE rule 10) that implement exactly their fixed contracts."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2
from sqlalchemy import text

from aos.api_keys.v1 import api_keys_service_pb2 as keys_rpc
from aos.api_keys.v1 import api_keys_service_pb2_grpc
from aos.events.v1 import event_pb2, events_service_pb2, events_service_pb2_grpc
from aos.integrations.v1 import integrations_service_pb2 as integrations_rpc
from aos.integrations.v1 import integrations_service_pb2_grpc
from aos.onboarding.v1 import onboarding_service_pb2_grpc
from cli import devauth, stack
from services.common import db, server
from services.common.settings import async_url
from services.onboarding.settings import Settings
from tests.conftest import GATE_CACHE_SECONDS, Channels, Gateway, envoy, start_service


class FakeEventLog(events_service_pb2_grpc.EventLogServiceServicer):
    """An in-memory outbox: the page token is the index after the last event."""

    def __init__(self, owner: str) -> None:
        self.owner, self.events, self._grew = owner, [], asyncio.Event()
        self.events: list[event_pb2.Event] = []

    def emit(self, event_type: str, tenant_id: str, **payload: str) -> None:
        body = struct_pb2.Struct()
        body.update(payload)
        event = event_pb2.Event(
            event_id=str(uuid.uuid4()),
            event_type=event_type,
            tenant_id=tenant_id,
            project_id="__system__",
            actor_type="system",
            actor_id="fake",
            decision_owner=self.owner,
            sequence_no=len(self.events) + 1,
            schema_version="1.0.0",
            payload=body,
        )
        event.occurred_at.GetCurrentTime()
        self.events.append(event)
        self._grew.set()

    async def ListEvents(self, request: Any, context: Any) -> events_service_pb2.ListEventsResponse:
        start = int(request.page_token or 0)
        page = self.events[start : start + (request.page_size or 100)]
        return events_service_pb2.ListEventsResponse(events=page, next_page_token=str(start + len(page)))

    async def WatchEvents(self, request: Any, context: Any) -> AsyncIterator[events_service_pb2.WatchEventsResponse]:
        position = int(request.page_token or 0)
        while True:
            while position < len(self.events):
                position += 1
                yield events_service_pb2.WatchEventsResponse(event=self.events[position - 1], page_token=str(position))
            self._grew.clear()
            await self._grew.wait()


class FakeApiKeys(api_keys_service_pb2_grpc.ApiKeysServiceServicer):
    def __init__(self) -> None:
        self.keys: dict[str, keys_rpc.VerifyApiKeyResponse] = {}
        self.valid_tenants: set[str] = set()
        self.delay = 0.0
        self.verify_calls = 0

    def issue(self, tenant_id: str, scopes: tuple[str, ...] = ("run:*", "read:*")) -> tuple[str, str]:
        """A VALID key of the tenant: (secret, key_id)."""
        secret, key_id = f"aos_{uuid.uuid4().hex}{uuid.uuid4().hex[:11]}", str(uuid.uuid4())
        self.keys[secret] = keys_rpc.VerifyApiKeyResponse(
            code=keys_rpc.VERIFY_CODE_VALID, key_id=key_id, tenant_id=tenant_id, scopes=scopes, rate_limit_rpm=1000
        )
        self.valid_tenants.add(tenant_id)
        return secret, key_id

    def revoke(self, secret: str) -> None:
        self.keys[secret].code = keys_rpc.VERIFY_CODE_REVOKED

    async def VerifyApiKey(self, request: Any, context: Any) -> keys_rpc.VerifyApiKeyResponse:
        self.verify_calls += 1
        await asyncio.sleep(self.delay)
        found = self.keys.get(request.secret)
        return found if found is not None else keys_rpc.VerifyApiKeyResponse(code=keys_rpc.VERIFY_CODE_NOT_FOUND)

    async def GetActivationEvidence(self, request: Any, context: Any) -> keys_rpc.GetActivationEvidenceResponse:
        await asyncio.sleep(self.delay)
        return keys_rpc.GetActivationEvidenceResponse(has_valid_key=request.tenant_id in self.valid_tenants)


class FakeIntegrations(integrations_service_pb2_grpc.IntegrationsServiceServicer):
    def __init__(self) -> None:
        self.validated: set[str] = set()
        self.delay = 0.0

    async def GetActivationEvidence(self, request: Any, context: Any) -> integrations_rpc.GetActivationEvidenceResponse:
        await asyncio.sleep(self.delay)
        return integrations_rpc.GetActivationEvidenceResponse(
            has_validated_connector=request.tenant_id in self.validated
        )


class FakePeer:
    """A fake service on a fixed port: `stop()` makes it down, `start()` brings it back."""

    def __init__(self, name: str, servicer: Any, add: Any) -> None:
        self.name, self.servicer, self._add = name, servicer, add
        self.log = FakeEventLog(name)
        self.port = stack.free_port()
        self._server: grpc.aio.Server | None = None

    async def start(self) -> None:
        self._server = grpc.aio.server()
        self._add(self.servicer, self._server)
        events_service_pb2_grpc.add_EventLogServiceServicer_to_server(self.log, self._server)
        self._server.add_insecure_port(f"127.0.0.1:{self.port}")
        await self._server.start()

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(0)
            self._server = None


@pytest.fixture(scope="session")
async def api_keys() -> AsyncIterator[FakePeer]:
    peer = FakePeer("api_keys", FakeApiKeys(), api_keys_service_pb2_grpc.add_ApiKeysServiceServicer_to_server)
    await peer.start()
    yield peer
    await peer.stop()


@pytest.fixture(scope="session")
async def integrations() -> AsyncIterator[FakePeer]:
    peer = FakePeer(
        "integrations", FakeIntegrations(), integrations_service_pb2_grpc.add_IntegrationsServiceServicer_to_server
    )
    await peer.start()
    yield peer
    await peer.stop()


@pytest.fixture(scope="session")
def onb_db(pg_base: str) -> str:
    """A database of its own for the onboarding instance wired to the fakes (its cursors are theirs)."""
    return stack.prepare_databases(pg_base, f"t{os.getpid()}_iso_", fresh=True)["onboarding"]


class Onboarding:
    """The onboarding server under test; `stop()` and `start()` restart it on the same port. `account_events`
    reads the EventLog of the account service it consumes."""

    def __init__(self, settings: Settings, account_events: events_service_pb2_grpc.EventLogServiceStub) -> None:
        self.settings, self.account_events = settings, account_events
        self.service: server.Service | None = None
        self.engine = db.create_engine(async_url(settings.database_url.get_secret_value()), pool_size=5)

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.settings.grpc_port}"

    async def start(self) -> None:
        self.service = await start_service("onboarding", self.settings)

    async def stop(self) -> None:
        if self.service is not None:
            await server.stop(self.service, 0.5)
            self.service = None


@pytest.fixture(scope="session")
async def onb(
    onb_db: str, running: dict[str, server.Service], channels: Channels, api_keys: FakePeer, integrations: FakePeer
) -> AsyncIterator[Onboarding]:
    settings = Settings(
        database_url=onb_db,  # type: ignore[arg-type]
        grpc_port=stack.free_port(),
        account_addr=f"127.0.0.1:{running['account'].port}",
        api_keys_addr=f"127.0.0.1:{api_keys.port}",
        integrations_addr=f"127.0.0.1:{integrations.port}",
        peer_timeout_seconds=1.0,
        cache_seconds=GATE_CACHE_SECONDS,
        consumer_backoff_seconds=0.1,
        consumer_max_backoff_seconds=0.5,
    )
    instance = Onboarding(settings, channels.stub(events_service_pb2_grpc.EventLogServiceStub, running["account"]))
    await instance.start()
    yield instance
    await instance.stop()
    await instance.engine.dispose()


@pytest.fixture(scope="session")
async def stub(channels: Channels, onb: Onboarding) -> onboarding_service_pb2_grpc.OnboardingServiceStub:
    return channels.stub(onboarding_service_pb2_grpc.OnboardingServiceStub, onb.addr)


@pytest.fixture
def keys(api_keys: FakePeer) -> FakeApiKeys:
    servicer: FakeApiKeys = api_keys.servicer
    servicer.delay = 0.0
    return servicer


@pytest.fixture
def connectors(integrations: FakePeer) -> FakeIntegrations:
    servicer: FakeIntegrations = integrations.servicer
    servicer.delay = 0.0
    return servicer


@pytest.fixture(scope="session")
def onb_gateway(
    onb: Onboarding, running: dict[str, server.Service], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    """Real Envoy whose onboarding cluster (REST routes and the ext_authz gate) is the instance under test."""
    data = tmp_path_factory.mktemp("onb-gateway")
    port = stack.free_port()
    upstreams = {name: svc.port for name, svc in running.items()} | {"onboarding": onb.settings.grpc_port}
    cfg = stack.envoy_config(data, upstreams, port, devauth.ensure_keys(data))
    with envoy(cfg, port):
        yield Gateway(f"http://127.0.0.1:{port}", data)


async def state_of(onb: Onboarding, tenant: str) -> int | None:
    async with onb.engine.connect() as conn:
        row = await conn.execute(text("SELECT state FROM onboarding_state WHERE tenant_id = :t"), {"t": tenant})
        return row.scalar_one_or_none()


async def onboarding_events(onb: Onboarding, tenant: str, event_type: str = "") -> list[Any]:
    async with onb.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT * FROM event WHERE tenant_id = :t AND (:type = '' OR event_type = :type) ORDER BY sequence_no"
            ),
            {"t": tenant, "type": event_type},
        )
        return list(rows.mappings().all())


async def set_state(onb: Onboarding, tenant: str, state: int) -> None:
    """Test setup only: puts a tenant at a state without going through the ladder."""
    async with onb.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO onboarding_state (tenant_id, state, tenant_created_at) VALUES (:t, :s, now()) "
                "ON CONFLICT (tenant_id) DO UPDATE SET state = :s"
            ),
            {"t": tenant, "s": state},
        )
