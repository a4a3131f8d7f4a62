from typing import Any

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from aos.api_keys.v1 import api_keys_service_pb2 as rpc
from tests.api_keys.conftest import create, sql, verify
from tests.conftest import human


async def revoke(keys: Any, tenant: str, key_id: str, reason: str = "", role: str = "owner") -> Any:
    return await keys.RevokeApiKey(
        rpc.RevokeApiKeyRequest(key_id=key_id, reason=reason), metadata=human(tenant, role=role), timeout=5
    )


async def test_revoke_is_audited_emitted_and_refused_by_verify(
    verifier: Any, keys: Any, tenant: str, engines: dict[str, AsyncEngine]
) -> None:
    made = await create(keys, tenant)
    reply = await revoke(keys, tenant, made.id, reason="x")
    assert reply.success and reply.data.message == f"API key {made.id} revoked"
    assert reply.api_key.status == "REVOKED" and reply.api_key.revoked_reason == "x"
    assert (await verify(verifier, made.key)).code == rpc.VERIFY_CODE_REVOKED
    audit = await sql(
        engines, "SELECT action, new_value FROM api_key_audit WHERE api_key_id = :k ORDER BY id", k=made.id
    )
    assert [a for a, _ in audit] == ["create_api_key", "revoke_api_key"] and audit[1][1] == {"reason": "x"}
    emitted = await sql(
        engines, "SELECT event_type, payload FROM event WHERE tenant_id = :t ORDER BY sequence_no", t=tenant
    )
    assert [e for e, _ in emitted] == ["api_key.created", "api_key.revoked"]
    assert emitted[1][1]["key_id"] == made.id and emitted[1][1]["reason"] == "x"
    got = await keys.GetApiKey(rpc.GetApiKeyRequest(key_id=made.id), metadata=human(tenant), timeout=5)
    assert got.HasField("revoked_at") and got.revoked_reason == "x"


async def test_default_reason(keys: Any, tenant: str) -> None:
    made = await create(keys, tenant)
    assert (await revoke(keys, tenant, made.id)).api_key.revoked_reason == "Manual revocation"


async def test_another_tenants_key_is_not_found_and_stays_active(verifier: Any, keys: Any, account: Any) -> None:
    from aos.account.v1 import account_service_pb2 as acc

    owners = [
        (await account.CreateTenant(acc.CreateTenantRequest(name=n), metadata=human(), timeout=5)).tenant.tenant_id
        for n in ("Victim", "Attacker")
    ]
    victim, attacker = owners
    made = await create(keys, victim)
    for call in (
        revoke(keys, attacker, made.id),
        keys.GetApiKey(rpc.GetApiKeyRequest(key_id=made.id), metadata=human(attacker), timeout=5),
        keys.DisableApiKey(rpc.DisableApiKeyRequest(key_id=made.id), metadata=human(attacker), timeout=5),
        keys.RotateApiKey(rpc.RotateApiKeyRequest(key_id=made.id), metadata=human(attacker), timeout=5),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() is grpc.StatusCode.NOT_FOUND
    assert (await verify(verifier, made.key)).code == rpc.VERIFY_CODE_VALID


async def test_unknown_id_is_not_found(keys: Any, tenant: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await revoke(keys, tenant, "no-such-key")
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND


async def test_members_may_not_revoke(keys: Any, tenant: str) -> None:
    made = await create(keys, tenant)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await revoke(keys, tenant, made.id, role="member")
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED


async def test_revoking_frees_quota(keys: Any, tenant: str) -> None:
    made = [await create(keys, tenant, name=f"k{i}") for i in range(5)]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await create(keys, tenant)
    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    await revoke(keys, tenant, made[0].id)
    assert (await create(keys, tenant)).key
