"""The gate's remembered approvals: a repeated request is answered from the approval made for the same route and
credentials, but only while every input it was made from is still the one cached, so what drops those (a revoked
key, a changed membership) drops it too, and two tokens of one user are never mistaken for each other."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from envoy.service.auth.v3 import external_auth_pb2

from aos.account.v1 import account_pb2 as pb
from aos.account.v1 import account_service_pb2 as rpc
from services.common import db
from services.onboarding import identity, states
from services.onboarding.clients import Clients
from services.onboarding.gate import Gate
from services.onboarding.keyguard import KeyGuard
from services.onboarding.policy import State
from tests.conftest import human, identity_of
from tests.onboarding.conftest import FakeApiKeys, FakePeer, Onboarding, set_state
from tests.onboarding.test_transitions import new_tenant

STATUS = "/aos.onboarding.v1.OnboardingService/GetOnboardingStatus"


@asynccontextmanager
async def gate_of(onb: Onboarding, api_keys: FakePeer) -> AsyncIterator[Gate]:
    """The gate as onboarding builds it, over real account and the fake api_keys, with long cache lifetimes:
    only the drops under test end an approval."""
    clients = Clients(onb.settings.account_addr, f"127.0.0.1:{api_keys.port}", "", 1.0, identity_of("onboarding"))
    sessions = db.sessionmaker(onb.engine)
    guard = KeyGuard(
        clients.verify_key,
        clients.record_key_usage,
        cache_seconds=3600,
        negative_seconds=3600,
        failures_per_second=1e6,
        failures_burst=10**6,
    )
    members = identity.Members(clients, 3600)
    try:
        yield Gate(sessions, states.Cache(sessions, 3600), clients, guard, members, identity.Claims())
    finally:
        await clients.close()


def asked(headers: dict[str, str], payload: dict[str, Any] | None = None) -> external_auth_pb2.CheckRequest:
    """What Envoy asks for GET /onboarding/status once jwt_authn and the transcoder ran (jwt_authn keeps the
    verified payload and removes the token itself)."""
    request = external_auth_pb2.CheckRequest()
    http = request.attributes.request.http
    http.path = STATUS
    http.headers.update(
        {
            ":path": STATUS,
            ":method": "POST",
            "content-type": "application/grpc",
            "x-envoy-original-path": "/onboarding/status",
        }
        | headers
    )
    request.attributes.source.address.socket_address.address = "127.0.0.1"
    if payload is not None:
        fields = request.attributes.metadata_context.filter_metadata[identity.JWT_METADATA].fields
        fields[identity.PAYLOAD_KEY].struct_value.update(payload)
    return request


def caller_headers(reply: external_auth_pb2.CheckResponse) -> dict[str, str]:
    assert reply.HasField("ok_response"), reply
    return {h.header.key: h.header.value for h in reply.ok_response.headers}


async def test_a_remembered_key_approval_ends_with_the_keys_verdict(
    api_keys: FakePeer, keys: FakeApiKeys, account: Any, onb: Onboarding
) -> None:
    async with gate_of(onb, api_keys) as gate:
        tenant = await new_tenant(account, "owner-a")
        await set_state(onb, tenant, int(State.COMPLETE))
        secret, key_id = keys.issue(tenant)
        first = caller_headers(await gate.Check(asked({"x-aos-key": secret}), None))
        assert first["x-aos-tenant-id"] == tenant and first["x-aos-actor-id"] == key_id
        calls = keys.verify_calls
        assert caller_headers(await gate.Check(asked({"x-aos-key": secret}), None)) == first
        assert keys.verify_calls == calls
        # A near miss is its own request: an empty integration key header beside the key is refused.
        mixed = await gate.Check(asked({"x-aos-key": secret, "x-cus-integration-key": ""}), None)
        assert mixed.denied_response.status.code == 400
        keys.revoke(secret)
        gate.keys.forget_key(key_id)  # what api_keys' revocation event does
        refused = await gate.Check(asked({"x-aos-key": secret}), None)
        assert refused.denied_response.status.code == 401


async def test_two_tokens_of_one_user_get_their_own_approvals(
    api_keys: FakePeer, account: Any, onb: Onboarding
) -> None:
    async with gate_of(onb, api_keys) as gate:
        tenant = await new_tenant(account, "owner-b")
        await set_state(onb, tenant, int(State.IDENTITY_VERIFIED))
        now = int(time.time())
        claims = {"sub": "owner-b", "org_id": tenant, "email": "b@example.com", "iat": now, "exp": now + 600}
        for verified in (False, True, False):
            reply = await gate.Check(asked({}, claims | {"email_verified": verified}), None)
            assert caller_headers(reply)["x-aos-email-verified"] == str(verified).lower()


async def test_a_membership_change_ends_the_approvals_made_with_the_old_role(
    api_keys: FakePeer, account: Any, onb: Onboarding
) -> None:
    async with gate_of(onb, api_keys) as gate:
        tenant = await new_tenant(account, "boss")
        await set_state(onb, tenant, int(State.COMPLETE))
        add = rpc.AddMemberRequest(user_id="bob", email="bob@example.com", role=pb.ROLE_VIEWER)
        await account.AddMember(add, metadata=human(tenant, user="boss"), timeout=5)
        now = int(time.time())
        bob = asked({}, {"sub": "bob", "org_id": tenant, "email_verified": True, "iat": now, "exp": now + 600})
        assert caller_headers(await gate.Check(bob, None))["x-aos-role"] == "viewer"
        add.role = pb.ROLE_ADMIN
        await account.AddMember(add, metadata=human(tenant, user="boss"), timeout=5)
        assert caller_headers(await gate.Check(bob, None))["x-aos-role"] == "viewer"  # cached, as before
        gate.members.forget("bob")  # what account's member event does
        assert caller_headers(await gate.Check(bob, None))["x-aos-role"] == "admin"
