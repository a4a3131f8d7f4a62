from typing import Any

import grpc
import pytest

from aos.api_keys.v1 import api_keys_service_pb2 as rpc
from tests.api_keys.conftest import create
from tests.conftest import human


async def listing(keys: Any, tenant: str, role: str = "viewer", **fields: Any) -> Any:
    return await keys.ListApiKeys(rpc.ListApiKeysRequest(**fields), metadata=human(tenant, role=role), timeout=5)


async def test_newest_first_with_status_filters(keys: Any, tenant: str) -> None:
    made = [await create(keys, tenant, name=f"k{i}") for i in range(3)]
    await keys.RevokeApiKey(rpc.RevokeApiKeyRequest(key_id=made[0].id), metadata=human(tenant), timeout=5)
    await keys.DisableApiKey(rpc.DisableApiKeyRequest(key_id=made[1].id), metadata=human(tenant), timeout=5)
    everything = await listing(keys, tenant)
    assert [k.key_id for k in everything.items] == [m.id for m in reversed(made)]
    assert [k.status for k in everything.items] == ["ACTIVE", "DISABLED", "REVOKED"]
    assert all(not k.HasField("last_used_at") for k in everything.items)
    revoked = await listing(keys, tenant, status="REVOKED")
    assert [k.key_id for k in revoked.items] == [made[0].id] and revoked.filters_applied["status"] == "revoked"
    assert [k.key_id for k in (await listing(keys, tenant, status="active")).items] == [made[2].id]


async def test_keyset_and_legacy_paging(keys: Any, tenant: str) -> None:
    made = [await create(keys, tenant, name=f"k{i}") for i in range(5)]
    newest_first = [m.id for m in reversed(made)]
    first = await listing(keys, tenant, page_size=2)
    second = await listing(keys, tenant, page_size=2, page_token=first.next_page_token)
    third = await listing(keys, tenant, page_size=2, page_token=second.next_page_token)
    assert [k.key_id for page in (first, second, third) for k in page.items] == newest_first
    assert third.next_page_token == "" and not third.has_more
    legacy = await listing(keys, tenant, limit=2, offset=2)
    assert [k.key_id for k in legacy.items] == newest_first[2:4] and legacy.total == 5 and legacy.has_more


@pytest.mark.parametrize(
    "fields", [{"status": "bogus"}, {"limit": 101}, {"offset": -1}, {"page_token": "!!"}, {"page_size": 1000}]
)
async def test_bad_queries_are_refused(keys: Any, tenant: str, fields: dict[str, Any]) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await listing(keys, tenant, **fields)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def test_tenant_list_hides_revoked_keys_unless_asked(keys: Any, tenant: str) -> None:
    kept, gone = await create(keys, tenant, name="kept"), await create(keys, tenant, name="gone")
    await keys.RevokeApiKey(rpc.RevokeApiKeyRequest(key_id=gone.id), metadata=human(tenant), timeout=5)
    plain = await keys.ListTenantApiKeys(rpc.ListTenantApiKeysRequest(), metadata=human(tenant), timeout=5)
    assert [k.id for k in plain.keys] == [kept.id] and plain.keys[0].status == "active"
    every = await keys.ListTenantApiKeys(
        rpc.ListTenantApiKeysRequest(include_revoked=True), metadata=human(tenant), timeout=5
    )
    assert {k.id for k in every.keys} == {kept.id, gone.id}


async def test_other_tenants_keys_are_invisible(keys: Any, tenant: str, account: Any) -> None:
    from aos.account.v1 import account_service_pb2 as acc

    other = (await account.CreateTenant(acc.CreateTenantRequest(name="Other"), metadata=human(), timeout=5)).tenant
    await create(keys, other.tenant_id)
    assert (await listing(keys, tenant)).total == 0
