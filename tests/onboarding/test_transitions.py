"""Verify, key, handshake, finalize and their no-ops, called over gRPC on the real onboarding server
(real PostgreSQL, the real account service, fake api_keys and integrations)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import uuid
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aos.account.v1 import account_pb2
from aos.account.v1 import account_service_pb2 as account_rpc
from aos.events.v1 import events_service_pb2
from aos.onboarding.v1 import onboarding_pb2 as pb
from aos.onboarding.v1 import onboarding_service_pb2 as rpc
from services.common import events
from tests.conftest import eventually, human, service
from tests.onboarding.conftest import FakeApiKeys, FakeIntegrations, Onboarding, onboarding_events, set_state, state_of


def key(tenant: str, key_id: str = "key-1") -> tuple[tuple[str, str], ...]:
    """Caller metadata as the gate sets it for an API key."""
    return (
        ("x-aos-actor-type", "api_key"),
        ("x-aos-actor-id", key_id),
        ("x-aos-tenant-id", tenant),
        ("x-aos-scopes", "run:*,read:*"),
    )


async def new_tenant(account: Any, owner: str = "") -> str:
    """A tenant signed up through account by a new user, who becomes its owner; a given `owner` is made an
    owner too, through AddMember (signing up every test's tenant as one user would meet the signup limit)."""
    founder = f"founder-{uuid.uuid4().hex[:8]}"
    reply = await account.CreateTenant(
        account_rpc.CreateTenantRequest(name=f"T {uuid.uuid4().hex[:6]}"), metadata=human(user=founder), timeout=5
    )
    tenant = str(reply.tenant.tenant_id)
    if owner:
        member = account_rpc.AddMemberRequest(user_id=owner, email=f"{owner}@example.com", role=account_pb2.ROLE_OWNER)
        await account.AddMember(member, metadata=human(tenant, user=founder), timeout=5)
    return tenant


def _position(token: str) -> tuple[int, int]:
    txid, position = base64.urlsafe_b64decode(token.encode()).decode().split(":")
    return int(txid), int(position)


async def account_events_applied(onb: Onboarding, within: float = 10.0) -> None:
    """Waits until onboarding's consumer has applied every event account has committed so far, so that a
    test's next step does not race an automatic promotion."""
    token = ""
    while True:
        request = events_service_pb2.ListEventsRequest(page_size=1000, page_token=token)
        page = await onb.account_events.ListEvents(request, metadata=service(), timeout=5)
        token = page.next_page_token
        if not page.events:
            break

    async def account_cursor_caught_up() -> bool:
        async with onb.engine.connect() as conn:
            saved = await conn.execute(text("SELECT page_token FROM event_cursor WHERE source = 'account'"))
            cursor = saved.scalar_one_or_none()
        return bool(cursor) and _position(cursor) >= _position(token)

    await eventually(account_cursor_caught_up, within=within)


async def ready(account: Any, stub: Any, keys: FakeApiKeys, connectors: FakeIntegrations, onb: Onboarding) -> str:
    """A tenant at SDK_CONNECTED with every piece of evidence but (unless added) the connector."""
    tenant = await new_tenant(account)
    await account.CreateProject(account_rpc.CreateProjectRequest(name="p"), metadata=human(tenant), timeout=5)
    keys.issue(tenant)
    await set_state(onb, tenant, 2)
    handshake = rpc.SdkHandshakeRequest(sdk_version="1.2.0", sdk_language="python", client_id="c1")
    reply = await stub.SdkHandshake(handshake, metadata=key(tenant), timeout=5)
    assert reply.onboarding_state == "SDK_CONNECTED"
    await account_events_applied(onb)
    return tenant


def preconditions(err: grpc.aio.AioRpcError) -> list[str]:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    subjects = []
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.PreconditionFailure.DESCRIPTOR):
            failure = error_details_pb2.PreconditionFailure()
            detail.Unpack(failure)
            subjects += [v.subject for v in failure.violations]
    return subjects


async def test_verify_advances_once_and_repeats_as_a_no_op(stub: Any, account: Any, onb: Onboarding) -> None:
    tenant = await new_tenant(account)
    first = await stub.VerifyIdentity(rpc.VerifyIdentityRequest(), metadata=human(tenant), timeout=5)
    assert first.verified and first.current_state == "IDENTITY_VERIFIED"
    assert first.message == "Identity verified successfully"
    again = await stub.VerifyIdentity(rpc.VerifyIdentityRequest(), metadata=human(tenant), timeout=5)
    assert again.verified and again.current_state == "IDENTITY_VERIFIED"
    transitions = await onboarding_events(onb, tenant, "onboarding.state.transition")
    assert len(transitions) == 1
    assert transitions[0]["payload"] == {
        "from_state": "CREATED",
        "to_state": "IDENTITY_VERIFIED",
        "trigger": "first_human_auth",
    }
    async with onb.engine.connect() as conn:
        rows = (
            await conn.execute(text("SELECT * FROM onboarding_transition WHERE tenant_id = :t"), {"t": tenant})
        ).all()
    assert len(rows) == 1 and rows[0].event_id == str(transitions[0]["event_id"])


