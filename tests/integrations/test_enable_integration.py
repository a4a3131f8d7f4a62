"""Enable, disable and delete: the SPEC 6.2 machine (scenarios 26, 27), 409 hints, events, and races."""

import asyncio
from typing import Any

import grpc
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aos.integrations.v1 import integrations_service_pb2 as rpc
from tests.conftest import human
from tests.integrations.conftest import GOOD_KEY


async def new(integrations: Any, tenant_id: str, name: str = "main") -> str:
    request = rpc.CreateIntegrationRequest(name=name, provider_type="openai", credential=GOOD_KEY)
    return str((await integrations.CreateIntegration(request, metadata=human(tenant_id), timeout=5)).data.id)


async def act(integrations: Any, tenant_id: str, action: str, integration_id: str) -> Any:
    method = getattr(integrations, f"{action.capitalize()}Integration")
    request = getattr(rpc, f"{action.capitalize()}IntegrationRequest")(integration_id=integration_id)
    return await method(request, metadata=human(tenant_id), timeout=5)


async def refused(integrations: Any, tenant_id: str, action: str, integration_id: str) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await act(integrations, tenant_id, action, integration_id)
    return caught.value


async def status_of(integrations: Any, tenant_id: str, integration_id: str) -> str:
    got = await integrations.GetIntegration(
        rpc.GetIntegrationRequest(integration_id=integration_id), metadata=human(tenant_id), timeout=5
    )
    return str(got.data.status)


async def event_types(engines: dict[str, AsyncEngine], tenant_id: str) -> list[str]:
    async with engines["integrations"].connect() as conn:
        result = await conn.execute(
            text("SELECT event_type FROM event WHERE tenant_id = :t ORDER BY sequence_no"), {"t": tenant_id}
        )
        return list(result.scalars())


async def test_enable_disable_enable_delete_then_enable_is_refused(
    integrations: Any, tenant_id: str, engines: dict[str, AsyncEngine]
) -> None:
    iid = await new(integrations, tenant_id)
    enabled = await act(integrations, tenant_id, "enable", iid)
    assert enabled.data.status == "enabled" and enabled.data.message == "Integration enabled successfully"
    assert (await act(integrations, tenant_id, "disable", iid)).data.status == "disabled"
    assert (await act(integrations, tenant_id, "enable", iid)).data.status == "enabled"
    deleted = await act(integrations, tenant_id, "delete", iid)
    assert deleted.data.deleted and deleted.data.integration_id == iid
    assert await status_of(integrations, tenant_id, iid) == "disabled"
    err = await refused(integrations, tenant_id, "enable", iid)
    assert err.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert err.details() == "Cannot enable deleted integration"
    assert dict(err.trailing_metadata() or ())["x-aos-http-status"] == "409"
    untestable = await refused(integrations, tenant_id, "test", iid)
    assert untestable.code() is grpc.StatusCode.FAILED_PRECONDITION and "deleted" in untestable.details()
    assert await event_types(engines, tenant_id) == [
        "integration.created",
        "integration.enabled",
        "integration.disabled",
        "integration.enabled",
        "integration.deleted",
    ]


@pytest.mark.parametrize("setup", [[], ["enable", "disable"]])
async def test_disable_of_a_created_or_disabled_integration_is_409(
    integrations: Any, tenant_id: str, setup: list[str]
) -> None:
    iid = await new(integrations, tenant_id)
    for action in setup:
        await act(integrations, tenant_id, action, iid)
    err = await refused(integrations, tenant_id, "disable", iid)
    assert err.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert dict(err.trailing_metadata() or ())["x-aos-http-status"] == "409"


async def test_an_integration_in_error_cannot_be_enabled(
    integrations: Any, tenant_id: str, engines: dict[str, AsyncEngine]
) -> None:
    iid = await new(integrations, tenant_id)
    async with engines["integrations"].begin() as conn:  # `error` is set by the system, never by the API
        await conn.execute(text("UPDATE integration SET status = 'error' WHERE id = :i"), {"i": iid})
    err = await refused(integrations, tenant_id, "enable", iid)
    assert err.code() is grpc.StatusCode.FAILED_PRECONDITION and "error state" in err.details()
    assert await status_of(integrations, tenant_id, iid) == "error"


async def test_a_deleted_name_can_be_reused_and_deleted_rows_leave_the_list(integrations: Any, tenant_id: str) -> None:
    first = await new(integrations, tenant_id, "reused")
    await act(integrations, tenant_id, "delete", first)
    assert (await refused(integrations, tenant_id, "delete", first)).code() is grpc.StatusCode.FAILED_PRECONDITION
    second = await new(integrations, tenant_id, "reused")
    listed = await integrations.ListIntegrations(rpc.ListIntegrationsRequest(), metadata=human(tenant_id), timeout=5)
    assert [s.id for s in listed.data] == [second] and listed.meta.total == 1


async def test_concurrent_enable_disable_delete_keep_the_machine(
    integrations: Any, tenant_id: str, engines: dict[str, AsyncEngine]
) -> None:
    for round_ in range(5):
        iid = await new(integrations, tenant_id, f"race-{round_}")
        actions = ["enable", "disable", "delete", "enable", "disable", "enable"] * 3
        results = await asyncio.gather(*(act(integrations, tenant_id, a, iid) for a in actions), return_exceptions=True)
        for result in results:
            if isinstance(result, grpc.aio.AioRpcError):
                assert result.code() is grpc.StatusCode.FAILED_PRECONDITION, result
        async with engines["integrations"].connect() as conn:
            row = (
                await conn.execute(text("SELECT status, deleted_at FROM integration WHERE id = :i"), {"i": iid})
            ).one()
            types = list(
                (
                    await conn.execute(
                        text(
                            "SELECT event_type FROM event WHERE tenant_id = :t "
                            "AND payload->>'integration_id' = :i ORDER BY sequence_no"
                        ),
                        {"t": tenant_id, "i": iid},
                    )
                ).scalars()
            )
        assert row.status in ("created", "enabled", "disabled")
        # Replaying the committed events through the machine must be legal and end where the row is.
        state, deleted = "created", False
        for event in types[1:]:
            assert not deleted
            if event == "integration.enabled":
                assert state in ("created", "disabled")
                state = "enabled"
            elif event == "integration.disabled":
                assert state == "enabled"
                state = "disabled"
            else:
                state, deleted = "disabled", True
        assert state == row.status and deleted == (row.deleted_at is not None)
