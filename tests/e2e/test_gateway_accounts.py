"""The account REST surface through real Envoy: legacy URLs, 201s, and who may see what."""

import json
import time
from typing import Any

import grpc
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from google.protobuf.descriptor import FieldDescriptor
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aos.account.v1 import account_service_pb2 as rpc
from aos.account.v1 import account_service_pb2_grpc
from aos.api_keys.v1 import api_keys_service_pb2
from aos.integrations.v1 import integrations_service_pb2
from cli import devauth, gen
from tests.conftest import Gateway

pytestmark = pytest.mark.e2e


async def signup(http: httpx.AsyncClient, gateway: Gateway, name: str = "Acme") -> tuple[str, dict[str, str]]:
    user = f"owner-{time.monotonic_ns()}"
    reply = await http.post("/v1/tenants", json={"name": name}, headers=gateway.token(user))
    assert reply.status_code == 201, reply.text
    tenant = reply.json()["tenant"]["tenant_id"]
    return tenant, gateway.token(user, tenant=tenant)


async def test_signup_and_legacy_project_urls(http: httpx.AsyncClient, gateway: Gateway) -> None:
    tenant, auth = await signup(http, gateway)
    created = await http.post("/accounts/projects", json={"name": "web", "description": "shop"}, headers=auth)
    assert created.status_code == 201
    project = created.json()
    assert set(project) >= {"project_id", "name", "description", "status", "created_at", "updated_at"}
    assert project["status"] == "ACTIVE" and project["tenant_id"] == tenant
    listed = await http.get("/accounts/projects", params={"limit": 10, "offset": 0}, headers=auth)
    assert listed.status_code == 200
    body = listed.json()
    assert body["total"] == 1 and body["has_more"] is False and body["filters_applied"] == {"tenant_id": tenant}
    assert [p["project_id"] for p in body["items"]] == [project["project_id"]]
    one = await http.get(f"/accounts/projects/{project['project_id']}", headers=auth)
    assert one.status_code == 200 and one.json() == project
    canonical = await http.get(f"/v1/projects/{project['project_id']}", headers=auth)
    assert canonical.json() == project


async def test_spoofed_tenant_header_never_reaches_another_tenant(http: httpx.AsyncClient, gateway: Gateway) -> None:
    victim, victim_auth = await signup(http, gateway, "Victim")
    secret = (await http.post("/accounts/projects", json={"name": "secret"}, headers=victim_auth)).json()
    _, attacker = await signup(http, gateway, "Attacker")
    spoof = {"x-aos-tenant-id": victim, "x-aos-actor-type": "service", "x-aos-role": "owner"}
    listed = await http.get("/accounts/projects", headers=attacker | spoof)
    assert listed.status_code == 200 and listed.json()["items"] == []
    got = await http.get(f"/accounts/projects/{secret['project_id']}", headers=attacker | spoof)
    assert got.status_code == 404
    anonymous = await http.get("/accounts/projects", headers=spoof)
    assert anonymous.status_code == 401


def forged(gateway: Gateway, **claims: Any) -> dict[str, str]:
    """A well-formed token with the dev key id, signed by some other RSA key."""
    real = gateway.token("mallory", tenant="t")["authorization"].split()[1]
    payload = jwt.decode(real, options={"verify_signature": False}) | claims
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(payload, other, algorithm="RS256", headers={"kid": devauth.KID})
    return {"authorization": f"Bearer {token}"}


async def test_bad_expired_and_unsigned_tokens_are_refused(http: httpx.AsyncClient, gateway: Gateway) -> None:
    victim, victim_auth = await signup(http, gateway, "Target")
    await http.post("/accounts/projects", json={"name": "secret"}, headers=victim_auth)
    unsigned = jwt.encode(
        {
            "sub": "mallory",
            "org_id": victim,
            "aos_kind": "human",
            "iss": "aos-dev",
            "aud": "aos",
            "exp": int(time.time()) + 600,
        },
        None,
        algorithm="none",
    )
    cases = {
        "garbage": {"authorization": "Bearer not.a.jwt"},
        "expired": gateway.token("mallory", tenant=victim, ttl=-120),
        "unsigned": {"authorization": f"Bearer {unsigned}"},
        "wrong key": forged(gateway, org_id=victim),
    }
    for name, auth in cases.items():
        reply = await http.get("/accounts/projects", headers=auth)
        assert reply.status_code == 401, name
        assert reply.json()["error"] == "invalid_token", name
        assert "secret" not in reply.text


