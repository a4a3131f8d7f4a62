"""ListIntegrations and the /cus facade: filters, keyset pages, legacy limit/offset, strict parameters."""

from typing import Any

import grpc
import pytest

from aos.integrations.v1 import integrations_service_pb2 as rpc
from tests.conftest import human
from tests.integrations.conftest import GOOD_KEY


@pytest.fixture
async def five(integrations: Any, tenant_id: str) -> list[str]:
    ids = []
    for n, provider in enumerate(["openai", "anthropic", "openai", "bedrock", "openai"]):
        request = rpc.CreateIntegrationRequest(name=f"i{n}", provider_type=provider, credential=GOOD_KEY)
        ids.append((await integrations.CreateIntegration(request, metadata=human(tenant_id), timeout=5)).data.id)
    await integrations.EnableIntegration(rpc.EnableIntegrationRequest(integration_id=ids[0]), metadata=human(tenant_id))
    return ids[::-1]  # newest first


async def test_keyset_pages_cover_everything_once(integrations: Any, tenant_id: str, five: list[str]) -> None:
    seen, token, pages = [], "", 0
    while True:
        pages += 1
        page = await integrations.ListIntegrations(
            rpc.ListIntegrationsRequest(page_size=2, page_token=token), metadata=human(tenant_id), timeout=5
        )
        seen += [s.id for s in page.data]
        token = page.next_page_token
        if not token:
            break
    assert seen == five and pages == 3
    last = await integrations.ListIntegrations(
        rpc.ListIntegrationsRequest(page_size=5), metadata=human(tenant_id), timeout=5
    )
    assert len(last.data) == 5 and not last.next_page_token


async def test_filters_and_legacy_paging(integrations: Any, tenant_id: str, five: list[str]) -> None:
    md = human(tenant_id)
    openai = await integrations.ListIntegrations(rpc.ListIntegrationsRequest(provider_type="OpenAI"), metadata=md)
    assert openai.meta.total == 3 and {s.provider_type for s in openai.data} == {"openai"}
    enabled = await integrations.ListIntegrations(rpc.ListIntegrationsRequest(status="enabled"), metadata=md)
    assert [s.id for s in enabled.data] == [five[-1]]
    legacy = await integrations.ListIntegrations(rpc.ListIntegrationsRequest(limit=2, offset=2), metadata=md)
    assert [s.id for s in legacy.data] == five[2:4] and legacy.meta.total == 5 and not legacy.next_page_token
    facade = await integrations.ListIntegrationsFacade(
        rpc.ListIntegrationsFacadeRequest(limit=2, offset=4), metadata=md
    )
    assert [s.id for s in facade.integrations] == five[4:] and not facade.has_more
    assert not facade.pagination.HasField("next_offset")


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (rpc.ListIntegrationsRequest(status="bogus"), "status"),
        (rpc.ListIntegrationsRequest(provider_type="cohere"), "provider_type"),
        (rpc.ListIntegrationsRequest(limit=101), "limit"),
        (rpc.ListIntegrationsRequest(page_size=2, limit=2), "page_token"),
        (rpc.ListIntegrationsRequest(page_token="???"), "page_token"),
    ],
)
async def test_bad_list_parameters(integrations: Any, tenant_id: str, request_: Any, field: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await integrations.ListIntegrations(request_, metadata=human(tenant_id), timeout=5)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT and caught.value.details().startswith(field)


async def test_facade_refuses_as_of(integrations: Any, tenant_id: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await integrations.ListIntegrationsFacade(
            rpc.ListIntegrationsFacadeRequest(as_of="2026-01-01"), metadata=human(tenant_id), timeout=5
        )
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT and "as_of" in caught.value.details()
