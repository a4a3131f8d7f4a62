"""The whole customer journey of `aos demo` against the real services (account, api_keys, integrations,
onboarding) through real Envoy: signup → IDENTITY_VERIFIED → first key → keyed calls → SDK handshake →
a refused Finalize → integration validated against a real local provider → project → COMPLETE; and the
API-key edge guarantees with real keys (SPEC 10, scenarios 1, 8, 13-17, 19, 20, 31-33)."""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api_keys import keys as keyfmt
from tests.conftest import GATE_CACHE_SECONDS, Gateway, eventually
from tests.integrations.conftest import GOOD_KEY, FakeProvider, provider  # noqa: F401  (fixture)

pytestmark = pytest.mark.e2e
INVALID = {"error": "api_key_invalid", "message": "Invalid API key"}
CACHE = GATE_CACHE_SECONDS + 0.2  # the gate's verdict and state caches live GATE_CACHE_SECONDS here


async def signup(http: httpx.AsyncClient, gateway: Gateway) -> tuple[str, dict[str, str]]:
    user = f"owner-{uuid.uuid4().hex[:8]}"
    reply = await http.post("/v1/tenants", json={"name": "Journey Inc"}, headers=gateway.token(user))
    assert reply.status_code == 201, reply.text
    tenant = reply.json()["tenant"]["tenant_id"]
    return tenant, gateway.token(user, tenant=tenant)


async def new_key(http: httpx.AsyncClient, auth: dict[str, str], name: str = "ci") -> dict[str, Any]:
    reply = await http.post("/tenant/api-keys", json={"name": name}, headers=auth)
    assert reply.status_code == 201, reply.text
    body: dict[str, Any] = reply.json()
    return body


async def state(http: httpx.AsyncClient, auth: dict[str, str]) -> str:
    reply = await http.get("/onboarding/status", headers=auth)
    assert reply.status_code == 200, reply.text
    current: str = reply.json()["current_state"]
    return current


async def transitions(engines: dict[str, AsyncEngine], tenant: str) -> list[dict[str, Any]]:
    async with engines["onboarding"].connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT * FROM event WHERE tenant_id = :t AND event_type = 'onboarding.state.transition' "
                "ORDER BY sequence_no"
            ),
            {"t": tenant},
        )
        return [dict(row) for row in rows.mappings()]


