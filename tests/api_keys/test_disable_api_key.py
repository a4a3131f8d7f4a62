"""EnableApiKey and DisableApiKey: reversible, verified at once, quota-checked on enable."""

from typing import Any

import grpc
import pytest

from aos.api_keys.v1 import api_keys_service_pb2 as rpc
from tests.api_keys.conftest import api_key_caller, create, verify
from tests.conftest import human


async def test_disable_then_enable(keys: Any, tenant: str) -> None:
    made = await create(keys, tenant)
    assert (await verify(keys, made.key)).code == rpc.VERIFY_CODE_VALID  # warm the cache
    off = await keys.DisableApiKey(rpc.DisableApiKeyRequest(key_id=made.id), metadata=human(tenant), timeout=5)
    assert off.api_key.status == "DISABLED"
    assert (await verify(keys, made.key)).code == rpc.VERIFY_CODE_DISABLED
    on = await keys.EnableApiKey(rpc.EnableApiKeyRequest(key_id=made.id), metadata=human(tenant), timeout=5)
    assert on.api_key.status == "ACTIVE"
    assert (await verify(keys, made.key)).code == rpc.VERIFY_CODE_VALID


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


async def test_a_key_enables_only_keys_within_its_own_scopes(keys: Any, tenant: str) -> None:
    """Enabling grants a key's scopes again, so it follows the rule of create: a key hands on only what it holds."""
    broad = await create(keys, tenant, permissions=["*"])
    await keys.DisableApiKey(rpc.DisableApiKeyRequest(key_id=broad.id), metadata=human(tenant), timeout=5)
    request = rpc.EnableApiKeyRequest(key_id=broad.id)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await keys.EnableApiKey(request, metadata=api_key_caller(tenant, "keys:create"), timeout=5)
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert (await verify(keys, broad.key)).code == rpc.VERIFY_CODE_DISABLED
    enabled = await keys.EnableApiKey(request, metadata=api_key_caller(tenant, "*"), timeout=5)
    assert enabled.api_key.status == "ACTIVE"
