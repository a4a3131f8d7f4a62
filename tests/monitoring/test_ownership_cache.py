"""monitoring's ownership answers from integrations, cached per replica (MONITORING.md decision 12): owned
for a while, refusals never, and a question the cache cannot answer while integrations is down is
UNAVAILABLE naming integrations."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from aos.integrations.v1 import integrations_service_pb2 as integrations_rpc
from cli import stack
from services.common import server
from services.common.errors import Unavailable
from services.monitoring.clients import Integrations
from tests.conftest import human, identity_of
from tests.monitoring.conftest import new_integration


async def test_owned_is_cached_for_a_while_and_refusals_never(
    integrations: Any, running: dict[str, server.Service], tenant: str
) -> None:
    mine, theirs = await new_integration(integrations, tenant), await new_integration(integrations, f"o-{tenant}")
    client = Integrations(f"127.0.0.1:{running['integrations'].port}", identity_of("monitoring"), owned_seconds=0.5)
    try:
        assert await client.owned(tenant, [mine, theirs, "no-such"]) == {mine}
        assert set(client.owned_cache) == {(tenant, mine)}  # the refusals are asked again next time
        deleted = integrations_rpc.DeleteIntegrationRequest(integration_id=mine)
        await integrations.DeleteIntegration(deleted, metadata=human(tenant))
        assert await client.owned(tenant, [mine]) == {mine}  # within the window: still owned
        await asyncio.sleep(0.6)
        assert await client.owned(tenant, [mine]) == set()  # after it, the deletion shows
    finally:
        await client.close()


async def test_a_miss_while_integrations_is_down_is_unavailable(tenant: str) -> None:
    down = Integrations(f"127.0.0.1:{stack.free_port()}", identity_of("monitoring"), timeout=1.0)
    try:
        known = str(uuid.uuid4())
        down.owned_cache[(tenant, known)] = True
        assert await down.owned(tenant, [known]) == {known}  # answered from the cache: integrations not asked
        with pytest.raises(Unavailable) as missed:
            await down.owned(tenant, [known, str(uuid.uuid4())])
        assert missed.value.metadata == {"dependency": "integrations"} and "integrations" in missed.value.message
    finally:
        await down.close()