async def test_journey_from_signup_to_complete(
    http: httpx.AsyncClient,
    gateway: Gateway,
    engines: dict[str, AsyncEngine],
    provider: FakeProvider,  # noqa: F811
) -> None:
    tenant, auth = await signup(http, gateway)

    # Scenario 1: the first human call of a verified human advanced the new tenant.
    status = (await http.get("/onboarding/status", headers=auth)).json()
    assert (status["current_state"], status["state_value"], status["step_index"], status["total_steps"]) == (
        "IDENTITY_VERIFIED",
        1,
        1,
        5,
    )
    assert status["next_action"] == {"action_id": "create_api_key", "action_type": "credential_setup"}
    assert status["allowed_capabilities"] == ["api_key_management"]

    # Scenario 8 (key format of SPEC 0.11): 201, the key once, and the state moved before the response.
    created = await new_key(http, auth)
    secret, key_id = created["key"], created["id"]
    assert re.fullmatch(r"aos_[0-9A-Za-z]{46}", secret) and keyfmt.well_formed(secret)
    assert created["key_prefix"] == secret[:12] and created["status"] == "active"
    assert created["total_requests"] == 0 and created.get("last_used_at") is None
    assert await state(http, auth) == "API_KEY_CREATED"
    key = {"x-aos-key": secret}

    # Scenario 13: a keyed call succeeds; its use is counted (flushed in batches of ≤ ~1 s).
    before = (await http.get(f"/api-keys/{key_id}", headers=auth)).json()
    assert before["total_requests"] == 0 and before.get("last_used_at") is None
    keyed = await http.get("/onboarding/status", headers=key)
    assert keyed.status_code == 200, keyed.text
    assert keyed.json()["tenant_id"] == tenant and keyed.json()["current_state"] == "API_KEY_CREATED"

    async def used() -> dict[str, Any] | None:
        detail: dict[str, Any] = (await http.get(f"/api-keys/{key_id}", headers=auth)).json()
        return detail if detail["total_requests"] else None

    after = await eventually(used, within=5.0, what="the keyed call counted")
    assert after["total_requests"] == 1 and after["last_used_at"]
    # Every request counts, also those the gate answers from its verdict cache without asking api_keys.
    for _ in range(3):
        assert (await http.get("/onboarding/status", headers=key)).status_code == 200

    async def counted() -> dict[str, Any] | None:
        detail: dict[str, Any] = (await http.get(f"/api-keys/{key_id}", headers=auth)).json()
        return detail if detail["total_requests"] >= 4 else None

    later = await eventually(counted, within=5.0, what="the cached uses counted")
    assert later["total_requests"] == 4, "cached uses were not counted"
    assert later["last_used_at"] >= after["last_used_at"]
    assert secret not in (await http.get(f"/api-keys/{key_id}", headers=auth)).text  # scenario 9

    # Scenario 19: a second key is created, the state does not move and no event is written.
    events_before = await transitions(engines, tenant)
    second = await new_key(http, auth, "second")
    assert second["key"] != secret and await state(http, auth) == "API_KEY_CREATED"
    assert await transitions(engines, tenant) == events_before

    # Scenario 20: the SDK handshake with the key records the attestation and advances in the request.
    hello = {"sdk_version": "1.2.0", "sdk_language": "python", "client_id": "c1"}
    handshake = await http.post("/sdk/handshake", json=hello, headers=key)
    assert handshake.status_code == 200, handshake.text
    body = handshake.json()
    assert (body["success"], body["server_version"], body["onboarding_state"]) == (True, "1.0.0", "SDK_CONNECTED")
    assert body["tenant_id"] == tenant
    async with engines["account"].connect() as conn:
        hashes = (
            await conn.execute(text("SELECT attestation_hash FROM sdk_attestation WHERE tenant_id = :t"), {"t": tenant})
        ).scalars()
        assert list(hashes) == [hashlib.sha256(f"{tenant}:1.2.0:python:c1".encode()).hexdigest()[:32]]
    assert await state(http, auth) == "SDK_CONNECTED"

    # Scenarios 31/33: Finalize without a project and a validated integration names both, in the fixed order.
    refused = await http.post("/onboarding/complete", json={}, headers=auth)
    assert refused.status_code == 400, refused.text
    error = refused.json()
    assert error["message"] == "Activation predicate failed: missing ['project_ready', 'connector_validated']"
    (info,) = [d for d in error["details"] if d["@type"].endswith("ErrorInfo")]
    assert info["reason"] == "ACTIVATION_INCOMPLETE"
    (failure,) = [d for d in error["details"] if d["@type"].endswith("PreconditionFailure")]
    assert [v["subject"] for v in failure["violations"]] == ["project_ready", "connector_validated"]
    assert await state(http, auth) == "SDK_CONNECTED"

    # An integration with a write-only credential, validated for real against the local provider.
    integration = {
        "name": "main",
        "provider_type": "openai",
        "credential": GOOD_KEY,
        "config": {"base_url": provider.base()},
    }
    made = await http.post("/integrations", json=integration, headers=auth)
    assert made.status_code == 201, made.text
    iid = made.json()["data"]["id"]
    assert (await http.post(f"/integrations/{iid}/enable", headers=auth)).json()["data"]["status"] == "enabled"
    tested = await http.post(f"/integrations/{iid}/test", headers=auth)
    assert tested.status_code == 200 and tested.json()["data"]["health_state"] == "healthy", tested.text
    assert any(seen["headers"].get("authorization") == f"Bearer {GOOD_KEY}" for seen in provider.seen)
    still = await http.post("/onboarding/complete", json={}, headers=auth)
    assert still.status_code == 400
    assert still.json()["message"] == "Activation predicate failed: missing ['project_ready']"
    assert await state(http, auth) == "SDK_CONNECTED"

    # The last piece of evidence: a project. Onboarding promotes the tenant (SPEC 0.6) or Finalize does.
    project = await http.post("/accounts/projects", json={"name": "web"}, headers=auth)
    assert project.status_code == 201, project.text
    done = await http.post("/onboarding/complete", json={}, headers=auth)
    assert done.status_code == 200, done.text
    result = done.json()
    assert result["success"] is True and result["to_state"] == "COMPLETE"
    assert await state(http, auth) == "COMPLETE"

    # Scenario 32: exactly one transition to COMPLETE, from SDK_CONNECTED; a repeat is a no-op.
    again = await http.post("/onboarding/complete", json={}, headers=auth)
    assert again.status_code == 200 and again.json()["was_no_op"] is True
    assert again.json()["to_state"] == "COMPLETE"
    ladder = await transitions(engines, tenant)
    assert [(e["payload"]["from_state"], e["payload"]["to_state"]) for e in ladder] == [
        ("CREATED", "IDENTITY_VERIFIED"),
        ("IDENTITY_VERIFIED", "API_KEY_CREATED"),
        ("API_KEY_CREATED", "SDK_CONNECTED"),
        ("SDK_CONNECTED", "COMPLETE"),
    ]
    assert ladder[-1]["schema_version"] == "1.0.0"
    final = (await http.get("/onboarding/status", headers=auth)).json()
    assert final["is_complete"] is True and final["next_action"] is None and final["blocked_capabilities"] == []


