"""The edge through real Envoy and every real service: where tokens are read from and which ones are refused,
operators by the provider's group, tenants and roles from account's members table (never the token), and bad
input answered with the right 4xx (413, 431, 415), never 429 or 5xx; x-request-id only in a strict form."""

from __future__ import annotations

import asyncio
import re
import time
import uuid

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from cli import devauth
from tests.conftest import Gateway, eventually

pytestmark = pytest.mark.e2e


async def signup(http: httpx.AsyncClient, gateway: Gateway, org: str = "") -> tuple[str, str, dict[str, str]]:
    """A new tenant: (tenant id, owner, the owner's auth headers). `org`: the owner's organisation at the
    identity provider (none: dev tokens then name the tenant id)."""
    user = f"owner-{uuid.uuid4().hex[:8]}"
    first = signed(gateway, devauth.claims(user=user, email=f"{user}@example.com", org=org or None))
    reply = await http.post("/v1/tenants", json={"name": f"Edge {user}"}, headers=first)
    assert reply.status_code == 201, reply.text
    tenant = reply.json()["tenant"]["tenant_id"]
    return tenant, user, gateway.token(user, tenant=org or tenant)


def reason(reply: httpx.Response) -> str:
    """The ErrorInfo reason of a /v1 path's refusal (google.rpc.Status JSON, issue 14)."""
    return str(reply.json()["details"][0]["reason"])


def signed(gateway: Gateway, claims: dict[str, object]) -> dict[str, str]:
    return {"authorization": f"Bearer {devauth.sign(gateway.data_dir, claims)}"}


async def test_tokens_are_read_from_the_authorization_header_only(http: httpx.AsyncClient, gateway: Gateway) -> None:
    _, _, auth = await signup(http, gateway)
    token = auth["authorization"].removeprefix("Bearer ")
    known = await http.get("/no/such/thing", headers=auth)  # the gate knows the caller and their tenant's state
    assert known.status_code == 403 and known.json()["error"] == "onboarding_state_violation"
    in_url = await http.get("/no/such/thing", params={"access_token": token})
    assert in_url.status_code == 401 and in_url.json()["error"] == "missing_auth"
    assert (await http.get("/v1/projects", params={"access_token": token})).status_code in (400, 401)


async def test_exp_is_required_and_lifetime_and_iat_are_bounded(http: httpx.AsyncClient, gateway: Gateway) -> None:
    tenant, user, _ = await signup(http, gateway)
    now = int(time.time())

    def token(**times: int | None) -> dict[str, str]:
        made = devauth.claims(user=user, email=f"{user}@example.com", org=tenant, now=now)
        return signed(gateway, {k: v for k, v in (made | times).items() if v is not None})

    cases = {
        "no exp": token(exp=None),
        "lifetime 25 h": token(exp=now + 25 * 3600),
        "25 h life, 22 h left": token(iat=now - 3 * 3600, exp=now + 22 * 3600),
        "issued in a year": token(iat=now + 365 * 86400, exp=now + 365 * 86400 + 600),
        "issued in 2 min": token(iat=now + 120, exp=now + 600),
    }
    for name, headers in cases.items():
        reply = await http.get("/v1/projects", headers=headers)
        assert reply.status_code == 401, (name, reply.text)
        assert reason(reply) == "INVALID_TOKEN", name
    for name, headers in {"iat 30 s ahead": token(iat=now + 30), "24 h": token(exp=now + 24 * 3600)}.items():
        assert (await http.get("/v1/projects", headers=headers)).status_code == 200, name


async def test_operators_are_the_providers_group_not_our_own_claim(http: httpx.AsyncClient, gateway: Gateway) -> None:
    tenant, _, _ = await signup(http, gateway)
    claimed = devauth.claims(user="mallory", email="m@example.com") | {"aos_kind": "operator"}
    refused = await http.get(f"/v1/tenants/{tenant}", headers=signed(gateway, claimed))
    assert refused.status_code == 403, refused.text  # a human without a tenant
    founder = await http.get(f"/v1/tenants/{tenant}", headers=gateway.token("founder-1", operator=True))
    assert founder.status_code == 200 and founder.json()["tenant"]["tenant_id"] == tenant


async def test_the_members_table_decides_tenant_and_role_never_the_token(
    http: httpx.AsyncClient, gateway: Gateway
) -> None:
    tenant, _, owner = await signup(http, gateway)
    # A stranger naming the tenant's organisation, with every claim an attacker would add, is in no tenant.
    forged = devauth.claims(user="mallory", email="m@example.com", org=tenant) | {"role": "owner", "tenant": tenant}
    stranger = signed(gateway, forged)
    assert reason(await http.get("/v1/projects", headers=stranger)) == "TENANT_REQUIRED"
    assert (await http.post("/v1/api-keys", json={"name": "x"}, headers=stranger)).status_code == 403
    # A viewer stays a viewer whatever the token claims.
    viewer = await gateway.member(http, owner, tenant, "viewer", user="vic")
    as_owner = signed(gateway, devauth.claims(user="vic", email="vic@example.com", org=tenant) | {"role": "owner"})
    for headers in (viewer, as_owner):
        assert (await http.get("/v1/projects", headers=headers)).status_code == 200
        assert (await http.post("/v1/api-keys", json={"name": "x"}, headers=headers)).status_code == 403
    spoofed = as_owner | {"x-aos-role": "owner", "x-aos-tenant-id": tenant, "x-aos-actor-type": "service"}
    assert (await http.post("/v1/api-keys", json={"name": "x"}, headers=spoofed)).status_code == 403


