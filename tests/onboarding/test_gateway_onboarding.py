"""The edge gate and the onboarding REST surface through real Envoy: legacy bodies, the state gate,
API keys verified at the edge (fake api_keys), and the founder endpoints."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aos.onboarding.v1 import onboarding_pb2 as pb
from aos.onboarding.v1 import onboarding_service_pb2 as rpc
from aos.onboarding.v1 import onboarding_service_pb2_grpc
from cli import devauth
from tests.conftest import Gateway, eventually, service
from tests.onboarding.conftest import FakeApiKeys, FakeIntegrations, Onboarding, onboarding_events, set_state, state_of
from tests.onboarding.test_transitions import new_tenant

pytestmark = pytest.mark.e2e
# The gate's caches live GATE_CACHE_SECONDS here (1 s by default): a change behind them shows within this.
FRESH_WITHIN = 1.1
# Signs up every tenant of this module, so it is their owner (a user may belong to many tenants); the gate
# reads that from account's members table, never from the token.
OWNER = "onb-owner"


@pytest.fixture
async def rest(onb_gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=onb_gateway.url, timeout=10) as client:
        yield client


async def keyed_tenant(account: Any, onb: Onboarding, keys: FakeApiKeys, state: int) -> tuple[str, dict[str, str]]:
    """A tenant put at `state` before the gate first sees it, and one of its API keys."""
    tenant = await new_tenant(account, OWNER)
    await set_state(onb, tenant, state)
    secret, _ = keys.issue(tenant)
    return tenant, {"x-aos-key": secret}


async def test_status_after_the_first_human_call(
    rest: httpx.AsyncClient, onb_gateway: Gateway, account: Any, onb: Onboarding
) -> None:
    tenant = await new_tenant(account, OWNER)
    reply = await rest.get("/onboarding/status", headers=onb_gateway.token(OWNER, tenant=tenant))
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT.*Z", body.pop("timestamp"))
    assert body == {
        "tenant_id": tenant,
        "current_state": "IDENTITY_VERIFIED",
        "state_value": 1,
        "is_complete": False,
        "step_index": 1,
        "total_steps": 5,
        "next_action": {"action_id": "create_api_key", "action_type": "credential_setup"},
        "allowed_capabilities": ["api_key_management"],
        "blocked_capabilities": [
            "policy_management",
            "agent_execution",
            "run_management",
            "sdk_connection",
            "guard_access",
            "billing",
            "limits",
        ],
    }
    (event,) = await onboarding_events(onb, tenant, "onboarding.state.transition")
    assert event["payload"]["trigger"] == "first_human_auth" and event["actor_type"] == "user"
    await set_state(onb, tenant, 4)
    status = await eventually(
        lambda: rest.get("/onboarding/status", headers=onb_gateway.token(OWNER, tenant=tenant)),
        until=lambda reply: reply.json()["current_state"] == "COMPLETE",
        within=FRESH_WITHIN,
        what="status COMPLETE",
    )
    done = status.json()
    assert done["is_complete"] is True and done["next_action"] is None and done["blocked_capabilities"] == []


async def test_unverified_email_does_not_verify_and_verify_repeats_as_a_no_op(
    rest: httpx.AsyncClient, onb_gateway: Gateway, account: Any, onb: Onboarding
) -> None:
    tenant = await new_tenant(account, OWNER)
    unverified = devauth.mint(
        onb_gateway.data_dir, user=OWNER, email="u1@example.com", org=tenant, email_verified=False
    )
    auth = {"authorization": f"Bearer {unverified}"}
    status = (await rest.get("/onboarding/status", headers=auth)).json()
    assert status["current_state"] == "CREATED" and status["next_action"]["action_id"] == "enter_console"
    refused = (await rest.post("/onboarding/verify", json={}, headers=auth)).json()
    assert refused["verified"] is False and refused["current_state"] == "CREATED"
    verified = onb_gateway.token(OWNER, tenant=tenant)
    for _ in range(2):
        reply = await rest.post("/onboarding/verify", json={}, headers=verified)
        assert reply.status_code == 200
        assert reply.json() == {
            "verified": True,
            "tenant_id": tenant,
            "current_state": "IDENTITY_VERIFIED",
            "message": "Identity verified successfully",
        }
    assert len(await onboarding_events(onb, tenant, "onboarding.state.transition")) == 1


async def test_state_violations_answer_the_legacy_403(
    rest: httpx.AsyncClient, account: Any, onb: Onboarding, keys: FakeApiKeys
) -> None:
    tenant, key = await keyed_tenant(account, onb, keys, 0)
    reply = await rest.get("/api-keys", headers=key)
    assert reply.status_code == 403
    assert reply.json() == {
        "error": "onboarding_state_violation",
        "current_state": "CREATED",
        "required_state": "IDENTITY_VERIFIED",
        "endpoint": "/api-keys",
    }
    assert await state_of(onb, tenant) == 0  # API-key requests never advance the state
    await set_state(onb, tenant, 2)
    runs = await eventually(
        lambda: rest.get("/runs", headers=key),
        until=lambda reply: reply.json()["current_state"] != "CREATED",
        within=FRESH_WITHIN,
        what="the gate seeing the new state",
    )
    assert runs.status_code == 403 and runs.json()["required_state"] == "SDK_CONNECTED"
    assert runs.json()["current_state"] == "API_KEY_CREATED" and runs.json()["endpoint"] == "/runs"
    await set_state(onb, tenant, 3)
    passed = await eventually(
        lambda: rest.get("/runs", headers=key),
        until=lambda reply: reply.status_code != 403,
        within=FRESH_WITHIN,
        what="the gate letting SDK_CONNECTED through",
    )
    assert passed.status_code == 404 and passed.json()["error"] == "not_found"  # past the gate, no such route
    billing = await rest.get("/billing/invoices", headers=key)
    assert billing.status_code == 403 and billing.json()["required_state"] == "COMPLETE"
    spoofed = await rest.get("/billing/invoices", headers=key | {"x-envoy-original-path": "/onboarding/status"})
    assert spoofed.status_code == 403 and spoofed.json()["endpoint"] == "/billing/invoices"
    unlisted = await rest.get("/no/such/thing", headers=key)
    assert unlisted.status_code == 403 and unlisted.json()["required_state"] == "COMPLETE"


async def test_transcoded_rest_paths_are_gated_with_their_original_path(
    rest: httpx.AsyncClient, account: Any, onb: Onboarding, keys: FakeApiKeys
) -> None:
    _, key = await keyed_tenant(account, onb, keys, 1)
    reply = await rest.post("/sdk/handshake", json={"sdk_version": "1", "sdk_language": "python"}, headers=key)
    assert reply.status_code == 403
    assert reply.json() == {
        "error": "onboarding_state_violation",
        "current_state": "IDENTITY_VERIFIED",
        "required_state": "API_KEY_CREATED",
        "endpoint": "/sdk/handshake",
    }


async def test_infra_paths_are_never_gated(rest: httpx.AsyncClient) -> None:
    for path in ("/health", "/metrics", "/int/anything"):
        reply = await rest.get(path)
        assert reply.status_code == 404, path  # not 401: the gate lets them through (nothing serves them here)


async def test_credentials_are_classified_with_the_legacy_bodies(
    rest: httpx.AsyncClient, onb_gateway: Gateway, account: Any, onb: Onboarding, keys: FakeApiKeys
) -> None:
    tenant, key = await keyed_tenant(account, onb, keys, 1)
    both = await rest.get("/onboarding/status", headers=key | onb_gateway.token(OWNER, tenant=tenant))
    assert both.status_code == 400 and both.json()["error"] == "mixed_auth"
    none = await rest.get("/onboarding/status")
    assert none.status_code == 401 and none.json() == {"error": "missing_auth", "message": "Authentication required"}
    for bad in ("aos_" + "x" * 43, "not-a-key", key["x-aos-key"] + "x"):
        reply = await rest.get("/onboarding/status", headers={"x-aos-key": bad})
        assert reply.status_code == 401
        assert reply.json() == {"error": "api_key_invalid", "message": "Invalid API key"}
    good = await rest.get("/onboarding/status", headers=key)
    assert good.status_code == 200 and good.json()["tenant_id"] == tenant


async def test_a_bad_key_on_a_rest_route_never_reaches_the_service(
    rest: httpx.AsyncClient, account: Any, onb: Onboarding, keys: FakeApiKeys, engines: dict[str, AsyncEngine]
) -> None:
    tenant = await new_tenant(account, OWNER)
    await set_state(onb, tenant, 2)
    reply = await rest.post(
        "/sdk/handshake", json={"sdk_version": "1", "sdk_language": "python"}, headers={"x-aos-key": "aos_" + "b" * 43}
    )
    assert reply.status_code == 401 and reply.json()["error"] == "api_key_invalid"
    async with engines["account"].connect() as conn:
        count = await conn.execute(text("SELECT count(*) FROM sdk_attestation WHERE tenant_id = :t"), {"t": tenant})
        assert count.scalar_one() == 0


async def test_revoked_keys_are_refused_within_a_second(
    rest: httpx.AsyncClient, account: Any, onb: Onboarding, keys: FakeApiKeys, stub: Any
) -> None:
    tenant, key = await keyed_tenant(account, onb, keys, 1)
    assert (await rest.get("/onboarding/status", headers=key)).status_code == 200
    keys.revoke(key["x-aos-key"])
    key_id = keys.keys[key["x-aos-key"]].key_id
    notify = rpc.NotifyEvidenceRequest(tenant_id=tenant, kind=pb.EVIDENCE_KIND_API_KEY_CHANGED, key_id=key_id)
    await stub.NotifyEvidence(notify, metadata=service("api_keys"), timeout=5)
    revoked = await rest.get("/onboarding/status", headers=key)
    assert revoked.status_code == 401 and revoked.json() == {"error": "api_key_invalid", "message": "Invalid API key"}
    # Without any notification, the cached verdict expires within a second.
    secret, _ = keys.issue(tenant)
    assert (await rest.get("/onboarding/status", headers={"x-aos-key": secret})).status_code == 200
    keys.revoke(secret)
    await eventually(
        lambda: rest.get("/onboarding/status", headers={"x-aos-key": secret}),
        until=lambda reply: reply.status_code == 401,
        within=FRESH_WITHIN,
        what="401 for the revoked key",
    )


async def test_the_cache_spares_api_keys_repeated_verifications(
    rest: httpx.AsyncClient, account: Any, onb: Onboarding, keys: FakeApiKeys
) -> None:
    _, key = await keyed_tenant(account, onb, keys, 1)
    before = keys.verify_calls
    for _ in range(5):
        assert (await rest.get("/onboarding/status", headers=key)).status_code == 200
    assert keys.verify_calls - before <= 2


async def test_tenant_comes_only_from_the_principal(
    rest: httpx.AsyncClient, onb_gateway: Gateway, account: Any, onb: Onboarding, keys: FakeApiKeys
) -> None:
    mine, key = await keyed_tenant(account, onb, keys, 1)
    victim = await new_tenant(account, OWNER)
    spoof = {"x-aos-tenant-id": victim, "x-aos-actor-type": "service", "x-aos-actor-id": "account"}
    reply = await rest.get("/onboarding/status", headers=key | spoof)
    assert reply.status_code == 200 and reply.json()["tenant_id"] == mine
    tenantless = await rest.get("/onboarding/status", headers=onb_gateway.token() | spoof)
    assert tenantless.status_code == 403 and tenantless.json()["error"] == "tenant_required"
    anonymous = await rest.get("/onboarding/status", headers=spoof)
    assert anonymous.status_code == 401
    assert await state_of(onb, victim) in (None, 0)


async def test_handshake_through_the_gateway(
    rest: httpx.AsyncClient, onb_gateway: Gateway, account: Any, onb: Onboarding, keys: FakeApiKeys
) -> None:
    tenant, key = await keyed_tenant(account, onb, keys, 2)
    body = {"sdk_version": "1.2.0", "sdk_language": "python", "client_id": "c1"}
    reply = await rest.post("/sdk/handshake", json=body, headers=key)
    assert reply.status_code == 200, reply.text
    shaken = reply.json()
    assert shaken.pop("timestamp")
    assert shaken == {
        "success": True,
        "message": "SDK handshake successful",
        "server_version": "1.0.0",
        "tenant_id": tenant,
        "onboarding_state": "SDK_CONNECTED",
    }
    missing = await rest.post("/sdk/handshake", json={"sdk_version": "1.2.0"}, headers=key)
    assert missing.status_code == 422 and "sdk_language" in missing.json()["message"]
    human = await rest.post("/sdk/handshake", json=body, headers=onb_gateway.token(OWNER, tenant=tenant))
    assert human.status_code == 403 and human.json()["error"] == "forbidden"


async def test_complete_through_the_gateway(
    rest: httpx.AsyncClient,
    onb_gateway: Gateway,
    account: Any,
    onb: Onboarding,
    keys: FakeApiKeys,
    connectors: FakeIntegrations,
) -> None:
    tenant, key = await keyed_tenant(account, onb, keys, 2)
    auth = onb_gateway.token(OWNER, tenant=tenant)
    assert (await rest.post("/accounts/projects", json={"name": "web"}, headers=auth)).status_code == 201
    body = {"sdk_version": "1.2.0", "sdk_language": "python"}
    assert (await rest.post("/sdk/handshake", json=body, headers=key)).status_code == 200
    failed = await rest.post("/onboarding/complete", json={}, headers=auth)
    assert failed.status_code == 400
    error = failed.json()
    assert error["message"] == "Activation predicate failed: missing ['connector_validated']"
    failure = next(d for d in error["details"] if d["@type"].endswith("PreconditionFailure"))
    assert [v["subject"] for v in failure["violations"]] == ["connector_validated"]
    info = next(d for d in error["details"] if d["@type"].endswith("ErrorInfo"))
    assert info["reason"] == "ACTIVATION_INCOMPLETE"
    connectors.validated.add(tenant)
    done = await rest.post("/onboarding/complete", json={}, headers=auth)
    assert done.status_code == 200
    assert done.json()["to_state"] == "COMPLETE"
    assert (await rest.get("/billing/invoices", headers=key)).status_code == 404  # the gate lets COMPLETE through


async def test_native_grpc_through_the_gateway_with_a_key(
    onb_gateway: Gateway, account: Any, onb: Onboarding, keys: FakeApiKeys
) -> None:
    tenant, key = await keyed_tenant(account, onb, keys, 1)
    async with grpc.aio.insecure_channel(onb_gateway.url.removeprefix("http://")) as channel:
        edge = onboarding_service_pb2_grpc.OnboardingServiceStub(channel)
        md = (("x-aos-key", key["x-aos-key"]),)
        status = await edge.GetOnboardingStatus(rpc.GetOnboardingStatusRequest(), metadata=md, timeout=5)
        assert status.tenant_id == tenant and status.current_state == "IDENTITY_VERIFIED"
        with pytest.raises(grpc.aio.AioRpcError) as internal:
            notify = rpc.NotifyEvidenceRequest(tenant_id=tenant, kind=pb.EVIDENCE_KIND_API_KEY_CREATED)
            await edge.NotifyEvidence(notify, metadata=md, timeout=5)
        assert internal.value.code() is grpc.StatusCode.UNIMPLEMENTED
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await edge.GetOnboardingStatus(
                rpc.GetOnboardingStatusRequest(), metadata=(("x-aos-key", "nope"),), timeout=5
            )
        assert bad.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert await state_of(onb, tenant) == 1


async def test_sdk_instructions(rest: httpx.AsyncClient, account: Any, onb: Onboarding, keys: FakeApiKeys) -> None:
    tenant, key = await keyed_tenant(account, onb, keys, 1)
    body = (await rest.get("/sdk/instructions", headers=key)).json()
    assert body["tenant_id"] == tenant and body["websocket_url"] is None
    assert body["api_base_url"] and body["docs_url"] and "handshake" in body["example_code"]


async def test_founder_force_complete(
    rest: httpx.AsyncClient, onb_gateway: Gateway, account: Any, onb: Onboarding
) -> None:
    tenant = await new_tenant(account, OWNER)
    founder = onb_gateway.token("founder-1", operator=True, email="f@aos.dev")
    reason = "customer escalation #42"
    customer = await rest.post(
        "/fdr/onboarding/force-complete",
        json={"tenant_id": tenant, "reason": reason},
        headers=onb_gateway.token(OWNER, tenant=tenant),
    )
    assert customer.status_code == 403 and customer.json()["message"] == "Founder access required"
    short = await rest.post(
        "/fdr/onboarding/force-complete", json={"tenant_id": tenant, "reason": "short"}, headers=founder
    )
    assert short.status_code == 422
    ghost = str(uuid.uuid4())
    unknown = await rest.post(
        "/fdr/onboarding/force-complete", json={"tenant_id": ghost, "reason": reason}, headers=founder
    )
    assert unknown.status_code == 404 and unknown.json()["message"] == f"Tenant {ghost} not found"
    assert await state_of(onb, tenant) in (None, 0)
    done = await rest.post(
        "/fdr/onboarding/force-complete", json={"tenant_id": tenant, "reason": reason}, headers=founder
    )
    assert done.status_code == 200, done.text
    body = done.json()
    assert (body["success"], body["from_state"], body["to_state"]) == (True, "CREATED", "COMPLETE")
    assert re.fullmatch(rf"audit_onb_{tenant}_\d+", body["audit_id"]) and body["actor_email"] == "f@aos.dev"
    async with onb.engine.connect() as conn:
        audit = (await conn.execute(text("SELECT * FROM onboarding_audit WHERE tenant_id = :t"), {"t": tenant})).one()
        moved = (
            await conn.execute(text("SELECT * FROM onboarding_transition WHERE tenant_id = :t"), {"t": tenant})
        ).one()
    assert audit.audit_id == body["audit_id"] and audit.missing == [
        "project_ready",
        "key_ready",
        "connector_validated",
        "sdk_attested",
    ]
    assert audit.created_at <= moved.created_at and moved.trigger == "founder_force_complete:f@aos.dev"
    forced = await onboarding_events(onb, tenant, "onboarding.force_completed")
    assert len(forced) == 1 and forced[0]["actor_type"] == "founder"
    before = len(await onboarding_events(onb, tenant))
    again = await rest.post(
        "/fdr/onboarding/force-complete", json={"tenant_id": tenant, "reason": reason}, headers=founder
    )
    assert again.status_code == 200 and again.json()["audit_id"] == "no_op"
    assert again.json()["from_state"] == again.json()["to_state"] == "COMPLETE"
    assert len(await onboarding_events(onb, tenant)) == before


async def test_founder_stalled_list(
    rest: httpx.AsyncClient, onb_gateway: Gateway, account: Any, onb: Onboarding
) -> None:
    stalled, fresh, finished = [await new_tenant(account, OWNER) for _ in range(3)]
    await set_state(onb, stalled, 1)
    await set_state(onb, fresh, 1)
    await set_state(onb, finished, 4)
    async with onb.engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE onboarding_state SET tenant_created_at = now() - interval '25 hours' "
                "WHERE tenant_id IN (:a, :b)"
            ),
            {"a": stalled, "b": finished},
        )
    founder = onb_gateway.token("founder-1", operator=True)
    reply = await rest.get("/fdr/onboarding/stalled", params={"threshold_hours": 24}, headers=founder)
    assert reply.status_code == 200
    data = reply.json()["data"]
    assert data["threshold_hours"] == 24
    listed = {t["tenant_id"]: t for t in data["tenants"]}
    assert stalled in listed and fresh not in listed and finished not in listed
    assert listed[stalled]["current_state"] == "IDENTITY_VERIFIED" and listed[stalled]["hours_stalled"] == 25.0
    assert data["stalled_count"] == len(data["tenants"])
    customer = await rest.get("/fdr/onboarding/stalled", headers=onb_gateway.token(OWNER, tenant=stalled))
    assert customer.status_code == 403


async def test_every_failing_verdict_is_the_same_401(
    rest: httpx.AsyncClient, account: Any, onb: Onboarding, keys: FakeApiKeys
) -> None:
    from aos.api_keys.v1 import api_keys_service_pb2 as keys_rpc

    tenant, _ = await keyed_tenant(account, onb, keys, 1)
    for code in ("EXPIRED", "DISABLED", "TENANT_INACTIVE", "REVOKED"):
        secret, _ = keys.issue(tenant)
        keys.keys[secret].code = keys_rpc.VerifyCode.Value(f"VERIFY_CODE_{code}")
        reply = await rest.get("/onboarding/status", headers={"x-aos-key": secret})
        assert reply.status_code == 401, code
        assert reply.json() == {"error": "api_key_invalid", "message": "Invalid API key"}, code


async def test_a_key_never_reaches_another_tenants_project(
    rest: httpx.AsyncClient, onb_gateway: Gateway, account: Any, onb: Onboarding, keys: FakeApiKeys
) -> None:
    victim = await new_tenant(account, OWNER)
    secret_project = await rest.post(
        "/accounts/projects", json={"name": "secret"}, headers=onb_gateway.token(OWNER, tenant=victim)
    )
    project_id = secret_project.json()["project_id"]
    attacker = await new_tenant(account, OWNER)
    await set_state(onb, attacker, 1)
    secret, _ = keys.issue(attacker, scopes=("projects:read",))
    key = {"x-aos-key": secret}
    assert (await rest.get(f"/accounts/projects/{project_id}", headers=key)).status_code == 404
    spoof = {"x-aos-tenant-id": victim}
    assert (await rest.get(f"/accounts/projects/{project_id}", headers=key | spoof)).status_code == 404
    listed = await rest.get("/accounts/projects", headers=key | spoof)
    assert listed.status_code == 200 and listed.json()["items"] == []
    unscoped, _ = keys.issue(attacker)
    refused = await rest.get("/accounts/projects", headers={"x-aos-key": unscoped})
    assert refused.status_code == 403 and "projects:read" in refused.json()["message"]


async def test_api_keys_down_fails_closed_at_the_edge(
    rest: httpx.AsyncClient, onb_gateway: Gateway, account: Any, onb: Onboarding, keys: FakeApiKeys, api_keys: Any
) -> None:
    tenant, key = await keyed_tenant(account, onb, keys, 1)
    await api_keys.stop()
    try:
        reply = await rest.get("/onboarding/status", headers=key)
        assert reply.status_code == 503 and "api_keys" in reply.json()["message"]
        human = await rest.get("/onboarding/status", headers=onb_gateway.token(OWNER, tenant=tenant))
        assert human.status_code == 200
    finally:
        await api_keys.start()
    fresh, _ = keys.issue(tenant)  # not cached: needs api_keys again, reachable within its reconnect backoff
    await eventually(
        lambda: rest.get("/onboarding/status", headers={"x-aos-key": fresh}),
        until=lambda reply: reply.status_code == 200,
        within=5.0,
        every=0.1,
        what="api_keys reachable again after its restart",
    )
