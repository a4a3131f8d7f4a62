import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from aos.api_keys.v1 import api_keys_service_pb2 as rpc
from tests.api_keys.conftest import api_key_caller, create, sql, verify
from tests.conftest import human


async def rotate(keys: Any, tenant: str, key_id: str, **fields: Any) -> Any:
    return await keys.RotateApiKey(rpc.RotateApiKeyRequest(key_id=key_id, **fields), metadata=human(tenant), timeout=5)


async def test_rotation_issues_a_twin_and_keeps_the_old_key_for_24_hours(
    keys: Any, tenant: str, engines: dict[str, AsyncEngine]
) -> None:
    old = await create(keys, tenant, permissions=["run:*"], rate_limit_rpm=10)
    rotated = await rotate(keys, tenant, old.id)
    assert rotated.key and rotated.key != old.key and rotated.api_key.prefix == rotated.key[:12]
    assert list(rotated.api_key.permissions) == ["run:*"] and rotated.api_key.rate_limit_rpm == 10
    grace_end = rotated.previous.expires_at.ToDatetime(UTC)
    assert abs(grace_end - (datetime.now(UTC) + timedelta(hours=24))) < timedelta(minutes=1)
    assert rotated.previous.rotated_to_key_id == rotated.api_key.key_id
    assert (await verify(keys, old.key)).code == rpc.VERIFY_CODE_VALID
    assert (await verify(keys, rotated.key)).code == rpc.VERIFY_CODE_VALID
    emitted = await sql(
        engines, "SELECT payload FROM event WHERE event_type = 'api_key.rotated' AND tenant_id = :t", t=tenant
    )
    assert emitted[0][0]["key_id"] == old.id and emitted[0][0]["new_key_id"] == rotated.api_key.key_id
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await rotate(keys, tenant, old.id)
    assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION


async def test_no_grace_retires_the_old_key_at_once(keys: Any, tenant: str) -> None:
    old = await create(keys, tenant)
    await rotate(keys, tenant, old.id, grace_period_hours=0)
    assert (await verify(keys, old.key)).code == rpc.VERIFY_CODE_EXPIRED


async def test_grace_never_outlives_the_old_keys_expiry(
    keys: Any, tenant: str, engines: dict[str, AsyncEngine]
) -> None:
    old = await create(keys, tenant, expires_in_days=1)
    soon = datetime.now(UTC) + timedelta(hours=2)
    await sql(engines, "UPDATE api_key SET expires_at = :e WHERE id = :k", e=soon, k=old.id)
    rotated = await rotate(keys, tenant, old.id, grace_period_hours=48)
    assert abs(rotated.previous.expires_at.ToDatetime(UTC) - soon) < timedelta(seconds=1)


async def test_a_revoked_key_cannot_be_rotated(keys: Any, tenant: str) -> None:
    old = await create(keys, tenant)
    await keys.RevokeApiKey(rpc.RevokeApiKeyRequest(key_id=old.id), metadata=human(tenant), timeout=5)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await rotate(keys, tenant, old.id)
    assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION


@pytest.mark.parametrize("held", ["keys:create,keys:revoke", "keys:*,run:*", "keys:*,run:*,read:x"])
async def test_a_key_cannot_rotate_a_key_with_scopes_it_lacks(
    keys: Any, tenant: str, engines: dict[str, AsyncEngine], held: str
) -> None:
    """Issue 11: a keys:create+keys:revoke key rotated an owner's * key and received its new secret."""
    for victim in (await create(keys, tenant, permissions=["*"]), await create(keys, tenant)):
        request = rpc.RotateApiKeyRequest(key_id=victim.id)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await keys.RotateApiKey(request, metadata=api_key_caller(tenant, held), timeout=5)
        assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
        assert (await verify(keys, victim.key)).code == rpc.VERIFY_CODE_VALID
    rows = await sql(engines, "SELECT count(*), count(rotated_to) FROM api_key WHERE tenant_id = :t", t=tenant)
    assert tuple(rows[0]) == (2, 0)  # no successor, no new secret


async def test_a_key_holding_every_scope_rotates(keys: Any, tenant: str) -> None:
    old = await create(keys, tenant, permissions=["run:x", "read:*"])
    request = rpc.RotateApiKeyRequest(key_id=old.id)
    rotated = await keys.RotateApiKey(request, metadata=api_key_caller(tenant, "keys:*,run:*,read:*"), timeout=5)
    assert rotated.key and list(rotated.api_key.permissions) == ["run:x", "read:*"]


async def test_rotation_counts_against_the_quota_during_the_grace_period(
    keys: Any, tenant: str, engines: dict[str, AsyncEngine]
) -> None:
    made = [await create(keys, tenant, name=f"k{i}") for i in range(5)]  # the free plan's 5
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await rotate(keys, tenant, made[0].id)
    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert (caught.value.details() or "").startswith("API key limit exceeded: ")
    rows = await sql(engines, "SELECT count(*) FROM api_key WHERE tenant_id = :t", t=tenant)
    assert rows[0][0] == 5
    swapped = await rotate(keys, tenant, made[0].id, grace_period_hours=0)  # no grace: one key for one
    assert swapped.key and (await verify(keys, made[0].key)).code == rpc.VERIFY_CODE_EXPIRED


async def test_concurrent_rotations_never_pass_the_quota(
    keys: Any, tenant: str, engines: dict[str, AsyncEngine]
) -> None:
    made = [await create(keys, tenant, name=f"k{i}") for i in range(4)]  # one free slot of 5
    outcomes = await asyncio.gather(*(rotate(keys, tenant, k.id) for k in made), return_exceptions=True)
    refused = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert len(outcomes) - len(refused) == 1
    assert {r.code() for r in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    valid = "status = 'active' AND (expires_at IS NULL OR expires_at > now())"
    rows = await sql(engines, f"SELECT count(*) FROM api_key WHERE tenant_id = :t AND {valid}", t=tenant)
    assert rows[0][0] == 5
