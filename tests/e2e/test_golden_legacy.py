"""Golden responses of every legacy route of SPEC section 2 (2.1-2.8), through real Envoy: the status, the JSON keys
and their types (null included) must match the shape a legacy client reads, so any divergence fails here.

One tenant walks the whole journey once per module (`answers`); each route's answer is then one test against
its shape below. The shapes are SPEC's, plus the deliberate divergences the README's table lists (extra fields a
legacy client ignores, decision 1's projects, decision 14's google.rpc.Status errors)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.conftest import GATE_CACHE_SECONDS, Gateway, eventually
from tests.e2e.golden import assert_shape

pytestmark = pytest.mark.e2e

TS = str  # an RFC 3339 timestamp
MAYBE_TS = (str, None)
# Decision 14: errors other than the edge's are google.rpc.Status JSON with the legacy HTTP status.
STATUS = {"code": int, "message": str, "details": [dict]}
EDGE = {"error": str, "message": str}
META = {"timestamp": TS, "request_id": str}


def envelope(data: Any, meta: Any = META) -> dict[str, Any]:
    return {"success": bool, "data": data, "meta": meta}


ONBOARDING_STATUS = {
    "tenant_id": str,
    "current_state": str,
    "state_value": int,
    "is_complete": bool,
    "step_index": int,
    "total_steps": int,
    "next_action": ({"action_id": str, "action_type": str}, None),
    "allowed_capabilities": [str],
    "blocked_capabilities": [str],
    "timestamp": TS,
}
KEY_READ = {
    "key_id": str,
    "name": str,
    "prefix": str,
    "status": str,
    "created_at": TS,
    "last_used_at": MAYBE_TS,
    "expires_at": MAYBE_TS,
    "total_requests": int,
}
KEY_DETAIL = KEY_READ | {
    "permissions": [str],
    "allowed_workers": [str],
    "rate_limit_rpm": (int, None),
    "max_concurrent_runs": (int, None),
    "revoked_at": MAYBE_TS,
    "revoked_reason": (str, None),
}
TENANT_KEY = {
    "id": str,
    "name": str,
    "key_prefix": str,
    "status": str,
    "last_used_at": MAYBE_TS,
    "total_requests": int,
    "expires_at": MAYBE_TS,
    "created_at": TS,
}
FACADE_META = {"request_id": str, "correlation_id": str, "as_of": None}
PAGINATION = {"limit": int, "offset": int, "next_offset": (int, None)}
# Decision 1: projects are real rows of the caller's tenant, not a view over the tenant row (SPEC 1.2's DTO).
PROJECT = {
    "project_id": str,
    "tenant_id": str,
    "name": str,
    "description": str,
    "status": str,
    "created_at": TS,
    "updated_at": TS,
}
INTEGRATION_SUMMARY = {
    "id": str,
    "name": str,
    "provider_type": str,
    "status": str,
    "health_state": str,
    "default_model": (str, None),
    "created_at": TS,
}
# SPEC 1.5 without credential_ref and config.
INTEGRATION = {
    "id": str,
    "tenant_id": str,
    "name": str,
    "provider_type": str,
    "status": str,
    "health_state": str,
    "health_message": (str, None),
    "health_checked_at": MAYBE_TS,
    "default_model": (str, None),
    "budget_limit_cents": int,
    "token_limit_month": int,
    "rate_limit_rpm": int,
    "created_by": (str, None),
    "created_at": TS,
    "updated_at": TS,
    "deleted_at": MAYBE_TS,
}
STATUS_RESULT = {"integration_id": str, "status": str, "message": str}


# name → (HTTP status, shape)
GOLDEN: list[tuple[str, int, Any]] = [
    # 2.1 onboarding
    ("onboarding_status", 200, ONBOARDING_STATUS),
    ("onboarding_verify", 200, {"verified": bool, "tenant_id": str, "current_state": str, "message": str}),
    (
        "onboarding_advance_api_key",
        200,
        envelope({"success": bool, "from_state": str, "to_state": str, "was_no_op": bool}),
    ),
    ("onboarding_status_complete", 200, ONBOARDING_STATUS),
    # 2.2 SDK
    (
        "sdk_handshake",
        200,
        {
            "success": bool,
            "message": str,
            "server_version": str,
            "tenant_id": str,
            "onboarding_state": str,
            "timestamp": TS,
        },
    ),
    ("sdk_handshake_missing_fields", 422, STATUS),
    (
        "sdk_instructions",
        200,
        {"tenant_id": str, "api_base_url": str, "websocket_url": None, "docs_url": str, "example_code": str},
    ),
    # 2.3 API keys, read
    ("api_keys", 200, {"items": [KEY_READ], "total": int, "has_more": bool, "filters_applied": {"tenant_id": str}}),
    ("api_key", 200, KEY_DETAIL),
    ("api_key_unknown", 404, STATUS),
    ("api_keys_bad_status", 422, STATUS),
    # 2.4 API keys, write
    ("tenant_api_keys", 200, [TENANT_KEY]),
    ("tenant_api_keys_with_revoked", 200, [TENANT_KEY]),
    ("tenant_api_key_create", 201, TENANT_KEY | {"key": str}),
    ("tenant_api_key_create_invalid", 422, STATUS),
    # The revoked key is added to the legacy envelope (README: divergences).
    (
        "tenant_api_key_revoke",
        200,
        {"success": bool, "data": {"success": bool, "message": str}, "meta": META, "api_key": dict},
    ),
    ("tenant_api_key_revoke_unknown", 404, STATUS),
    # 2.5 public list facade
    (
        "cus_api_keys_list",
        200,
        {
            "keys": [KEY_READ],
            "total": int,
            "has_more": bool,
            "pagination": PAGINATION,
            "generated_at": TS,
            "meta": FACADE_META,
        },
    ),
    ("cus_api_keys_list_unknown_param", 400, STATUS),
    ("cus_api_keys_list_as_of", 400, STATUS),
    # 2.6 projects (decision 1)
    (
        "projects",
        200,
        {
            "items": [PROJECT],
            "total": int,
            "has_more": bool,
            "filters_applied": {"tenant_id": str},
            "next_page_token": str,
        },
    ),
    ("project", 200, PROJECT),
    ("project_create", 201, PROJECT),
    ("project_other", 404, STATUS),
    # 2.7 integrations
    ("integration_create", 201, envelope(INTEGRATION)),
    ("integration_create_raw_secret", 422, STATUS),
    ("integration_create_bad_provider", 422, STATUS),
    ("integrations", 200, envelope([INTEGRATION_SUMMARY], META | {"total": int}) | {"next_page_token": str}),
    ("integration", 200, envelope(INTEGRATION)),
    ("integration_not_uuid", 422, STATUS),
    ("integration_unknown", 404, STATUS),
    ("integration_update", 200, envelope(INTEGRATION)),
    ("integration_update_nothing", 400, STATUS),
    ("integration_enable", 200, envelope(STATUS_RESULT)),
    ("integration_disable", 200, envelope(STATUS_RESULT)),
    ("integration_disable_again", 409, STATUS),
    (
        "integration_health",
        200,
        envelope(
            {"integration_id": str, "health_state": str, "health_message": (str, None), "health_checked_at": MAYBE_TS}
        ),
    ),
    (
        "integration_test",
        200,
        envelope({"integration_id": str, "health_state": str, "message": str, "latency_ms": int, "checked_at": TS}),
    ),
    (
        "integration_limits",
        200,
        envelope(
            {
                "integration_id": str,
                "budget_limit_cents": int,
                "budget_used_cents": int,
                "budget_percent": float,
                "token_limit_month": int,
                "tokens_used_month": int,
                "token_percent": float,
                "rate_limit_rpm": int,
                "requests_this_minute": int,
                "rate_percent": float,
                "period_start": TS,
                "period_end": TS,
            }
        ),
    ),
    ("integration_delete", 200, envelope({"deleted": bool, "integration_id": str})),
    (
        "cus_integrations_list",
        200,
        {
            "integrations": [INTEGRATION_SUMMARY],
            "total": int,
            "has_more": bool,
            "pagination": PAGINATION,
            "generated_at": TS,
            "meta": FACADE_META,
        },
    ),
    ("cus_integrations_list_unknown_param", 400, STATUS),
    ("cus_integrations_list_as_of", 400, STATUS),
    # 2.8 founder
    (
        "founder_force_complete",
        200,
        {
            "success": bool,
            "tenant_id": str,
            "from_state": str,
            "to_state": str,
            "reason": str,
            "actor_email": str,
            "timestamp": TS,
            "audit_id": str,
        },
    ),
    ("founder_force_complete_not_founder", 403, EDGE),
    ("founder_force_complete_short_reason", 422, STATUS),
    ("founder_force_complete_unknown_tenant", 404, STATUS),
    (
        "founder_stalled",
        200,
        envelope(
            {
                "stalled_count": int,
                "threshold_hours": int,
                "tenants": [{"tenant_id": str, "current_state": str, "hours_stalled": float, "created_at": TS}],
            }
        ),
    ),
]


class Journey:
    """Performs the calls and keeps each answer under its golden name."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.answers: dict[str, httpx.Response] = {}

    async def __call__(self, name: str, method: str, url: str, **kwargs: Any) -> Any:
        reply = await self.http.request(method, url, **kwargs)
        self.answers[name] = reply
        return reply.json() if reply.headers.get("content-type", "").startswith("application/json") else None


