"""Producers' EventLogs are read with a durable cursor: evidence whose notification onboarding missed
(it was down) is applied when it comes back."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from sqlalchemy import text

from tests.conftest import eventually
from tests.onboarding.conftest import FakePeer, Onboarding, set_state, state_of
from tests.onboarding.test_transitions import new_tenant

WITHIN = 8.0  # consumers reconnect within their 0.5 s max backoff; the rest is room for a loaded machine


async def test_tenant_created_in_account_is_tracked_at_created(account: Any, onb: Onboarding) -> None:
    tenant = await new_tenant(account)

    async def tracked() -> bool:
        return await state_of(onb, tenant) == 0

    await eventually(tracked, within=WITHIN)


async def test_a_key_created_while_onboarding_was_down_advances_it_on_restart(
    account: Any, onb: Onboarding, api_keys: FakePeer
) -> None:
    tenant = await new_tenant(account)
    await set_state(onb, tenant, 1)
    await onb.stop()
    try:
        api_keys.servicer.issue(tenant)
        api_keys.log.emit("api_key.created", tenant, key_id=str(uuid.uuid4()))
        await asyncio.sleep(0.2)  # nothing may apply it while onboarding is down
        assert await state_of(onb, tenant) == 1
    finally:
        await onb.start()

    async def advanced() -> bool:
        return await state_of(onb, tenant) == 2

    await eventually(advanced, within=WITHIN)

    async def cursor_saved() -> bool:
        async with onb.engine.connect() as conn:
            cursors = dict((await conn.execute(text("SELECT source, page_token FROM event_cursor"))).all())
        return cursors.get("api_keys") == str(len(api_keys.log.events)) and bool(cursors.get("account"))

    await eventually(cursor_saved, within=WITHIN)
    async with onb.engine.connect() as conn:
        trigger = await conn.execute(
            text("SELECT trigger FROM onboarding_transition WHERE tenant_id = :t"), {"t": tenant}
        )
        assert trigger.scalar_one() == "first_api_key_created"


async def test_a_source_that_is_down_is_retried_until_it_returns(
    account: Any, onb: Onboarding, api_keys: FakePeer
) -> None:
    tenant = await new_tenant(account)
    await set_state(onb, tenant, 1)
    await api_keys.stop()
    api_keys.log.emit("api_key.created", tenant, key_id=str(uuid.uuid4()))
    await asyncio.sleep(0.5)  # onboarding's consumer fails and backs off (max 0.5 s) while the source is down
    await api_keys.start()

    async def advanced() -> bool:
        return await state_of(onb, tenant) == 2

    await eventually(advanced, within=WITHIN)