async def test_invalid_input_is_400_naming_the_field_and_writes_nothing(
    http: httpx.AsyncClient, gateway: Gateway, engines: dict[str, AsyncEngine]
) -> None:
    tenant, auth = await signup(http, gateway)
    for body, field in (({"name": ""}, "name"), ({"name": "x" * 201}, "name")):
        reply = await http.post("/accounts/projects", json=body, headers=auth)
        assert reply.status_code == 400
        error = reply.json()
        assert error["code"] == 3 and error["message"].startswith(f"{field}:")
        assert {
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "field_violations": [{"field": field, "description": error["message"].split(": ", 1)[1], "reason": ""}],
        } in error["details"]
    page = await http.get("/accounts/projects", params={"page_token": "bogus"}, headers=auth)
    assert page.status_code == 400 and "page_token" in page.json()["message"]
    malformed = await http.post(
        "/accounts/projects", content=b'{"name": ', headers=auth | {"content-type": "application/json"}
    )
    assert malformed.status_code == 400
    enum = await http.post("/v1/tenants", json={"name": "x", "plan": "PLAN_PLATINUM"}, headers=auth)
    assert enum.status_code == 400 and "plan" in enum.text
    async with engines["account"].connect() as conn:
        count = await conn.execute(text("SELECT count(*) FROM project WHERE tenant_id = :t"), {"t": tenant})
        assert count.scalar_one() == 0
        tenants = await conn.execute(text("SELECT count(*) FROM tenant WHERE name = 'x'"))
        assert tenants.scalar_one() == 0


async def test_native_grpc_through_the_gateway(http: httpx.AsyncClient, gateway: Gateway) -> None:
    tenant, auth = await signup(http, gateway)
    async with grpc.aio.insecure_channel(gateway.url.removeprefix("http://")) as channel:
        stub = account_service_pb2_grpc.AccountServiceStub(channel)
        md = tuple(auth.items())
        created = await stub.CreateProject(rpc.CreateProjectRequest(name="grpc"), metadata=md, timeout=5)
        listed = await stub.ListProjects(rpc.ListProjectsRequest(), metadata=md, timeout=5)
        assert [p.project_id for p in listed.items] == [created.project_id]
        got = await stub.GetProject(rpc.GetProjectRequest(project_id=created.project_id), metadata=md, timeout=5)
        assert got.tenant_id == tenant
        # Internal RPCs exist only inside the platform: the edge refuses them, even with a valid token.
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetActivationEvidence(rpc.GetActivationEvidenceRequest(tenant_id=tenant), metadata=md, timeout=5)
        assert caught.value.code() is grpc.StatusCode.UNIMPLEMENTED


async def test_unknown_path_is_404_json(http: httpx.AsyncClient, gateway: Gateway) -> None:
    reply = await http.get("/no/such/thing", headers=gateway.token())
    assert reply.status_code == 404 and reply.json()["error"] == "not_found"


async def test_the_gateway_serves_the_committed_openapi_document(http: httpx.AsyncClient) -> None:
    reply = await http.get("/openapi.json")
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/json"
    document = reply.json()
    assert document == json.loads((gen.OPENAPI).read_text())
    assert set(document["paths"]["/accounts/projects"]) == {"get", "post"}
    assert "201" in document["paths"]["/accounts/projects"]["post"]["responses"]
    assert "/v1/tenants/{tenant_id}:suspend" in document["paths"]
    internal = [p for p in document["paths"] if "Evidence" in p or "Attestation" in p]
    assert internal == []


async def team(
    http: httpx.AsyncClient, gateway: Gateway, role: str
) -> tuple[str, str, dict[str, str], str, dict[str, str]]:
    """A tenant, its owner (user id, token) and a second member added by the owner with `role` (user id,
    token). The edge reads the member's role from account, where AddMember recorded it."""
    owner = f"owner-{time.monotonic_ns()}"
    reply = await http.post("/v1/tenants", json={"name": "Team"}, headers=gateway.token(owner))
    assert reply.status_code == 201, reply.text
    tenant = reply.json()["tenant"]["tenant_id"]
    owner_auth = gateway.token(owner, tenant=tenant)
    user = f"{role}-{time.monotonic_ns()}"
    body = {"user_id": user, "email": f"{user}@example.com", "role": f"ROLE_{role.upper()}"}
    added = await http.post("/v1/members", json=body, headers=owner_auth)
    assert added.status_code == 200, added.text
    return tenant, owner, owner_auth, user, gateway.token(user, tenant=tenant)