@pytest.fixture(scope="module")
async def answers(gateway: Gateway) -> AsyncIterator[dict[str, httpx.Response]]:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as http:
        yield await _journey(Journey(http), gateway)


async def _journey(call: Journey, gateway: Gateway) -> dict[str, httpx.Response]:
    user, nobody = f"owner-{time.monotonic_ns()}", str(uuid.uuid4())
    signup = await call.http.post("/v1/tenants", json={"name": "Golden Inc"}, headers=gateway.token(user))
    tenant = signup.json()["tenant"]["tenant_id"]
    auth = gateway.token(user, tenant=tenant)
    founder = gateway.token("founder-golden", operator=True)

    await call("onboarding_status", "GET", "/onboarding/status", headers=auth)
    await call("onboarding_verify", "POST", "/onboarding/verify", headers=auth)
    created = await call("tenant_api_key_create", "POST", "/tenant/api-keys", json={"name": "ci"}, headers=auth)
    key_id, key = created["id"], {"X-AOS-Key": created["key"]}
    await call.http.post("/tenant/api-keys", json={"name": "second", "expires_in_days": 30}, headers=auth)
    await call("tenant_api_key_create_invalid", "POST", "/tenant/api-keys", json={"name": ""}, headers=auth)
    await call("onboarding_advance_api_key", "POST", "/onboarding/advance/api-key", headers=auth)
    await call("api_keys", "GET", "/api-keys", headers=auth)
    await call("api_key", "GET", f"/api-keys/{key_id}", headers=auth)
    await call("api_key_unknown", "GET", f"/api-keys/{nobody}", headers=auth)
    await call("api_keys_bad_status", "GET", "/api-keys", params={"status": "bogus"}, headers=auth)

    await call("sdk_instructions", "GET", "/sdk/instructions", headers=auth)
    await call("sdk_handshake_missing_fields", "POST", "/sdk/handshake", json={"sdk_language": "python"}, headers=key)
    hello = {"sdk_version": "1.2.0", "sdk_language": "python", "client_id": "golden"}
    await call("sdk_handshake", "POST", "/sdk/handshake", json=hello, headers=key)

    project = await call("project_create", "POST", "/accounts/projects", json={"name": "p1"}, headers=auth)
    await call("projects", "GET", "/accounts/projects", headers=auth)
    await call("project", "GET", f"/accounts/projects/{project['project_id']}", headers=auth)
    await call("project_other", "GET", f"/accounts/projects/{nobody}", headers=auth)

    await _integrations(call, auth, nobody)

    await call("founder_stalled", "GET", "/fdr/onboarding/stalled", params={"threshold_hours": 24}, headers=founder)
    done = {"tenant_id": tenant, "reason": "golden responses"}
    await call("founder_force_complete_not_founder", "POST", "/fdr/onboarding/force-complete", json=done, headers=auth)
    short = {"tenant_id": tenant, "reason": "short"}
    await call(
        "founder_force_complete_short_reason", "POST", "/fdr/onboarding/force-complete", json=short, headers=founder
    )
    unknown = {"tenant_id": nobody, "reason": "golden responses"}
    await call(
        "founder_force_complete_unknown_tenant", "POST", "/fdr/onboarding/force-complete", json=unknown, headers=founder
    )
    await call("founder_force_complete", "POST", "/fdr/onboarding/force-complete", json=done, headers=founder)
    await asyncio.sleep(GATE_CACHE_SECONDS + 0.1)  # the gate sees COMPLETE

    await call("onboarding_status_complete", "GET", "/onboarding/status", headers=auth)
    await call("cus_api_keys_list", "GET", "/cus/api_keys/list", params={"limit": 1}, headers=auth)
    await call("cus_api_keys_list_unknown_param", "GET", "/cus/api_keys/list?foo=1", headers=auth)
    await call("cus_api_keys_list_as_of", "GET", "/cus/api_keys/list?as_of=x", headers=auth)

    # A key's use reaches its row in batches (api_keys' usage_flush_seconds): wait for the handshake's before the
    # revocation, so that the revoked key's last_used_at below is set.
    async def used() -> bool:
        listed = (await call.http.get("/tenant/api-keys", headers=auth)).json()
        return any(k["id"] == key_id and k["last_used_at"] for k in listed)

    await eventually(used, within=10, every=0.2, what="the handshake's use of the key is recorded")
    await call("tenant_api_key_revoke", "DELETE", f"/tenant/api-keys/{key_id}", params={"reason": "x"}, headers=auth)
    await call("tenant_api_key_revoke_unknown", "DELETE", f"/tenant/api-keys/{nobody}", headers=auth)
    await call("tenant_api_keys", "GET", "/tenant/api-keys", headers=auth)
    with_revoked = {"include_revoked": "true"}
    await call("tenant_api_keys_with_revoked", "GET", "/tenant/api-keys", params=with_revoked, headers=auth)
    return call.answers