async def test_revoked_key_is_refused_at_the_edge_and_listed_as_revoked(
    http: httpx.AsyncClient, gateway: Gateway
) -> None:
    """Scenario 14."""
    _, auth = await signup(http, gateway)
    created = await new_key(http, auth)
    key, key_id = {"x-aos-key": created["key"]}, created["id"]
    assert (await http.get("/onboarding/status", headers=key)).status_code == 200  # warm the gate's cache

    revoked = await http.delete(f"/tenant/api-keys/{key_id}", params={"reason": "x"}, headers=auth)
    assert revoked.status_code == 200, revoked.text

    async def refused() -> httpx.Response | None:
        reply = await http.get("/onboarding/status", headers=key)
        return reply if reply.status_code == 401 else None

    started = time.monotonic()
    reply = await eventually(refused, within=3.0, what="the revoked key refused")
    assert time.monotonic() - started < 1.5  # honoured within ~1 s, warm caches included
    assert reply.json() == INVALID  # no hint that it was revoked
    detail = (await http.get(f"/api-keys/{key_id}", headers=auth)).json()
    assert detail["status"] == "REVOKED" and detail["revoked_reason"] == "x" and detail["revoked_at"]
    listed = (await http.get("/api-keys", params={"status": "revoked"}, headers=auth)).json()
    assert [(k["key_id"], k["status"]) for k in listed["items"]] == [(key_id, "REVOKED")]
    assert (await http.get("/tenant/api-keys", headers=auth)).json() == []  # a bare array (SPEC 2.4)
    every = (await http.get("/tenant/api-keys", params={"include_revoked": "true"}, headers=auth)).json()
    assert [(k["id"], k["status"]) for k in every] == [(key_id, "revoked")]


async def test_expired_key_is_refused(
    http: httpx.AsyncClient, gateway: Gateway, engines: dict[str, AsyncEngine]
) -> None:
    """Scenario 15: expiry is set in the past directly (nobody waits a day), before the key's first use."""
    _, auth = await signup(http, gateway)
    expired, fresh = await new_key(http, auth, "old"), await new_key(http, auth, "new")
    async with engines["api_keys"].begin() as conn:
        await conn.execute(
            text("UPDATE api_key SET expires_at = now() - interval '1 minute' WHERE id = :id"), {"id": expired["id"]}
        )
    refused = await http.get("/onboarding/status", headers={"x-aos-key": expired["key"]})
    assert refused.status_code == 401 and refused.json() == INVALID
    assert (await http.get("/onboarding/status", headers={"x-aos-key": fresh["key"]})).status_code == 200


async def test_credentials_are_one_or_the_other(http: httpx.AsyncClient, gateway: Gateway) -> None:
    """Scenario 16 with a real key and a real token."""
    _, auth = await signup(http, gateway)
    key = {"x-aos-key": (await new_key(http, auth))["key"]}
    both = await http.get("/onboarding/status", headers=auth | key)
    assert both.status_code == 400 and both.json()["error"] == "mixed_auth"
    none = await http.get("/onboarding/status")
    assert none.status_code == 401 and none.json()["error"] == "missing_auth"
    assert (await http.get("/onboarding/status", headers=key)).status_code == 200
    assert (await http.get("/onboarding/status", headers=auth)).status_code == 200


