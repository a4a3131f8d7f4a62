"""The API-key REST surface through real Envoy: legacy URLs and shapes, 201/422/429, strict queries.

X-AOS-Key callers need onboarding's ext_authz (not in this tree yet): scenarios 13-15 are covered at the
VerifyApiKey level in tests/api_keys/test_verify_api_key.py.
"""

import asyncio
import re
import time

import httpx
import pytest

from tests.conftest import Gateway

pytestmark = pytest.mark.e2e


async def signup(http: httpx.AsyncClient, gateway: Gateway) -> tuple[str, dict[str, str]]:
    """A new tenant and its owner's auth headers (signup made them the owner)."""
    user = f"owner-{time.monotonic_ns()}"
    reply = await http.post("/v1/tenants", json={"name": "Keys Inc"}, headers=gateway.token(user))
    assert reply.status_code == 201, reply.text
    tenant = reply.json()["tenant"]["tenant_id"]
    return tenant, gateway.token(user, tenant=tenant)


async def test_create_read_list_and_revoke_through_the_legacy_urls(http: httpx.AsyncClient, gateway: Gateway) -> None:
    tenant, auth = await signup(http, gateway)
    created = await http.post("/tenant/api-keys", json={"name": "ci"}, headers=auth)
    assert created.status_code == 201, created.text
    body = created.json()
    assert re.fullmatch(r"aos_[0-9A-Za-z]{46}", body["key"])  # SPEC 0.11 supersedes scenario 8's regex
    assert body["key_prefix"] == body["key"][:12] and body["status"] == "active" and body["total_requests"] == 0
    assert set(body) >= {"id", "name", "key_prefix", "key", "status", "total_requests", "created_at"}
    key, key_id = body["key"], body["id"]

    one = await http.get(f"/api-keys/{key_id}", headers=auth)
    assert one.status_code == 200 and one.json()["permissions"] == ["run:*", "read:*"]
    assert one.json()["prefix"] == key[:12] and one.json()["status"] == "ACTIVE"
    listed = await http.get("/api-keys", headers=auth)
    assert listed.status_code == 200
    assert listed.json()["total"] == 1 and listed.json()["filters_applied"] == {"tenant_id": tenant}
    for reply in (one, listed, await http.get(f"/v1/api-keys/{key_id}", headers=auth)):
        assert key not in reply.text  # scenario 9

    revoked = await http.delete(f"/tenant/api-keys/{key_id}", params={"reason": "x"}, headers=auth)
    assert revoked.status_code == 200
    assert revoked.json()["success"] is True and revoked.json()["data"]["message"] == f"API key {key_id} revoked"
    detail = (await http.get(f"/api-keys/{key_id}", headers=auth)).json()
    assert detail["status"] == "REVOKED" and detail["revoked_reason"] == "x" and detail["revoked_at"]
    only_revoked = (await http.get("/api-keys", params={"status": "revoked"}, headers=auth)).json()
    assert [k["key_id"] for k in only_revoked["items"]] == [key_id]
    assert (await http.get("/tenant/api-keys", headers=auth)).json() == []  # a bare array (SPEC 2.4)
    every = (await http.get("/tenant/api-keys", params={"include_revoked": "true"}, headers=auth)).json()
    assert [k["id"] for k in every] == [key_id] and every[0]["status"] == "revoked"


@pytest.mark.parametrize(
    "body",
    [
        {"name": ""},
        {"name": "x" * 101},
        {"name": "ok", "expires_in_days": 0},
        {"name": "ok", "expires_in_days": 366},
        {"name": "ok", "rate_limit_rpm": 0},
        {"name": "ok", "rate_limit_rpm": 1001},
    ],
)
async def test_invalid_creates_answer_422(http: httpx.AsyncClient, gateway: Gateway, body: dict[str, object]) -> None:
    _, auth = await signup(http, gateway)
    reply = await http.post("/tenant/api-keys", json=body, headers=auth)
    assert reply.status_code == 422, reply.text
    assert reply.json()["details"][0]["reason"] == "INVALID_ARGUMENT"


async def test_quota_answers_429_with_the_legacy_message(http: httpx.AsyncClient, gateway: Gateway) -> None:
    _, auth = await signup(http, gateway)
    replies = await asyncio.gather(*(http.post("/v1/api-keys", json={"name": f"k{i}"}, headers=auth) for i in range(8)))
    assert sorted(r.status_code for r in replies) == [201] * 5 + [429] * 3
    refused = next(r for r in replies if r.status_code == 429).json()
    assert refused["message"].startswith("API key limit exceeded: ")
    victim = next(r for r in replies if r.status_code == 201).json()["id"]
    assert (await http.delete(f"/tenant/api-keys/{victim}", headers=auth)).status_code == 200
    assert (await http.post("/tenant/api-keys", json={"name": "again"}, headers=auth)).status_code == 201


async def test_another_tenants_key_is_404_and_stays_active(http: httpx.AsyncClient, gateway: Gateway) -> None:
    _, victim = await signup(http, gateway)
    key_id = (await http.post("/tenant/api-keys", json={"name": "v"}, headers=victim)).json()["id"]
    _, attacker = await signup(http, gateway)
    assert (await http.delete(f"/tenant/api-keys/{key_id}", headers=attacker)).status_code == 404
    assert (await http.get(f"/api-keys/{key_id}", headers=attacker)).status_code == 404
    assert (await http.get(f"/api-keys/{key_id}", headers=victim)).json()["status"] == "ACTIVE"