async def member_roles(http: httpx.AsyncClient, auth: dict[str, str]) -> dict[str, str]:
    listed = await http.get("/v1/members", headers=auth)
    assert listed.status_code == 200, listed.text
    return {m["user_id"]: m["role"] for m in listed.json()["members"]}


async def test_an_admin_cannot_demote_or_remove_the_owner(http: httpx.AsyncClient, gateway: Gateway) -> None:
    """Issue 11: an admin demoted the owner to viewer."""
    _, owner, owner_auth, admin, admin_auth = await team(http, gateway, "admin")
    before = await member_roles(http, owner_auth)
    assert before[owner] == "ROLE_OWNER"
    demote = {"user_id": owner, "email": f"{owner}@example.com", "role": "ROLE_VIEWER"}
    assert (await http.post("/v1/members", json=demote, headers=admin_auth)).status_code == 403
    assert (await http.delete(f"/v1/members/{owner}", headers=admin_auth)).status_code == 403
    promote = {"user_id": admin, "email": f"{admin}@example.com", "role": "ROLE_OWNER"}
    assert (await http.post("/v1/members", json=promote, headers=admin_auth)).status_code == 403
    assert await member_roles(http, owner_auth) == before
    last = await http.delete(f"/v1/members/{owner}", headers=owner_auth)
    assert last.status_code == 400 and "last owner" in last.json()["message"]
    removed = await http.delete(f"/v1/members/{admin}", headers=owner_auth)
    assert removed.status_code == 200 and removed.json()["member"]["role"] == "ROLE_ADMIN"
    assert await member_roles(http, owner_auth) == {owner: "ROLE_OWNER"}


async def test_out_of_range_enums_are_400_naming_the_field(
    http: httpx.AsyncClient, gateway: Gateway, engines: dict[str, AsyncEngine]
) -> None:
    """Issue 11: the transcoder passes numeric enums through; these answered 500."""
    tenant, auth = await signup(http, gateway, "Enums")
    member = await http.post("/v1/members", json={"user_id": "u", "email": "u@example.com", "role": 99}, headers=auth)
    assert member.status_code == 400 and member.json()["message"].startswith("role:"), member.text
    plan = await http.post("/v1/tenants", json={"name": "Plan 99", "plan": 99}, headers=gateway.token())
    assert plan.status_code == 400 and plan.json()["message"].startswith("plan:"), plan.text
    async with engines["account"].connect() as conn:
        found = await conn.execute(
            text(
                "SELECT (SELECT count(*) FROM tenant WHERE name = 'Plan 99'), (SELECT count(*) FROM member "
                "WHERE tenant_id = :t)"
            ),
            {"t": tenant},
        )
        assert tuple(found.one()) == (0, 1)


WELL_KNOWN = frozenset({"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"})


def test_every_enum_field_of_every_request_is_one_the_services_check() -> None:
    """The two enum fields customers can send are checked above; a new one must be checked (and listed)."""

    def enums(message: Any, seen: frozenset[str] = frozenset()) -> set[str]:
        found = set()
        for field in message.fields:
            if field.type == FieldDescriptor.TYPE_ENUM:
                found.add(f"{message.name}.{field.name}")
            elif field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.full_name not in seen | WELL_KNOWN:
                found |= enums(field.message_type, seen | {field.message_type.full_name})
        return found

    requests = set()
    for module in (rpc, api_keys_service_pb2, integrations_service_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                requests |= enums(method.input_type)
    assert requests == {"CreateTenantRequest.plan", "AddMemberRequest.role"}


async def test_signups_are_limited_per_user(http: httpx.AsyncClient, gateway: Gateway) -> None:
    founder = gateway.token(f"serial-{time.monotonic_ns()}")
    for i in range(5):
        assert (await http.post("/v1/tenants", json={"name": f"Co {i}"}, headers=founder)).status_code == 201
    sixth = await http.post("/v1/tenants", json={"name": "Co 6"}, headers=founder)
    assert sixth.status_code == 429 and "at most 5 tenants" in sixth.json()["message"], sixth.text
