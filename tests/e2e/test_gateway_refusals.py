"""Refusals at the edge, through real Envoy: google.rpc.Status JSON on canonical /v1 paths and the legacy body
elsewhere (issue 14, SPEC 0.14); and the production veil (AOS_VEIL, SPEC 2 and scenario 16), under which a call
without valid credentials cannot tell a protected route from a path that does not exist."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from cli import devauth, stack
from services.common import server
from tests.conftest import Gateway, envoy, pki, settings_for, start_service
from tests.e2e.test_gateway_edge import signup

pytestmark = pytest.mark.e2e
ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"


def status_of(reply: httpx.Response) -> tuple[int, str, str]:
    """(gRPC code, ErrorInfo reason, domain) of a google.rpc.Status JSON body; fails on any other shape."""
    body = reply.json()
    assert set(body) == {"code", "message", "details"}, reply.text
    assert isinstance(body["code"], int) and isinstance(body["message"], str), reply.text
    [info] = [d for d in body["details"] if d["@type"] == ERROR_INFO]
    return body["code"], info["reason"], info["domain"]


def legacy(reply: httpx.Response) -> str:
    body = reply.json()
    assert "error" in body and "code" not in body and "details" not in body, reply.text
    return str(body["error"])


async def test_canonical_paths_refuse_with_google_rpc_status(http: httpx.AsyncClient, gateway: Gateway) -> None:
    tenant, _, owner = await signup(http, gateway)
    founder = gateway.token("founder-1", operator=True)  # no tenant, so no state gate: past the gate to the router
    cases: dict[str, tuple[httpx.Response, int, int, str]] = {
        "missing_auth": (await http.get("/v1/projects"), 401, 16, "MISSING_AUTH"),
        "api_key_invalid": (
            await http.get("/v1/projects", headers={"x-aos-key": "aos_" + "x" * 43}),
            401,
            16,
            "API_KEY_INVALID",
        ),
        "mixed_auth": (await http.get("/v1/projects", headers=owner | {"x-aos-key": "aos_x"}), 400, 3, "MIXED_AUTH"),
        "invalid_token": (
            await http.get("/v1/projects", headers={"authorization": "Bearer not.a.jwt"}),
            401,
            16,
            "INVALID_TOKEN",
        ),
        "expired": (
            await http.get("/v1/projects", headers=gateway.token("u", tenant=tenant, ttl=-120)),
            401,
            16,
            "INVALID_TOKEN",
        ),
        "founder only": (await http.post(f"/v1/tenants/{tenant}:suspend", json={}, headers=owner), 403, 7, "FORBIDDEN"),
        "state": (await http.get("/v1/runs", headers=owner), 403, 9, "ONBOARDING_STATE_VIOLATION"),
        "unknown /v1 path": (await http.get("/v1/no/such/thing", headers=founder), 404, 5, "NOT_FOUND"),
        "unknown query parameter": (await http.get("/v1/projects?bogus=1", headers=owner), 400, 3, "INVALID_REQUEST"),
    }
    for name, (reply, http_status, code, reason) in cases.items():
        assert reply.status_code == http_status, (name, reply.status_code, reply.text)
        assert status_of(reply) == (code, reason, "aos.gateway"), (name, reply.text)
    violation = cases["state"][0].json()["details"][0]["metadata"]
    assert violation == {"currentState": "IDENTITY_VERIFIED", "requiredState": "COMPLETE", "endpoint": "/v1/runs"}
    assert "COMPLETE" in cases["state"][0].json()["message"]
    assert "Jwt" in cases["expired"][0].json()["message"]  # Envoy's reason, relayed by the gate


async def test_legacy_paths_keep_the_legacy_body(http: httpx.AsyncClient, gateway: Gateway) -> None:
    _, _, owner = await signup(http, gateway)
    assert legacy(await http.get("/api-keys")) == "missing_auth"
    assert (
        legacy(await http.get("/accounts/projects", headers={"authorization": "Bearer not.a.jwt"})) == "invalid_token"
    )
    assert legacy(await http.get("/runs", headers=owner)) == "onboarding_state_violation"
    unknown = await http.get("/no/such/path", headers=owner)
    assert unknown.status_code == 403 and legacy(unknown) == "onboarding_state_violation"  # SPEC 3.6: COMPLETE


async def test_veil_off_answers_401_missing_auth(http: httpx.AsyncClient) -> None:
    reply = await http.get("/api-keys")
    assert reply.status_code == 401 and reply.json()["error"] == "missing_auth"


@pytest.fixture(scope="module")
def veil_db(pg_base: str) -> str:
    return stack.prepare_databases(pg_base, f"t{os.getpid()}_veil_", fresh=True)["onboarding"]


@pytest.fixture(scope="module")
async def veiled_onboarding(
    veil_db: str, ports: dict[str, int], running: dict[str, server.Service]
) -> AsyncIterator[server.Service]:
    """A second onboarding, with AOS_VEIL on, a database of its own and the running services as its peers."""
    url = veil_db
    own = ports | {"onboarding": stack.free_port()}
    settings = settings_for("onboarding", url, own).model_copy(update={"veil": True})
    service = await start_service("onboarding", settings)
    yield service
    await server.stop(service, 0.5)


@pytest.fixture(scope="module")
def veiled(
    veiled_onboarding: server.Service, running: dict[str, server.Service], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    data = tmp_path_factory.mktemp("veiled-gateway")
    port = stack.free_port()
    upstreams = {name: svc.port for name, svc in running.items()} | {"onboarding": veiled_onboarding.port}
    cfg = stack.envoy_config(data, upstreams, port, devauth.ensure_keys(data), pki())
    with envoy(cfg, port):
        yield Gateway(f"http://127.0.0.1:{port}", data)


def _same(a: httpx.Response, b: httpx.Response) -> None:
    assert (a.status_code, a.content) == (b.status_code, b.content), (a.text, b.text)
    varying = {"date", "x-request-id", "content-length"}
    assert {k: v for k, v in a.headers.items() if k not in varying} == {
        k: v for k, v in b.headers.items() if k not in varying
    }


async def test_veil_on_an_unauthenticated_call_looks_like_an_unknown_path(veiled: Gateway) -> None:
    async with httpx.AsyncClient(base_url=veiled.url, timeout=10) as client:
        nothing = await client.get("/no/such/path")
        assert nothing.status_code == 404 and nothing.json()["error"] == "not_found"
        for path in ("/api-keys", "/tenant/api-keys", "/onboarding/status", "/fdr/onboarding/stalled"):
            _same(await client.get(path), nothing)
            _same(await client.get(path, headers={"x-aos-key": "aos_" + "x" * 43}), nothing)
            _same(await client.get(path, headers={"authorization": "Bearer not.a.jwt"}), nothing)
            _same(await client.get(path, headers=veiled.token("u", ttl=-120)), nothing)
        v1_nothing = await client.get("/v1/no/such/path")
        assert v1_nothing.status_code == 404 and status_of(v1_nothing)[:2] == (5, "NOT_FOUND")
        _same(await client.get("/v1/projects"), v1_nothing)
        _same(await client.get("/v1/projects", headers={"authorization": "Bearer not.a.jwt"}), v1_nothing)
        # The infra paths stay open, and a caller who authenticates sees the routes as they are.
        assert (await client.get("/openapi.json")).status_code == 200


async def test_veil_on_authenticated_callers_are_answered_as_usual(veiled: Gateway) -> None:
    async with httpx.AsyncClient(base_url=veiled.url, timeout=10) as client:
        _, _, owner = await signup(client, veiled)
        status = await client.get("/onboarding/status", headers=owner)
        assert status.status_code == 200, status.text
        refused = await client.get("/runs", headers=owner)
        assert refused.status_code == 403 and refused.json()["error"] == "onboarding_state_violation"
        other: Any = uuid.uuid4()
        assert (await client.get(f"/v1/projects/{other}", headers=owner)).status_code == 404