async def test_a_demoted_member_loses_manager_routes_within_a_second(http: httpx.AsyncClient, gateway: Gateway) -> None:
    tenant, _, owner = await signup(http, gateway)
    admin = await gateway.member(http, owner, tenant, "admin", user="ada")
    assert (await http.post("/v1/api-keys", json={"name": "before"}, headers=admin)).status_code == 201
    demoted = time.monotonic()
    await gateway.member(http, owner, tenant, "viewer", user="ada")
    refused = await eventually(
        lambda: http.post("/v1/api-keys", json={"name": "after"}, headers=admin),
        until=lambda reply: reply.status_code == 403,
        within=1.0,
        every=0.02,
        what="the demoted admin refused a manager-only route",
    )
    print(f"demotion honoured after {time.monotonic() - demoted:.3f} s")
    assert refused.json()["details"][0]["reason"] == "ROLE_REQUIRED"


async def test_signup_maps_the_providers_organisation_to_the_new_tenant(
    http: httpx.AsyncClient, gateway: Gateway, engines: dict[str, AsyncEngine]
) -> None:
    org = f"org_{uuid.uuid4().hex[:12]}"
    tenant, _, auth = await signup(http, gateway, org)
    assert tenant != org
    status = await http.get("/onboarding/status", headers=auth)
    assert status.status_code == 200 and status.json()["tenant_id"] == tenant
    got = await http.get(f"/v1/tenants/{tenant}", headers=auth)
    assert got.json()["tenant"]["org_id"] == org
    # The organisation has its tenant: a colleague cannot sign up a second one, nor enter it uninvited.
    colleague = gateway.token("colleague", tenant=org)
    again = await http.post("/v1/tenants", json={"name": "Second"}, headers=colleague)
    assert again.status_code == 409, again.text
    assert reason(await http.get("/v1/projects", headers=colleague)) == "TENANT_REQUIRED"
    async with engines["account"].connect() as conn:
        count = await conn.execute(text("SELECT count(*) FROM tenant WHERE org_id = :o"), {"o": org})
        assert count.scalar_one() == 1


async def test_bodies_over_the_limit_answer_413_and_long_headers_431(
    http: httpx.AsyncClient, gateway: Gateway, engines: dict[str, AsyncEngine]
) -> None:
    tenant, _, auth = await signup(http, gateway)
    big = await http.post("/v1/projects", content=b'{"name":"' + b"x" * (1536 * 1024) + b'"}', headers=auth)
    assert big.status_code == 413 and reason(big) == "PAYLOAD_TOO_LARGE"  # a /v1 path: google.rpc.Status
    assert await _raw_post_status(gateway, "/v1/projects", auth, 10 * 1024 * 1024) == 413  # the 10 MB of the issue
    long_id = await http.get("/v1/projects/" + "a" * 10_000, headers=auth)
    assert long_id.status_code == 431 and long_id.json()["error"] == "headers_too_large"
    header = await http.get("/v1/projects", headers=auth | {"x-junk": "j" * 8000})
    assert header.status_code == 431
    # Just under the limits everything still reaches the services (and no 429 from their gRPC limits).
    near = await http.get("/v1/projects/" + "a" * 4000, headers=auth)
    assert near.status_code in (400, 404), near.text
    async with engines["account"].connect() as conn:
        count = await conn.execute(text("SELECT count(*) FROM project WHERE tenant_id = :t"), {"t": tenant})
        assert count.scalar_one() == 0


async def _raw_post_status(gateway: Gateway, path: str, auth: dict[str, str], length: int) -> int:
    """POSTs `length` announced bytes over HTTP/1.1, sending 2 MiB of them, and reads the status: Envoy must
    answer before the client has sent everything (httpx would still be writing when Envoy closes)."""
    host, port = gateway.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        head = f"POST {path} HTTP/1.1\r\nhost: aos\r\ncontent-type: application/json\r\ncontent-length: {length}\r\n"
        writer.write(f"{head}authorization: {auth['authorization']}\r\n\r\n".encode() + b"{" + b" " * (2 << 20))
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 10)
        return int(status_line.split()[1])
    finally:
        writer.close()


async def test_a_plain_http_call_to_a_grpc_path_is_415(http: httpx.AsyncClient, gateway: Gateway) -> None:
    _, _, auth = await signup(http, gateway)
    path = "/aos.account.v1.AccountService/ListProjects"
    for headers in (auth, {}):
        reply = await http.post(path, json={}, headers=headers)
        assert reply.status_code in (401, 415) and reply.status_code < 500, reply.text
    reply = await http.post(path, json={}, headers=auth)
    assert reply.status_code == 415 and reply.json()["error"] == "unsupported_media_type"
    assert (await http.get(path, headers=auth)).status_code == 415


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("trace-0123456789_ab", True),
        ("a" * 128, True),
        ("short", False),
        ("a" * 129, False),
        ("has space in it", False),
        ("semi;colon;injected", False),
        ("%0d%0aset-cookie-x", False),
    ],
)
async def test_client_request_ids_are_kept_only_in_the_strict_form(
    http: httpx.AsyncClient, gateway: Gateway, given: str, kept: bool
) -> None:
    reply = await http.get("/openapi.json", headers={"x-request-id": given})
    used = reply.headers["x-request-id"]
    if kept:
        assert used == given
    else:
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", used), used
    fresh = await http.get("/openapi.json")
    assert fresh.headers["x-request-id"] != used
