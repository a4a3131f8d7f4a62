"""Every service port speaks only mutual TLS with certificates of our CA, and the shared interceptor decides
who may call by the peer certificate's identity (issue 11: a shell next to the services forged metadata on
direct calls; now it cannot even connect, and a stolen service certificate buys only that service's calls)."""

from __future__ import annotations

import asyncio
import importlib
import os
import shutil
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from envoy.service.auth.v3 import external_auth_pb2
from google.protobuf.message import Message

from aos.account.v1 import account_pb2, account_service_pb2_grpc
from aos.account.v1 import account_service_pb2 as account_rpc
from aos.api_keys.v1 import api_keys_service_pb2 as keys_rpc
from aos.api_keys.v1 import api_keys_service_pb2_grpc
from aos.events.v1 import events_service_pb2, events_service_pb2_grpc
from aos.integrations.v1 import integrations_service_pb2 as integrations_rpc
from aos.monitoring.v1 import monitoring_service_pb2 as monitoring_rpc
from aos.monitoring.v1 import monitoring_service_pb2_grpc
from aos.onboarding.v1 import onboarding_service_pb2 as onboarding_rpc
from cli import devtls, stack
from services.common import db, server, tls
from services.common.channels import peer as peer_channel
from tests.conftest import (
    Channels,
    eventually,
    health_status,
    human,
    identity_of,
    operator,
    pki,
    service,
    settings_for,
    start_service,
    tls_channel,
)

SERVICES = ("account", "api_keys", "integrations", "monitoring", "onboarding")
# One internal RPC of each service, a request for it, a service its gate rule names as caller, and one it
# does not name (onboarding's internal RPCs are for all three others: only itself is left out).
INTERNAL: dict[str, tuple[str, Message, str, str]] = {
    "account": (
        "/aos.account.v1.AccountService/GetActivationEvidence",
        account_rpc.GetActivationEvidenceRequest(tenant_id="t"),
        "onboarding",
        "integrations",
    ),
    "api_keys": (
        "/aos.api_keys.v1.ApiKeysService/VerifyApiKey",
        keys_rpc.VerifyApiKeyRequest(secret="x"),
        "onboarding",
        "account",
    ),
    "integrations": (
        "/aos.integrations.v1.IntegrationsService/GetActivationEvidence",
        integrations_rpc.GetActivationEvidenceRequest(tenant_id="t"),
        "onboarding",
        "api_keys",
    ),
    "monitoring": (
        "/aos.monitoring.v1.TelemetryService/GetIntegrationUsage",
        monitoring_rpc.GetIntegrationUsageRequest(tenant_id="t", integration_id="i"),
        "integrations",
        "onboarding",
    ),
    "onboarding": (
        "/aos.onboarding.v1.OnboardingService/GetOnboardingState",
        onboarding_rpc.GetOnboardingStateRequest(tenant_id="t"),
        "api_keys",
        "onboarding",
    ),
}


def _address(running: dict[str, server.Service], svc: str) -> str:
    return f"127.0.0.1:{running[svc].port}"


async def _refused_at_the_handshake(channel: grpc.aio.Channel) -> None:
    async with channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await health_status(channel)
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("svc", SERVICES)
async def test_a_caller_without_a_certificate_of_our_ca_cannot_connect(
    running: dict[str, server.Service], svc: str, tmp_path: Path
) -> None:
    """Plaintext; TLS without a client certificate; a certificate naming the gateway from another CA."""
    address, ca = _address(running, svc), Path(identity_of(svc).ca_file).read_bytes()
    await _refused_at_the_handshake(grpc.aio.insecure_channel(address))
    await _refused_at_the_handshake(grpc.aio.secure_channel(address, grpc.ssl_channel_credentials(ca)))
    forged = devtls.identity(devtls.ensure(tmp_path, [tls.GATEWAY]), tls.GATEWAY)  # same name, its own CA
    key, cert = Path(forged.key_file).read_bytes(), Path(forged.cert_file).read_bytes()
    await _refused_at_the_handshake(grpc.aio.secure_channel(address, grpc.ssl_channel_credentials(ca, key, cert)))
    async with tls_channel(address) as channel:  # and the gateway's real certificate gets in
        assert await health_status(channel) == 1