async def test_first_key_advances_through_notify_and_advance_requires_a_key(
    stub: Any, account: Any, onb: Onboarding, keys: FakeApiKeys
) -> None:
    tenant = await new_tenant(account)
    await set_state(onb, tenant, 1)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.AdvanceApiKey(rpc.AdvanceApiKeyRequest(), metadata=human(tenant), timeout=5)
    assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert await state_of(onb, tenant) == 1
    keys.issue(tenant)
    notify = rpc.NotifyEvidenceRequest(tenant_id=tenant, kind=pb.EVIDENCE_KIND_API_KEY_CREATED)
    reply = await stub.NotifyEvidence(notify, metadata=service("api_keys"), timeout=5)
    assert reply.current_state == "API_KEY_CREATED" and reply.transitioned
    advanced = await stub.AdvanceApiKey(rpc.AdvanceApiKeyRequest(), metadata=human(tenant), timeout=5)
    assert advanced.success and advanced.data.was_no_op and advanced.data.to_state == "API_KEY_CREATED"
    (event,) = await onboarding_events(onb, tenant, "onboarding.state.transition")
    assert event["payload"]["trigger"] == "first_api_key_created"


async def test_handshake_records_the_attestation_through_account(
    stub: Any, account: Any, onb: Onboarding, keys: FakeApiKeys, engines: dict[str, AsyncEngine]
) -> None:
    tenant = await new_tenant(account)
    await set_state(onb, tenant, 2)
    request = rpc.SdkHandshakeRequest(sdk_version="1.2.0", sdk_language="python", client_id="c1")
    reply = await stub.SdkHandshake(request, metadata=key(tenant), timeout=5)
    assert reply.success and reply.server_version == "1.0.0" and reply.onboarding_state == "SDK_CONNECTED"
    assert reply.message == "SDK handshake successful" and reply.tenant_id == tenant
    await stub.SdkHandshake(request, metadata=key(tenant), timeout=5)
    newer = rpc.SdkHandshakeRequest(sdk_version="1.3.0", sdk_language="python", client_id="c1")
    await stub.SdkHandshake(newer, metadata=key(tenant), timeout=5)
    async with engines["account"].connect() as conn:
        hashes = (
            await conn.execute(
                text("SELECT attestation_hash FROM sdk_attestation WHERE tenant_id = :t ORDER BY id"), {"t": tenant}
            )
        ).scalars()
        assert list(hashes) == [
            hashlib.sha256(f"{tenant}:1.2.0:python:c1".encode()).hexdigest()[:32],
            hashlib.sha256(f"{tenant}:1.3.0:python:c1".encode()).hexdigest()[:32],
        ]
    transitions = await onboarding_events(onb, tenant, "onboarding.state.transition")
    assert [(e["payload"]["trigger"], e["actor_type"]) for e in transitions] == [("first_sdk_handshake", "sdk")]


@pytest.mark.parametrize("missing", ["sdk_version", "sdk_language"])
async def test_handshake_without_version_or_language_is_invalid(
    stub: Any, account: Any, onb: Onboarding, missing: str
) -> None:
    tenant = await new_tenant(account)
    await set_state(onb, tenant, 2)
    fields = {"sdk_version": "1.0", "sdk_language": "python"} | {missing: ""}
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.SdkHandshake(rpc.SdkHandshakeRequest(**fields), metadata=key(tenant), timeout=5)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT and missing in (caught.value.details() or "")
    assert await state_of(onb, tenant) == 2


async def test_handshake_fails_when_account_refuses_and_nothing_advances(stub: Any, onb: Onboarding) -> None:
    ghost = str(uuid.uuid4())  # account knows no such tenant: the attestation cannot be written
    await set_state(onb, ghost, 2)
    request = rpc.SdkHandshakeRequest(sdk_version="1.0", sdk_language="go")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.SdkHandshake(request, metadata=key(ghost), timeout=5)
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND
    assert await state_of(onb, ghost) == 2


async def test_finalize_names_what_is_missing_in_the_fixed_order(
    stub: Any, account: Any, onb: Onboarding, keys: FakeApiKeys, connectors: FakeIntegrations
) -> None:
    tenant = await ready(account, stub, keys, connectors, onb)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CompleteOnboarding(rpc.CompleteOnboardingRequest(), metadata=human(tenant), timeout=5)
    assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert caught.value.details() == "Activation predicate failed: missing ['connector_validated']"
    assert preconditions(caught.value) == ["connector_validated"]
    assert await state_of(onb, tenant) == 3
    keys.valid_tenants.discard(tenant)  # every key revoked
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await stub.CompleteOnboarding(rpc.CompleteOnboardingRequest(), metadata=human(tenant), timeout=5)
    assert preconditions(again.value) == ["key_ready", "connector_validated"]
    evaluated = await onboarding_events(onb, tenant, "onboarding.activation.evaluated")
    assert [e["payload"]["missing"] for e in evaluated] == [
        ["connector_validated"],
        ["key_ready", "connector_validated"],
    ]