async def _integrations(call: Journey, auth: dict[str, str], nobody: str) -> None:
    body = {"name": "golden", "provider_type": "openai", "credential_ref": "encrypted://" + "A" * 60}
    created = await call("integration_create", "POST", "/integrations", json=body, headers=auth)
    one = f"/integrations/{created['data']['id']}"
    raw = body | {"name": "raw", "credential_ref": "sk-abc"}
    await call("integration_create_raw_secret", "POST", "/integrations", json=raw, headers=auth)
    await call(
        "integration_create_bad_provider", "POST", "/integrations", json=body | {"provider_type": "x"}, headers=auth
    )
    await call("integrations", "GET", "/integrations", headers=auth)
    await call("integration", "GET", one, headers=auth)
    await call("integration_not_uuid", "GET", "/integrations/not-a-uuid", headers=auth)
    await call("integration_unknown", "GET", f"/integrations/{nobody}", headers=auth)
    await call("integration_update", "PUT", one, json={"default_model": "gpt-4o"}, headers=auth)
    await call("integration_update_nothing", "PUT", one, json={}, headers=auth)
    await call("integration_health", "GET", f"{one}/health", headers=auth)
    await call("integration_test", "POST", f"{one}/test", headers=auth)
    await call("integration_limits", "GET", f"{one}/limits", headers=auth)
    await call("integration_enable", "POST", f"{one}/enable", headers=auth)
    await call("integration_disable", "POST", f"{one}/disable", headers=auth)
    await call("integration_disable_again", "POST", f"{one}/disable", headers=auth)
    await call("cus_integrations_list", "GET", "/cus/integrations/list", headers=auth)
    await call("cus_integrations_list_unknown_param", "GET", "/cus/integrations/list?foo=1", headers=auth)
    await call("cus_integrations_list_as_of", "GET", "/cus/integrations/list?as_of=x", headers=auth)
    await call("integration_delete", "DELETE", one, headers=auth)