async def _call(channels: Channels, address: str, identity: str, method: str, request: Message, md: Any) -> Any:
    call = channels.channel(address, identity).unary_unary(method, request_serializer=lambda m: m.SerializeToString())
    return await call(request, metadata=md, timeout=5)


async def _denied(channels: Channels, address: str, identity: str, method: str, request: Message, md: Any) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _call(channels, address, identity, method, request, md)
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED, caught.value
    return caught.value.details() or ""


@pytest.mark.parametrize("svc", SERVICES)
async def test_internal_rpcs_answer_only_the_services_their_rule_names(
    channels: Channels, running: dict[str, server.Service], svc: str
) -> None:
    address, (method, request, caller, other) = _address(running, svc), INTERNAL[svc]
    await _call(channels, address, caller, method, request, service(caller))  # the named caller gets an answer
    # The gateway's certificate: as a customer, as itself, or claiming to be the caller.
    assert "human callers" in await _denied(channels, address, tls.GATEWAY, method, request, human("t"))
    assert "may not call" in await _denied(channels, address, tls.GATEWAY, method, request, service(tls.GATEWAY))
    assert "certificate" in await _denied(channels, address, tls.GATEWAY, method, request, service(caller))
    # Service A's certificate claiming to be service B (the named caller), and A as itself.
    assert "certificate" in await _denied(channels, address, other, method, request, service(caller))
    assert "may not call" in await _denied(channels, address, other, method, request, service(other))


async def test_a_stolen_service_certificate_cannot_act_as_a_customer_or_operator(
    channels: Channels, running: dict[str, server.Service], account: Any, tenant: str
) -> None:
    """The issue's direct calls, made with integrations' certificate and key (a compromised service): forged
    human metadata for another tenant with role owner, a forged operator, a forged service. All refused before
    any handler runs; the victim's tenant, projects and keys are as they were."""
    victim_keys = channels.stub(api_keys_service_pb2_grpc.ApiKeysServiceStub, running["api_keys"])
    made = await victim_keys.CreateApiKey(
        keys_rpc.CreateApiKeyRequest(name="victim"), metadata=human(tenant), timeout=10
    )
    thief = "integrations"
    acc = channels.stub(account_service_pb2_grpc.AccountServiceStub, running["account"], thief)
    keys = channels.stub(api_keys_service_pb2_grpc.ApiKeysServiceStub, running["api_keys"], thief)
    events = channels.stub(events_service_pb2_grpc.EventLogServiceStub, running["api_keys"], thief)
    # monitoring names integrations as the caller of GetIntegrationUsage: its certificate still buys no customer
    # RPC there (runs, incidents), nor another tenant's events.
    activity = channels.stub(monitoring_service_pb2_grpc.ActivityServiceStub, running["monitoring"], thief)
    incidents = channels.stub(monitoring_service_pb2_grpc.IncidentsServiceStub, running["monitoring"], thief)
    run_events = channels.stub(events_service_pb2_grpc.EventLogServiceStub, running["monitoring"], thief)
    forged = human(tenant, user="mallory", role="owner")
    attempts = [
        keys.ListApiKeys(keys_rpc.ListApiKeysRequest(), metadata=forged, timeout=5),
        acc.ListMembers(account_rpc.ListMembersRequest(), metadata=forged, timeout=5),
        acc.CreateProject(account_rpc.CreateProjectRequest(name="pwned"), metadata=forged, timeout=5),
        keys.CreateApiKey(keys_rpc.CreateApiKeyRequest(name="pwned", permissions=["*"]), metadata=forged, timeout=5),
        acc.SuspendTenant(
            account_rpc.SuspendTenantRequest(tenant_id=tenant, reason="x"), metadata=operator(), timeout=5
        ),
        keys.VerifyApiKey(keys_rpc.VerifyApiKeyRequest(secret=made.key), metadata=service("onboarding"), timeout=5),
        keys.VerifyApiKey(keys_rpc.VerifyApiKeyRequest(secret=made.key), metadata=service(thief), timeout=5),
        events.ListEvents(events_service_pb2.ListEventsRequest(tenant_id=tenant), metadata=service(thief), timeout=5),
        activity.CreateRun(monitoring_rpc.CreateRunRequest(agent_id="a", goal="pwned"), metadata=forged, timeout=5),
        activity.ListLiveRuns(monitoring_rpc.ListLiveRunsRequest(), metadata=forged, timeout=5),
        incidents.ListActiveIncidents(monitoring_rpc.ListActiveIncidentsRequest(), metadata=forged, timeout=5),
        run_events.ListEvents(
            events_service_pb2.ListEventsRequest(tenant_id=tenant), metadata=service(thief), timeout=5
        ),
    ]
    for attempt in attempts:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await attempt
        assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED, caught.value

    owner = human(tenant)
    got = await account.GetTenant(account_rpc.GetTenantRequest(tenant_id=tenant), metadata=owner, timeout=5)
    assert got.tenant.status == account_pb2.TENANT_STATUS_ACTIVE
    assert not (await account.ListProjects(account_rpc.ListProjectsRequest(), metadata=owner, timeout=5)).items
    listed = await victim_keys.ListApiKeys(keys_rpc.ListApiKeysRequest(), metadata=owner, timeout=5)
    assert [k.key_id for k in listed.items] == [made.id]
    mine = channels.stub(monitoring_service_pb2_grpc.ActivityServiceStub, running["monitoring"])
    assert (await mine.ListLiveRuns(monitoring_rpc.ListLiveRunsRequest(), metadata=owner, timeout=5)).total == 0


