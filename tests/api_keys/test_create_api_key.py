import asyncio
import logging
import re
from typing import Any

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from aos.api_keys.v1 import api_keys_service_pb2 as rpc
from tests.api_keys.conftest import api_key_caller, create, sql, verify
from tests.conftest import human


async def test_create_returns_the_full_key_once_with_the_legacy_fields(keys: Any, tenant: str) -> None:
    made = await create(keys, tenant, name=" ci ")
    assert re.fullmatch(r"aos_[0-9A-Za-z]{46}", made.key)
    assert made.key_prefix == made.key[:12] and made.name == "ci"
    assert made.status == "active" and made.total_requests == 0
    assert list(made.permissions) == ["run:*", "read:*"]
    assert not made.HasField("expires_at") and made.HasField("created_at")
    got = await keys.GetApiKey(rpc.GetApiKeyRequest(key_id=made.id), metadata=human(tenant), timeout=5)
    assert got.prefix == made.key_prefix and got.status == "ACTIVE"
    assert made.key not in got.SerializeToString().decode(errors="ignore")


async def test_settings_are_kept(keys: Any, tenant: str) -> None:
    made = await create(
        keys,
        tenant,
        permissions=["keys:read", "run:*"],
        allowed_workers=["w1"],
        expires_in_days=30,
        rate_limit_rpm=60,
        max_concurrent_runs=3,
    )
    assert made.HasField("expires_at") and made.rate_limit_rpm == 60 and made.max_concurrent_runs == 3
    verdict = await verify(keys, made.key)
    assert verdict.code == rpc.VERIFY_CODE_VALID and list(verdict.scopes) == ["keys:read", "run:*"]
    assert verdict.rate_limit_rpm == 60 and verdict.tenant_id == tenant and verdict.key_id == made.id


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"expires_in_days": 0}, "expires_in_days"),
        ({"expires_in_days": 366}, "expires_in_days"),
        ({"rate_limit_rpm": 0}, "rate_limit_rpm"),
        ({"rate_limit_rpm": 1001}, "rate_limit_rpm"),
        ({"max_concurrent_runs": 0}, "max_concurrent_runs"),
        ({"max_concurrent_runs": 101}, "max_concurrent_runs"),
        ({"permissions": ["Not A Scope"]}, "permissions"),
    ],
)
async def test_invalid_requests_name_the_field_and_write_nothing(
    keys: Any, tenant: str, engines: dict[str, AsyncEngine], fields: dict[str, Any], field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await keys.CreateApiKey(rpc.CreateApiKeyRequest(**({"name": "ok"} | fields)), metadata=human(tenant), timeout=5)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field in (caught.value.details() or "")
    assert await sql(engines, "SELECT id FROM api_key WHERE tenant_id = :t", t=tenant) == []


async def test_request_id_makes_a_retry_return_the_first_key_without_its_secret(keys: Any, tenant: str) -> None:
    first = await create(keys, tenant, request_id="r-1")
    again = await create(keys, tenant, request_id="r-1")
    assert again.id == first.id and again.key == "" and first.key
    listed = await keys.ListApiKeys(rpc.ListApiKeysRequest(), metadata=human(tenant), timeout=5)
    assert listed.total == 1


@pytest.mark.parametrize("role", ["member", "viewer"])
async def test_members_and_viewers_may_not_create(keys: Any, tenant: str, role: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await create(keys, tenant, role=role)
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize(("scopes", "allowed"), [("keys:create", True), ("keys:*", True), ("run:*,keys:read", False)])
async def test_api_keys_need_a_keys_scope(keys: Any, tenant: str, scopes: str, allowed: bool) -> None:
    request = rpc.CreateApiKeyRequest(name="k", permissions=["keys:create"])
    call = keys.CreateApiKey(request, metadata=api_key_caller(tenant, scopes), timeout=5)
    if allowed:
        assert (await call).key
    else:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize(
    ("held", "granted"),
    [
        ("keys:create", ["*"]),  # issue 11: a keys:create key minted a * key
        ("keys:create", []),  # the defaults (run:*, read:*) are scopes too
        ("keys:create", ["keys:create", "keys:revoke"]),
        ("keys:*,run:x", ["run:*"]),
        ("keys:create,read:*", ["read:*", "run:x"]),
    ],
)
async def test_a_key_grants_only_scopes_it_holds(
    keys: Any, tenant: str, engines: dict[str, AsyncEngine], held: str, granted: list[str]
) -> None:
    request = rpc.CreateApiKeyRequest(name="escalate", permissions=granted)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await keys.CreateApiKey(request, metadata=api_key_caller(tenant, held), timeout=5)
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED and "lacks scope" in caught.value.details()
    assert (await sql(engines, "SELECT count(*) FROM api_key WHERE tenant_id = :t", t=tenant))[0][0] == 0


@pytest.mark.parametrize(
    ("held", "granted"), [("*", ["*"]), ("keys:*,run:*", ["run:*", "keys:read"]), ("keys:create,run:*,read:*", [])]
)
async def test_a_key_grants_scopes_it_holds(keys: Any, tenant: str, held: str, granted: list[str]) -> None:
    request = rpc.CreateApiKeyRequest(name="delegate", permissions=granted)
    made = await keys.CreateApiKey(request, metadata=api_key_caller(tenant, held), timeout=5)
    assert made.key and list(made.permissions) == (granted or ["run:*", "read:*"])


async def test_humans_grant_any_scope(keys: Any, tenant: str) -> None:
    assert list((await create(keys, tenant, role="admin", permissions=["*"])).permissions) == ["*"]


async def test_twenty_concurrent_creates_against_a_quota_of_five(
    keys: Any, tenant: str, engines: dict[str, AsyncEngine]
) -> None:
    results = await asyncio.gather(*(create(keys, tenant, name=f"k{i}") for i in range(20)), return_exceptions=True)
    made = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(made) == 5 and len(refused) == 15
    assert all(r.code() is grpc.StatusCode.RESOURCE_EXHAUSTED for r in refused)
    assert all((r.details() or "").startswith("API key limit exceeded: ") for r in refused)
    rows = await sql(engines, "SELECT count(*) FROM api_key WHERE tenant_id = :t AND status = 'active'", t=tenant)
    assert rows[0][0] == 5


async def test_the_secret_is_in_one_response_and_nowhere_else(
    keys: Any, tenant: str, engines: dict[str, AsyncEngine], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    made = await create(keys, tenant)
    await verify(keys, made.key)
    await keys.RevokeApiKey(rpc.RevokeApiKeyRequest(key_id=made.id, reason="x"), metadata=human(tenant), timeout=5)
    got = await keys.GetApiKey(rpc.GetApiKeyRequest(key_id=made.id), metadata=human(tenant), timeout=5)
    listed = await keys.ListApiKeys(rpc.ListApiKeysRequest(), metadata=human(tenant), timeout=5)
    for reply in (got, listed):
        assert made.key.encode() not in reply.SerializeToString()
    assert made.key not in caplog.text
    for table in ("api_key", "api_key_audit", "event", "tenant_state"):
        dump = await sql(engines, f"SELECT CAST(t.* AS text) FROM {table} t")
        assert dump and not any(made.key in row[0] for row in dump), table
    random_part = made.key[4:-6]
    assert not any(random_part in row[0] for row in await sql(engines, "SELECT CAST(t.* AS text) FROM api_key t"))
