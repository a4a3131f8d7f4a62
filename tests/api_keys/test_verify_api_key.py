"""VerifyApiKey: the machine codes, the cache and its invalidation across replicas, batched usage."""

import asyncio
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from aos.account.v1 import account_service_pb2 as acc
from aos.api_keys.v1 import api_keys_service_pb2 as rpc
from services.api_keys import keys as key_format
from tests.api_keys.conftest import create, sql, verify
from tests.conftest import eventually, human, operator, service


async def usage(engines: dict[str, AsyncEngine], key_id: str) -> tuple[int, Any]:
    rows = await sql(engines, "SELECT total_requests, last_used_at FROM api_key WHERE id = :k", k=key_id)
    return int(rows[0][0]), rows[0][1]


async def test_valid_key_and_usage_is_counted_off_the_request_path(
    verifier: Any, keys: Any, tenant: str, engines: dict[str, AsyncEngine]
) -> None:
    made = await create(keys, tenant)
    for _ in range(3):
        verdict = await verify(verifier, made.key)
        assert verdict.code == rpc.VERIFY_CODE_VALID and verdict.key_id == made.id and verdict.tenant_id == tenant
        assert list(verdict.scopes) == ["run:*", "read:*"] and verdict.rate_limit_rpm == 1000
    await eventually(lambda: _count(engines, made.id), until=lambda n: n == 3, within=5, what="total_requests == 3")
    assert (await usage(engines, made.id))[1] is not None


async def _count(engines: dict[str, AsyncEngine], key_id: str) -> int:
    return (await usage(engines, key_id))[0]


async def test_unknown_and_malformed_keys_are_not_found(verifier: Any, keys: Any) -> None:
    for presented in (key_format.issue().secret, "aos_" + secrets.token_urlsafe(32)[:-1] + "A", "x" * 10_000, "é"):
        verdict = await verify(verifier, presented)
        assert verdict == rpc.VerifyApiKeyResponse(code=rpc.VERIFY_CODE_NOT_FOUND)


async def test_malformed_keys_cost_no_database_query(make_replica: Callable[..., Any]) -> None:
    """A replica whose database is unreachable: malformed keys still answer NOT_FOUND (no query was
    attempted), while a well-formed key needs the database and answers UNAVAILABLE."""
    dead = "postgresql://nobody:x@127.0.0.1:1/none"
    async with make_replica(database_url=dead) as (_, stub):
        good = key_format.issue().secret
        for presented in (
            good[:-1],
            good[:-1] + ("A" if good[-1] != "A" else "B"),
            "aos_" + "a" * 10_000,
            "aos_ü" + good[5:],
        ):
            assert (await verify(stub, presented)).code == rpc.VERIFY_CODE_NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await verify(stub, good)
        assert caught.value.code() is grpc.StatusCode.UNAVAILABLE


async def test_expired_key(verifier: Any, keys: Any, tenant: str, engines: dict[str, AsyncEngine]) -> None:
    made = await create(keys, tenant, expires_in_days=1)
    await sql(
        engines,
        "UPDATE api_key SET expires_at = :e WHERE id = :k",
        e=datetime.now(UTC) - timedelta(seconds=1),
        k=made.id,
    )
    assert (await verify(verifier, made.key)).code == rpc.VERIFY_CODE_EXPIRED


async def test_legacy_format_keys_verify(
    verifier: Any, keys: Any, tenant: str, engines: dict[str, AsyncEngine]
) -> None:
    made = await create(keys, tenant)
    legacy = "aos_" + secrets.token_urlsafe(32)
    await sql(engines, "UPDATE api_key SET key_hash = :h WHERE id = :k", h=key_format.digest(legacy), k=made.id)
    assert (await verify(verifier, legacy)).code == rpc.VERIFY_CODE_VALID