def _served_serial(address: str, name: str) -> int:
    """The serial of the certificate a server presents to a new connection (a TLS handshake of our own,
    with the gateway's client certificate, checking the server's name as the services do)."""
    me = identity_of(tls.GATEWAY)
    context = ssl.create_default_context(cafile=me.ca_file)
    context.load_cert_chain(me.cert_file, me.key_file)
    context.set_alpn_protocols(["h2"])
    host, port = address.rsplit(":", 1)
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=tls.server_name(name)) as conn,
    ):
        der = conn.getpeercert(binary_form=True)
    assert der is not None
    return int(x509.load_der_x509_certificate(der).serial_number)


def _own_certificate(tmp_path: Path, name: str) -> tuple[Path, tls.Identity]:
    """A certificate for `name` from the session's CA in a folder of the test's own, free to be renewed."""
    own = tmp_path / "tls"
    own.mkdir()
    for file in ("ca.crt", "ca.key"):
        shutil.copy(pki() / file, own / file)
    return own, devtls.issue(own, name)


def _file_serial(path: str) -> int:
    return int(x509.load_pem_x509_certificate(Path(path).read_bytes()).serial_number)


async def test_a_rewritten_certificate_is_served_to_new_connections_without_a_restart(
    db_urls: dict[str, str], tmp_path: Path
) -> None:
    """An account server whose certificate files (signed by the session's CA) are renewed in place: new
    connections get the new key pair, the connection already open keeps working, nothing restarts."""
    own, me = _own_certificate(tmp_path, "account")
    settings = settings_for("account", db_urls["account"], {"account": stack.free_port()}).model_copy(
        update={"tls_cert_file": me.cert_file, "tls_key_file": me.key_file, "tls_ca_file": me.ca_file}
    )
    svc = await start_service("account", settings)
    address = f"127.0.0.1:{svc.port}"
    try:
        async with tls_channel(address) as before:
            assert await health_status(before) == 1
            first = await asyncio.to_thread(_served_serial, address, "account")
            assert first == _file_serial(me.cert_file)
            devtls.issue(own, "account")  # a new key pair and certificate over the same files
            renewed = _file_serial(me.cert_file)
            assert renewed != first
            assert await asyncio.to_thread(_served_serial, address, "account") == renewed
            async with tls_channel(address) as after:
                assert await health_status(after) == 1
            assert await health_status(before) == 1
    finally:
        await server.stop(svc, 1.0)