@pytest.mark.parametrize(("name", "status", "shape"), GOLDEN)
def test_golden_response(answers: dict[str, httpx.Response], name: str, status: int, shape: Any) -> None:
    reply = answers[name]
    assert reply.status_code == status, reply.text
    assert_shape(reply.json(), shape)


def test_every_journey_answer_has_a_golden_shape(answers: dict[str, httpx.Response]) -> None:
    assert set(answers) == {name for name, _, _ in GOLDEN}


@pytest.mark.parametrize(
    ("name", "field", "reason"),
    [
        ("cus_api_keys_list_unknown_param", "foo", "INVALID_QUERY"),
        ("cus_api_keys_list_as_of", "as_of", "UNSUPPORTED_PARAM"),
        ("cus_integrations_list_unknown_param", "foo", "INVALID_QUERY"),
        ("cus_integrations_list_as_of", "as_of", "UNSUPPORTED_PARAM"),
        ("integration_create_raw_secret", "credential_ref", "RAW_SECRET"),
        ("integration_not_uuid", "integration_id", "INVALID_ARGUMENT"),
    ],
)
def test_refusals_name_the_field_and_reason(
    answers: dict[str, httpx.Response], name: str, field: str, reason: str
) -> None:
    info, bad_request = answers[name].json()["details"]
    assert info["reason"] == reason and bad_request["field_violations"][0]["field"] == field