async def test_finalize_completes_once_and_then_is_a_no_op(
    stub: Any, account: Any, onb: Onboarding, keys: FakeApiKeys, connectors: FakeIntegrations
) -> None:
    tenant = await ready(account, stub, keys, connectors, onb)
    connectors.validated.add(tenant)
    done = await stub.CompleteOnboarding(rpc.CompleteOnboardingRequest(), metadata=human(tenant), timeout=5)
    assert (done.from_state, done.to_state, done.was_no_op) == ("SDK_CONNECTED", "COMPLETE", False)
    assert [(r.name, r.status, r.source) for r in done.requirements] == [
        ("project_ready", "met", "account"),
        ("key_ready", "met", "api_keys"),
        ("connector_validated", "met", "integrations"),
        ("sdk_attested", "met", "account"),
    ]
    again = await stub.CompleteOnboarding(rpc.CompleteOnboardingRequest(), metadata=human(tenant), timeout=5)
    assert again.was_no_op and again.to_state == "COMPLETE"
    complete = [
        e
        for e in await onboarding_events(onb, tenant, "onboarding.state.transition")
        if e["payload"]["to_state"] == "COMPLETE"
    ]
    assert len(complete) == 1
    assert complete[0]["payload"]["from_state"] == "SDK_CONNECTED" and complete[0]["schema_version"] == "1.0.0"
    # A COMPLETE tenant never moves back: every lower advance is a successful no-op.
    before = len(await onboarding_events(onb, tenant))
    verified = await stub.VerifyIdentity(rpc.VerifyIdentityRequest(), metadata=human(tenant), timeout=5)
    assert verified.current_state == "COMPLETE"
    notify = rpc.NotifyEvidenceRequest(tenant_id=tenant, kind=pb.EVIDENCE_KIND_API_KEY_CREATED)
    assert (await stub.NotifyEvidence(notify, metadata=service(), timeout=5)).current_state == "COMPLETE"
    handshake = rpc.SdkHandshakeRequest(sdk_version="9", sdk_language="python")
    assert (await stub.SdkHandshake(handshake, metadata=key(tenant), timeout=5)).onboarding_state == "COMPLETE"
    assert len(await onboarding_events(onb, tenant)) == before and await state_of(onb, tenant) == 4


async def test_twenty_concurrent_finalizes_write_one_transition_and_one_event(
    stub: Any, account: Any, onb: Onboarding, keys: FakeApiKeys, connectors: FakeIntegrations
) -> None:
    tenant = await ready(account, stub, keys, connectors, onb)
    connectors.validated.add(tenant)
    replies = await asyncio.gather(
        *(
            stub.CompleteOnboarding(rpc.CompleteOnboardingRequest(), metadata=human(tenant), timeout=10)
            for _ in range(20)
        )
    )
    assert sorted(r.was_no_op for r in replies) == [False] + [True] * 19
    assert {r.to_state for r in replies} == {"COMPLETE"}
    async with onb.engine.connect() as conn:
        count = await conn.execute(
            text("SELECT count(*) FROM onboarding_transition WHERE tenant_id = :t AND to_state = 4"), {"t": tenant}
        )
        assert count.scalar_one() == 1
    complete = [
        e
        for e in await onboarding_events(onb, tenant, "onboarding.state.transition")
        if e["payload"]["to_state"] == "COMPLETE"
    ]
    assert len(complete) == 1


async def test_evidence_arriving_at_sdk_connected_promotes_automatically(
    stub: Any, account: Any, onb: Onboarding, keys: FakeApiKeys, connectors: FakeIntegrations
) -> None:
    tenant = await ready(account, stub, keys, connectors, onb)
    connectors.validated.add(tenant)
    notify = rpc.NotifyEvidenceRequest(tenant_id=tenant, kind=pb.EVIDENCE_KIND_CONNECTOR_CHANGED)
    reply = await stub.NotifyEvidence(notify, metadata=service("integrations"), timeout=5)
    # (the account event consumer may promote first; either way exactly one promotion happens)
    assert reply.current_state == "COMPLETE"
    (last,) = [
        e
        for e in await onboarding_events(onb, tenant, "onboarding.state.transition")
        if e["payload"]["to_state"] == "COMPLETE"
    ]
    assert last["payload"]["trigger"] == "activation_evidence_complete" and last["actor_type"] == "system"


async def test_every_onboarding_event_is_a_valid_envelope_with_increasing_sequence(
    stub: Any, account: Any, onb: Onboarding, keys: FakeApiKeys, connectors: FakeIntegrations
) -> None:
    tenant = await ready(account, stub, keys, connectors, onb)
    connectors.validated.add(tenant)
    await stub.CompleteOnboarding(rpc.CompleteOnboardingRequest(), metadata=human(tenant), timeout=5)
    rows = await onboarding_events(onb, tenant)
    assert len(rows) >= 3
    for row in rows:
        envelope = {f: row[f] for f in events.REQUIRED} | {"event_id": str(row["event_id"])}
        assert events.validate(envelope) == [], row
        assert row["decision_owner"] == "onboarding" and row["project_id"] == "__system__"
    sequence = [r["sequence_no"] for r in rows]
    assert sequence == sorted(sequence) and len(set(sequence)) == len(sequence) and sequence[0] >= 1