async def test_a_warm_second_replica_refuses_a_revoked_key_within_a_second(
    verifier: Any, keys: Any, tenant: str, make_replica: Callable[..., Any]
) -> None:
    made = await create(keys, tenant)
    async with make_replica() as (other, stub):
        await asyncio.wait_for(other.verifier.listening.wait(), 5)
        assert (await verify(stub, made.key)).code == rpc.VERIFY_CODE_VALID  # now cached there
        assert (await verify(stub, made.key)).code == rpc.VERIFY_CODE_VALID
        await keys.RevokeApiKey(rpc.RevokeApiKeyRequest(key_id=made.id), metadata=human(tenant), timeout=5)
        started = time.monotonic()
        await code_becomes(stub, made.key, rpc.VERIFY_CODE_REVOKED, within=1.0)
        assert time.monotonic() - started < 1.0


async def _code(stub: Any, secret: str) -> int:
    return int((await verify(stub, secret)).code)


async def code_becomes(stub: Any, secret: str, code: int, within: float) -> None:
    name = rpc.VerifyCode.Name(code)
    await eventually(lambda: _code(stub, secret), until=lambda got: got == code, within=within, every=0.02, what=name)


async def test_usage_is_flushed_on_graceful_shutdown(
    tenant: str, keys: Any, engines: dict[str, AsyncEngine], make_replica: Callable[..., Any]
) -> None:
    made = await create(keys, tenant)
    async with make_replica(usage_flush_seconds=3600) as (_, stub):
        for _ in range(5):
            await verify(stub, made.key)
        assert await _count(engines, made.id) == 0  # nothing written yet: batched
    assert await _count(engines, made.id) == 5


async def test_a_suspended_tenants_keys_are_tenant_inactive(
    verifier: Any, keys: Any, account: Any, tenant: str
) -> None:
    made = await create(keys, tenant)
    assert (await verify(verifier, made.key)).code == rpc.VERIFY_CODE_VALID
    await account.SuspendTenant(
        acc.SuspendTenantRequest(tenant_id=tenant, reason="unpaid"), metadata=operator(), timeout=5
    )
    await code_becomes(verifier, made.key, rpc.VERIFY_CODE_TENANT_INACTIVE, within=2.0)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await create(keys, tenant)  # SPEC 1.1: new keys only while the tenant is active
    assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    await account.ReactivateTenant(acc.ReactivateTenantRequest(tenant_id=tenant), metadata=operator(), timeout=5)
    await code_becomes(verifier, made.key, rpc.VERIFY_CODE_VALID, within=2.0)


async def test_activation_evidence(verifier: Any, keys: Any, tenant: str) -> None:
    async def evidence() -> bool:
        reply = await verifier.GetActivationEvidence(
            rpc.GetActivationEvidenceRequest(tenant_id=tenant), metadata=service(), timeout=5
        )
        return bool(reply.has_valid_key)

    assert not await evidence()
    made = await create(keys, tenant)
    assert await evidence()
    await keys.DisableApiKey(rpc.DisableApiKeyRequest(key_id=made.id), metadata=human(tenant), timeout=5)
    assert not await evidence()


async def test_customers_cannot_call_verify(keys: Any, tenant: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await keys.VerifyApiKey(rpc.VerifyApiKeyRequest(secret="x"), metadata=human(tenant), timeout=5)
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED


async def test_losing_the_listener_empties_and_bypasses_the_cache_until_it_is_back(
    verifier: Any, keys: Any, tenant: str, engines: dict[str, AsyncEngine], make_replica: Callable[..., Any]
) -> None:
    made = await create(keys, tenant)
    async with make_replica() as (other, stub):
        await asyncio.wait_for(other.verifier.listening.wait(), 5)
        assert (await verify(stub, made.key)).code == rpc.VERIFY_CODE_VALID  # cached
        await sql(engines, "SELECT pg_terminate_backend(:pid)", pid=other.verifier.listener_pid)
        # A change no replica is told about (written behind the service's back) is seen once the listener
        # is found gone, because the cache was emptied with it.
        await sql(engines, "UPDATE api_key SET status = 'disabled' WHERE id = :k", k=made.id)
        await code_becomes(stub, made.key, rpc.VERIFY_CODE_DISABLED, within=3.0)
        await asyncio.wait_for(other.verifier.listening.wait(), 5)  # and it listens again
