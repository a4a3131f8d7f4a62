"""The predicate asks its three sources at once with a deadline each and fails closed, naming the source."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from aos.onboarding.v1 import onboarding_service_pb2 as rpc
from tests.conftest import eventually, human, service, unavailable
from tests.onboarding.conftest import FakeApiKeys, FakeIntegrations, FakePeer, Onboarding, state_of
from tests.onboarding.test_transitions import new_tenant, ready


def error_info(err: grpc.aio.AioRpcError) -> dict[str, str]:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return dict(info.metadata)
    return {}


async def test_evaluation_reports_each_requirement_with_its_source(
    stub_as: Callable[[str], Any], account: Any, keys: FakeApiKeys
) -> None:
    tenant = await new_tenant(account)
    keys.issue(tenant)
    reply = await stub_as("account").EvaluateActivation(
        rpc.EvaluateActivationRequest(tenant_id=tenant), metadata=service("account"), timeout=5
    )
    assert not reply.passed
    assert list(reply.missing) == ["project_ready", "connector_validated", "sdk_attested"]
    assert [(r.name, r.status, r.source) for r in reply.requirements] == [
        ("project_ready", "missing", "account"),
        ("key_ready", "met", "api_keys"),
        ("connector_validated", "missing", "integrations"),
        ("sdk_attested", "missing", "account"),
    ]


async def test_integrations_down_fails_closed_and_changes_nothing(
    stub: Any, account: Any, onb: Onboarding, keys: FakeApiKeys, connectors: FakeIntegrations, integrations: FakePeer
) -> None:
    tenant = await ready(account, stub, keys, connectors, onb)
    connectors.validated.add(tenant)
    await integrations.stop()
    try:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.CompleteOnboarding(rpc.CompleteOnboardingRequest(), metadata=human(tenant), timeout=5)
        assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
        assert "integrations" in (caught.value.details() or "")
        info = error_info(caught.value)
        assert info["dependency"] == "integrations" and info["connector_validated"] == "unknown"
        assert info["key_ready"] == "met"
        assert await state_of(onb, tenant) == 3
    finally:
        await integrations.start()

    def complete() -> Any:  # Finalize succeeds once the restarted source is reachable again
        return stub.CompleteOnboarding(rpc.CompleteOnboardingRequest(), metadata=human(tenant), timeout=5)

    done = await eventually(complete, within=5.0, every=0.2, retry=unavailable)
    assert done.to_state == "COMPLETE"


async def test_a_slow_source_costs_one_deadline_not_a_false_missing(
    stub: Any, account: Any, onb: Onboarding, keys: FakeApiKeys, connectors: FakeIntegrations
) -> None:
    tenant = await ready(account, stub, keys, connectors, onb)
    keys.delay = connectors.delay = 3.0  # both slower than the 1 s deadline
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CompleteOnboarding(rpc.CompleteOnboardingRequest(), metadata=human(tenant), timeout=5)
    elapsed = time.monotonic() - started
    keys.delay = connectors.delay = 0.0
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
    assert error_info(caught.value)["dependency"] == "api_keys,integrations"
    assert elapsed < 2.5  # asked concurrently: the slowest deadline, not the sum
    assert await state_of(onb, tenant) == 3