async def test_viewers_read_but_cannot_manage(http: httpx.AsyncClient, gateway: Gateway) -> None:
    tenant, owner = await signup(http, gateway)
    viewer = await gateway.member(http, owner, tenant, "viewer")
    assert (await http.post("/tenant/api-keys", json={"name": "v"}, headers=viewer)).status_code == 403
    assert (await http.get("/api-keys", headers=viewer)).status_code == 200
    assert (await http.get("/api-keys")).status_code == 401


async def test_canonical_rotate_disable_enable(http: httpx.AsyncClient, gateway: Gateway) -> None:
    _, auth = await signup(http, gateway)
    key_id = (await http.post("/v1/api-keys", json={"name": "r"}, headers=auth)).json()["id"]
    rotated = await http.post(f"/v1/api-keys/{key_id}:rotate", json={"grace_period_hours": 1}, headers=auth)
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["key"].startswith("aos_") and rotated.json()["previous"]["rotated_to_key_id"]
    new_id = rotated.json()["api_key"]["key_id"]
    off = await http.post(f"/v1/api-keys/{new_id}:disable", json={}, headers=auth)
    assert off.status_code == 200 and off.json()["api_key"]["status"] == "DISABLED"
    on = await http.post(f"/v1/api-keys/{new_id}:enable", json={}, headers=auth)
    assert on.status_code == 200 and on.json()["api_key"]["status"] == "ACTIVE"


async def test_list_query_rules(http: httpx.AsyncClient, gateway: Gateway) -> None:
    tenant, auth = await signup(http, gateway)
    assert (await http.get("/api-keys", params={"status": "bogus"}, headers=auth)).status_code == 422
    gated = await http.get("/cus/api_keys/list", headers=auth)  # the public facade needs COMPLETE (SPEC 2.5)
    assert gated.status_code == 403 and gated.json()["required_state"] == "COMPLETE"
    founder = gateway.token("founder", operator=True)
    done = await http.post(
        "/fdr/onboarding/force-complete", json={"tenant_id": tenant, "reason": "fuzzing the facade"}, headers=founder
    )
    assert done.status_code == 200, done.text
    public = await http.get("/cus/api_keys/list", params={"limit": 10}, headers=auth | {"x-correlation-id": "c-1"})
    assert public.status_code == 200, public.text
    body = public.json()
    assert body["keys"] == [] and body["total"] == 0 and body["has_more"] is False
    assert body["pagination"] == {"limit": 10, "offset": 0, "next_offset": None}
    assert body["meta"]["correlation_id"] == "c-1" and body["meta"]["as_of"] is None and body["generated_at"]
    unknown = await http.get("/cus/api_keys/list", params={"foo": "1"}, headers=auth)
    assert unknown.status_code == 400 and unknown.json()["details"][0]["reason"] == "INVALID_QUERY", unknown.text
    assert unknown.json()["details"][1]["field_violations"][0]["field"] == "foo"  # named by the service
    twice = await http.get("/cus/api_keys/list?limit=1&limit=2", headers=auth)
    assert twice.status_code == 400 and twice.json()["details"][0]["reason"] == "INVALID_QUERY", twice.text
    as_of = await http.get("/cus/api_keys/list", params={"as_of": "x"}, headers=auth)
    assert as_of.status_code == 400 and as_of.json()["details"][0]["reason"] == "UNSUPPORTED_PARAM"
    bad = await http.get("/cus/api_keys/list", params={"limit": 0}, headers=auth)
    assert bad.status_code == 400 and bad.json()["details"][0]["reason"] == "INVALID_QUERY"


async def test_internal_rpcs_are_refused_at_the_edge(http: httpx.AsyncClient, gateway: Gateway) -> None:
    _, auth = await signup(http, gateway)
    reply = await http.post(
        "/aos.api_keys.v1.ApiKeysService/VerifyApiKey",
        content=b"\x00\x00\x00\x00\x00",
        headers=auth | {"content-type": "application/grpc"},
    )
    assert reply.status_code == 404 or reply.headers.get("grpc-status") not in (None, "0")


async def test_a_key_cannot_mint_or_take_over_broader_keys(http: httpx.AsyncClient, gateway: Gateway) -> None:
    """Issue 11: a keys:create key created a `*` key; a keys:create+keys:revoke key rotated an owner's `*`
    key and received its new secret."""
    _, auth = await signup(http, gateway)

    async def new(name: str, permissions: list[str], headers: dict[str, str]) -> httpx.Response:
        return await http.post("/v1/api-keys", json={"name": name, "permissions": permissions}, headers=headers)

    owners = (await new("owner", ["*"], auth)).json()
    creator = {"x-aos-key": (await new("creator", ["keys:create"], auth)).json()["key"]}
    rotator = {"x-aos-key": (await new("rotator", ["keys:create", "keys:revoke"], auth)).json()["key"]}
    minted = await new("escalated", ["*"], creator)
    assert minted.status_code == 403 and "lacks scope *" in minted.json()["message"], minted.text
    defaults = await http.post("/v1/api-keys", json={"name": "defaults"}, headers=creator)
    assert defaults.status_code == 403  # the default scopes (run:*, read:*) are not the creator's either
    taken = await http.post(f"/v1/api-keys/{owners['id']}:rotate", json={}, headers=rotator)
    assert taken.status_code == 403 and "aos_" not in taken.text, taken.text
    kept = (await http.get(f"/v1/api-keys/{owners['id']}", headers=auth)).json()
    assert kept["status"] == "ACTIVE" and not kept.get("rotated_to_key_id")
    delegated = await new("delegated", ["keys:create"], creator)
    assert delegated.status_code == 201, delegated.text
