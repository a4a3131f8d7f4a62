"""Founder force-complete's audit (SPEC 3.4): an unreachable evidence source is recorded as unknown, and an
override that loses the race to a concurrent promotion answers no_op and leaves no audit row."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import httpx
import pytest
from sqlalchemy import text

from aos.onboarding.v1 import onboarding_service_pb2 as rpc
from services.common import db
from services.common.principal import Kind, Principal
from services.onboarding import states
from services.onboarding.policy import Skipped, State
from tests.conftest import Gateway, eventually, service
from tests.onboarding.conftest import FakeApiKeys, FakePeer, Onboarding, onboarding_events, set_state
from tests.onboarding.test_transitions import new_tenant

pytestmark = pytest.mark.e2e
OWNER = "fc-owner"
REASON = "customer escalation #42"


@pytest.fixture
async def rest(onb_gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=onb_gateway.url, timeout=10) as client:
        yield client


async def audits(onb: Onboarding, tenant: str) -> list[Any]:
    async with onb.engine.connect() as conn:
        rows = await conn.execute(text("SELECT * FROM onboarding_audit WHERE tenant_id = :t"), {"t": tenant})
        return list(rows.all())


async def reachable_again(stub_as: Callable[[str], Any], tenant: str) -> None:
    """Onboarding's channel to a restarted peer reconnects after a backoff: until then the next test's evidence
    would be unknown. Waits (bounded) until an evaluation hears from every source again."""

    async def heard() -> bool:
        reply = await stub_as("account").EvaluateActivation(
            rpc.EvaluateActivationRequest(tenant_id=tenant), metadata=service("account"), timeout=5
        )
        return all(r.status != "unknown" for r in reply.requirements)

    await eventually(heard, within=20, every=0.2, retry=lambda exc: isinstance(exc, grpc.aio.AioRpcError))


async def test_a_source_down_is_audited_as_unknown_evidence(
    rest: httpx.AsyncClient,
    onb_gateway: Gateway,
    account: Any,
    onb: Onboarding,
    keys: FakeApiKeys,
    api_keys: FakePeer,
    stub_as: Callable[[str], Any],
) -> None:
    tenant = await new_tenant(account, OWNER)
    keys.issue(tenant)  # key_ready would be met: the audit must not guess either way while api_keys is down
    founder = onb_gateway.token("founder-1", operator=True, email="f@aos.dev")
    await api_keys.stop()
    try:
        done = await rest.post(
            "/fdr/onboarding/force-complete", json={"tenant_id": tenant, "reason": REASON}, headers=founder
        )
    finally:
        await api_keys.start()
        await reachable_again(stub_as, tenant)
    assert done.status_code == 200, done.text
    [audit] = await audits(onb, tenant)
    assert audit.audit_id == done.json()["audit_id"]
    assert audit.unknown == ["key_ready"]
    assert audit.missing == ["project_ready", "connector_validated", "sdk_attested"]
    [forced] = await onboarding_events(onb, tenant, "onboarding.force_completed")
    assert forced["payload"]["unknown"] == ["key_ready"]


async def test_all_sources_up_leave_nothing_unknown(
    rest: httpx.AsyncClient, onb_gateway: Gateway, account: Any, onb: Onboarding, keys: FakeApiKeys
) -> None:
    tenant = await new_tenant(account, OWNER)
    keys.issue(tenant)
    founder = onb_gateway.token("founder-1", operator=True, email="f@aos.dev")
    done = await rest.post(
        "/fdr/onboarding/force-complete", json={"tenant_id": tenant, "reason": REASON}, headers=founder
    )
    assert done.status_code == 200, done.text
    [audit] = await audits(onb, tenant)
    assert (audit.unknown, audit.missing) == ([], ["project_ready", "connector_validated", "sdk_attested"])


async def test_a_lost_race_writes_no_audit_row(account: Any, onb: Onboarding) -> None:
    """The override read SDK_CONNECTED, then a promotion committed COMPLETE before its transaction ran."""
    tenant = await new_tenant(account, OWNER)
    await set_state(onb, tenant, int(State.COMPLETE))
    operator = Principal(Kind.OPERATOR, "founder-1", email="f@aos.dev")
    before = len(await onboarding_events(onb, tenant))
    async with db.sessionmaker(onb.engine).begin() as session:
        move, audit_id = await states.force_complete(
            session, tenant, operator, REASON, Skipped(["sdk_attested"], []), None
        )
    assert (audit_id, move.was_no_op, move.to_state) == ("no_op", True, State.COMPLETE)
    assert await audits(onb, tenant) == []
    assert len(await onboarding_events(onb, tenant)) == before


async def test_concurrent_overrides_audit_once(
    rest: httpx.AsyncClient, onb_gateway: Gateway, account: Any, onb: Onboarding
) -> None:
    tenant = await new_tenant(account, OWNER)
    founder = onb_gateway.token("founder-1", operator=True, email="f@aos.dev")
    answers = await asyncio.gather(
        *(
            rest.post(
                "/fdr/onboarding/force-complete",
                json={"tenant_id": tenant, "reason": REASON},
                headers=founder,
                timeout=60,  # eight at once on a shared 2-core machine
            )
            for _ in range(8)
        )
    )
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    ids = [a.json()["audit_id"] for a in answers]
    real = [i for i in ids if i != "no_op"]
    assert len(real) == 1, ids
    [audit] = await audits(onb, tenant)
    assert audit.audit_id == real[0]
    assert len(await onboarding_events(onb, tenant, "onboarding.force_completed")) == 1