def test_unset_legacy_fields_are_null_and_set_ones_typed(answers: dict[str, httpx.Response]) -> None:
    listed = answers["cus_api_keys_list"].json()
    assert listed["pagination"] == {"limit": 1, "offset": 0, "next_offset": 1} and listed["meta"]["as_of"] is None
    assert answers["cus_integrations_list"].json()["pagination"]["next_offset"] is None
    keys = {k["name"]: k for k in answers["tenant_api_keys_with_revoked"].json()}
    assert keys["second"]["expires_at"] and keys["second"]["last_used_at"] is None
    assert keys["ci"]["status"] == "revoked" and keys["ci"]["last_used_at"]  # the handshake used it
    assert [k["name"] for k in answers["tenant_api_keys"].json()] == ["second"]
    created, detail = answers["tenant_api_key_create"].json(), answers["api_key"].json()
    assert created["last_used_at"] is None and created["expires_at"] is None and created["total_requests"] == 0
    assert detail["revoked_at"] is None and detail["revoked_reason"] is None and detail["rate_limit_rpm"] is None
    assert detail["permissions"] == ["run:*", "read:*"] and detail["last_used_at"] is None  # read before any use
    record = answers["integration_create"].json()["data"]
    assert record["health_checked_at"] is None and record["deleted_at"] is None and record["token_limit_month"] == 0
    assert record["default_model"] is None and answers["integration_update"].json()["data"]["default_model"] == "gpt-4o"
    assert answers["integration_limits"].json()["data"]["tokens_used_month"] == 0


async def test_canonical_routes_keep_their_shapes(http: httpx.AsyncClient, gateway: Gateway) -> None:
    """/v1 keeps the whole message (no bare array, no legacy body) and 400 on integration validation."""
    user = f"owner-{time.monotonic_ns()}"
    signup = await http.post("/v1/tenants", json={"name": "Canonical Inc"}, headers=gateway.token(user))
    auth = gateway.token(user, tenant=signup.json()["tenant"]["tenant_id"])
    body = {"name": "raw", "provider_type": "openai", "credential_ref": "sk-abc"}
    raw = await http.post("/v1/integrations", json=body, headers=auth)
    assert raw.status_code == 400 and raw.json()["details"][0]["reason"] == "RAW_SECRET", raw.text
    bad_id = await http.get("/v1/integrations/not-a-uuid", headers=auth)
    assert bad_id.status_code == 400, bad_id.text
    created = await http.post("/v1/api-keys", json={"name": "ci"}, headers=auth)
    assert created.status_code == 201 and created.json()["permissions"] == ["run:*", "read:*"], created.text
    assert "last_used_at" not in created.json()  # canonical proto3 JSON: an unset field is absent
    key_id = created.json()["id"]
    one = (await http.get(f"/v1/api-keys/{key_id}", headers=auth)).json()
    assert one["key_id"] == key_id and one["rotated_to_key_id"] == "" and "revoked_at" not in one
    listed = (await http.get("/v1/api-keys", headers=auth)).json()
    assert set(listed) == {"items", "total", "has_more", "filters_applied", "next_page_token"}