async def test_the_kubernetes_probe_asks_health_over_mutual_tls(running: dict[str, server.Service]) -> None:
    """`python -m services.common.probe <svc>` (the pods' probes) with the service's own environment."""

    def probe(port: int) -> subprocess.CompletedProcess[str]:
        env = os.environ | devtls.env(pki(), "account") | {"ACCOUNT_GRPC_PORT": str(port)}
        command = [sys.executable, "-m", "services.common.probe", "account"]
        return subprocess.run(command, cwd=stack.ROOT, env=env, capture_output=True, text=True, timeout=30)

    serving = await asyncio.to_thread(probe, running["account"].port)
    assert (serving.returncode, serving.stdout.strip()) == (0, "SERVING"), serving.stderr
    down = await asyncio.to_thread(probe, stack.free_port())
    assert (down.returncode, down.stdout.strip()) == (1, "UNAVAILABLE")


async def test_a_peer_channel_presents_a_renewed_client_certificate_without_a_restart(tmp_path: Path) -> None:
    """A service's calls to a peer (common.channels) move to its renewed certificate by themselves."""
    own, me = _own_certificate(tmp_path, "api_keys")

    async def presented(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        (pem,) = context.auth_context()["x509_pem_cert"]
        return str(x509.load_pem_x509_certificate(pem).serial_number).encode()

    peer = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(presented)
    peer.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("aos.test.Who", {"Call": handler})])
    port = peer.add_secure_port("127.0.0.1:0", identity_of("account").server_credentials())
    await peer.start()
    channel = peer_channel(f"127.0.0.1:{port}", me, "account")
    try:
        call = channel.unary_unary("/aos.test.Who/Call")
        assert int(await call(b"", timeout=5)) == _file_serial(me.cert_file)
        devtls.issue(own, "api_keys")
        renewed = _file_serial(me.cert_file)
        await eventually(lambda: call(b"", timeout=5), until=lambda got: int(got) == renewed, within=5)
    finally:
        await channel.close()
        await peer.stop(None)


@pytest.mark.parametrize("svc", SERVICES)
async def test_a_service_without_its_certificate_refuses_to_start(svc: str, db_urls: dict[str, str]) -> None:
    """No plaintext fallback: without its TLS settings a service's composition root refuses, naming them."""
    settings = importlib.import_module(f"services.{svc}.settings").Settings(database_url=db_urls[svc])
    engine = db.create_engine(settings.database_url.get_secret_value())
    prefix = svc.upper()
    try:
        with pytest.raises(ValueError, match=f"{prefix}_TLS_CERT_FILE, {prefix}_TLS_KEY_FILE, {prefix}_TLS_CA_FILE"):
            importlib.import_module(f"services.{svc}.server").build(settings, engine)
    finally:
        await engine.dispose()


async def test_only_the_gateway_may_ask_the_edge_gate(channels: Channels, running: dict[str, server.Service]) -> None:
    """Envoy's ext_authz Check (served by onboarding, no gate rule): the gateway's alone; a service holding a
    valid certificate cannot use it as an oracle for keys or tokens."""
    address, check = _address(running, "onboarding"), "/envoy.service.auth.v3.Authorization/Check"
    request = external_auth_pb2.CheckRequest()
    answered = await _call(channels, address, tls.GATEWAY, check, request, ())
    assert external_auth_pb2.CheckResponse.FromString(answered).status.code != 0  # no credential: denied
    assert "only the gateway" in await _denied(channels, address, "api_keys", check, request, service("api_keys"))
