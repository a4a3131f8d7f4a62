"""The gate's view of memberships: read through account's ResolveMember, cached, and dropped as soon as
account's event log reports a change of the user's membership (faster than any cache lifetime)."""

from __future__ import annotations

import asyncio
from typing import Any

from aos.account.v1 import account_pb2 as pb
from aos.account.v1 import account_service_pb2 as rpc
from aos.events.v1 import events_service_pb2
from services.common import db
from services.onboarding import identity, states
from services.onboarding.clients import Clients
from services.onboarding.evidence import Evidence
from services.onboarding.identity import Membership
from tests.conftest import human, service
from tests.onboarding.conftest import Onboarding
from tests.onboarding.test_transitions import new_tenant


async def latest_event(onb: Onboarding, tenant: str, event_type: str) -> Any:
    request = events_service_pb2.ListEventsRequest(tenant_id=tenant, page_size=1000)
    page = await onb.account_events.ListEvents(request, metadata=service(), timeout=5)
    return [e for e in page.events if e.event_type == event_type][-1]


async def test_a_member_event_drops_the_cached_membership_at_once(account: Any, onb: Onboarding) -> None:
    clients = Clients(onb.settings.account_addr, "", "", 1.0)
    try:
        members = identity.Members(clients, seconds=3600)  # only the event can make it ask again
        sessions = db.sessionmaker(onb.engine)
        evidence = Evidence(sessions, states.Cache(sessions, 1.0), clients, lambda _: None, members.forget)
        tenant = await new_tenant(account, "boss")
        add = rpc.AddMemberRequest(user_id="bob", email="bob@example.com", role=pb.ROLE_VIEWER)
        await account.AddMember(add, metadata=human(tenant, user="boss"), timeout=5)
        assert await members.resolve(tenant, "bob") == Membership(tenant, "viewer")
        assert await members.resolve(tenant, "eve") is None
        add.role = pb.ROLE_ADMIN
        await account.AddMember(add, metadata=human(tenant, user="boss"), timeout=5)
        assert await members.resolve(tenant, "bob") == Membership(tenant, "viewer")  # cached
        await evidence.handle(await latest_event(onb, tenant, "member.added"))
        assert await members.resolve(tenant, "bob") == Membership(tenant, "admin")
        # A signup drops what the gate knew of its owner ("not a member" until then).
        org = f"{tenant}-org"
        assert await members.resolve(org, "eve") is None
        signup = await account.CreateTenant(
            rpc.CreateTenantRequest(name="Eve Inc"), metadata=human(user="eve", org=org), timeout=5
        )
        assert await members.resolve(org, "eve") is None  # cached
        await evidence.handle(await latest_event(onb, signup.tenant.tenant_id, "tenant.created"))
        assert await members.resolve(org, "eve") == Membership(signup.tenant.tenant_id, "owner")
    finally:
        await clients.close()


async def test_concurrent_misses_ask_account_once(account: Any, onb: Onboarding, running: dict[str, Any]) -> None:
    clients = Clients(onb.settings.account_addr, "", "", 1.0)
    try:
        members = identity.Members(clients, seconds=3600)
        tenant = await new_tenant(account, "boss")
        asked = running["account"].metrics.method("/aos.account.v1.AccountService/ResolveMember")
        before = sum(asked.codes.values())
        answers = await asyncio.gather(*(members.resolve(tenant, "boss") for _ in range(20)))
        assert set(answers) == {Membership(tenant, "owner")}
        assert sum(asked.codes.values()) - before == 1
    finally:
        await clients.close()