async def test_another_tenants_key_cannot_be_revoked_and_keeps_working(
    http: httpx.AsyncClient, gateway: Gateway
) -> None:
    """Scenario 17."""
    victim_tenant, victim = await signup(http, gateway)
    created = await new_key(http, victim)
    _, attacker = await signup(http, gateway)
    unknown = await http.delete(f"/tenant/api-keys/{uuid.uuid4()}", headers=attacker)
    theirs = await http.delete(f"/tenant/api-keys/{created['id']}", headers=attacker)
    assert theirs.status_code == unknown.status_code == 404
    assert theirs.json()["message"] == unknown.json()["message"]  # indistinguishable from an unknown id
    await asyncio.sleep(CACHE)  # a revoke, had it happened, would have reached every cache by now
    still = await http.get("/onboarding/status", headers={"x-aos-key": created["key"]})
    assert still.status_code == 200 and still.json()["tenant_id"] == victim_tenant
    assert (await http.get(f"/api-keys/{created['id']}", headers=victim)).json()["status"] == "ACTIVE"


def _bad_keys(real: str) -> dict[str, bytes]:
    unknown = keyfmt.issue().secret  # well formed, right checksum, never stored
    last = real[-1]
    wrong_checksum = real[:-1] + ("A" if last != "A" else "B")
    return {
        "unknown": unknown.encode(),
        "malformed": b"not-a-key",
        "truncated": real[:-3].encode(),
        "wrong_checksum": wrong_checksum.encode(),
        "ten_kb": ("aos_" + "A" * 10_240).encode(),
        "non_ascii": ("aos_" + "é" * 40 + real[-6:]).encode(),
    }


@pytest.mark.parametrize("kind", ["unknown", "malformed", "truncated", "wrong_checksum", "ten_kb", "non_ascii"])
async def test_bad_keys_answer_like_an_unknown_key(http: httpx.AsyncClient, gateway: Gateway, kind: str) -> None:
    _, auth = await signup(http, gateway)
    real = (await new_key(http, auth))["key"]
    reply = await http.get("/onboarding/status", headers=[(b"x-aos-key", _bad_keys(real)[kind])])
    if kind == "ten_kb":  # over the edge's header limit: refused before any check (issue 11), never a 429
        assert reply.status_code == 431 and reply.json()["error"] == "headers_too_large"
        return
    assert reply.status_code == 401, reply.text
    assert reply.json() == INVALID


async def test_a_key_never_reaches_another_tenants_data(http: httpx.AsyncClient, gateway: Gateway) -> None:
    """Issue 5: a key of another tenant's resource, or a spoofed x-aos-tenant-id, reaches nothing."""
    victim_tenant, victim = await signup(http, gateway)
    victim_key = await new_key(http, victim, "victim")
    attacker_tenant, attacker = await signup(http, gateway)
    made = await http.post("/tenant/api-keys", json={"name": "admin", "permissions": ["keys:*"]}, headers=attacker)
    assert made.status_code == 201, made.text
    key = {"x-aos-key": made.json()["key"]}
    spoof = {"x-aos-tenant-id": victim_tenant, "x-tenant-id": victim_tenant}

    own = await http.get("/api-keys", headers=key | spoof)
    assert own.status_code == 200, own.text
    assert own.json()["filters_applied"]["tenant_id"] == attacker_tenant
    assert [k["key_id"] for k in own.json()["items"]] == [made.json()["id"]]
    assert (await http.get(f"/api-keys/{victim_key['id']}", headers=key | spoof)).status_code == 404
    assert (await http.delete(f"/tenant/api-keys/{victim_key['id']}", headers=key | spoof)).status_code == 404
    human_spoof = await http.get("/api-keys", headers=attacker | spoof)
    assert human_spoof.json()["filters_applied"]["tenant_id"] == attacker_tenant
    status = await http.get("/onboarding/status", headers=key | spoof)
    assert status.json()["tenant_id"] == attacker_tenant

    await asyncio.sleep(CACHE)
    victim_view = (await http.get(f"/api-keys/{victim_key['id']}", headers=victim)).json()
    assert victim_view["status"] == "ACTIVE"
    assert (await http.get("/onboarding/status", headers={"x-aos-key": victim_key["key"]})).status_code == 200
