"""EnableApiKey and DisableApiKey: reversible, verified at once, quota-checked on enable."""

from typing import Any

import grpc
import pytest

from aos.api_keys.v1 import api_keys_service_pb2 as rpc
from tests.api_keys.conftest import create, verify
from tests.conftest import human


async def test_disable_then_enable(verifier: Any, keys: Any, tenant: str) -> None:
    made = await create(keys, tenant)
    assert (await verify(verifier, made.key)).code == rpc.VERIFY_CODE_VALID  # warm the cache
    off = await keys.DisableApiKey(rpc.DisableApiKeyRequest(key_id=made.id), metadata=human(tenant), timeout=5)
    assert off.api_key.status == "DISABLED"
    assert (await verify(verifier, made.key)).code == rpc.VERIFY_CODE_DISABLED
    on = await keys.EnableApiKey(rpc.EnableApiKeyRequest(key_id=made.id), metadata=human(tenant), timeout=5)
    assert on.api_key.status == "ACTIVE"
    assert (await verify(verifier, made.key)).code == rpc.VERIFY_CODE_VALID


async def test_enable_counts_against_the_quota(keys: Any, tenant: str) -> None:
    first = await create(keys, tenant)
    await keys.DisableApiKey(rpc.DisableApiKeyRequest(key_id=first.id), metadata=human(tenant), timeout=5)
    for i in range(5):
        await create(keys, tenant, name=f"k{i}")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await keys.EnableApiKey(rpc.EnableApiKeyRequest(key_id=first.id), metadata=human(tenant), timeout=5)
    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_revoked_keys_stay_revoked(keys: Any, tenant: str) -> None:
    made = await create(keys, tenant)
    await keys.RevokeApiKey(rpc.RevokeApiKeyRequest(key_id=made.id), metadata=human(tenant), timeout=5)
    for call in (keys.EnableApiKey(rpc.EnableApiKeyRequest(key_id=made.id), metadata=human(tenant), timeout=5),):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
