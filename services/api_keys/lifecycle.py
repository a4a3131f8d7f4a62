"""A key's changes, inside the RPC's transaction: each checks its rule, writes the row and records the
change (an audit row, an event and, when a verdict changes, the cache NOTIFY that every replica acts on
at commit). Nothing here opens a transaction or calls another service."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession

from services.api_keys import keys, repository
from services.api_keys.clients import TenantInfo
from services.api_keys.models import ApiKey, ApiKeyAudit
from services.common import events
from services.common.errors import FailedPrecondition, ResourceExhausted
from services.common.interceptors import request_id
from services.common.principal import Principal

OWNER = "api_keys"


async def _record(
    session: AsyncSession, who: Principal, key: ApiKey, action: str, old: dict[str, Any], new: dict[str, Any]
) -> None:
    """Other replicas drop the key at commit; the servicer also drops it here after commit, so a caller
    reads its own write without waiting for the notification."""
    audit = ApiKeyAudit(
        tenant_id=key.tenant_id,
        api_key_id=key.id,
        action=f"{action}_api_key",
        actor_type=who.actor_type,
        actor_id=who.actor_id,
        old_value=old,
        new_value=new,
        request_id=request_id.get(),
    )
    await repository.audit(session, audit)
    if action != "create":
        await repository.notify(session, "key", key.id)
    # api_key.created, .revoked, .rotated, .enabled, .disabled; last, as events.emit asks
    payload = {"key_id": key.id, "prefix": key.key_prefix, **new}
    await events.record(session, OWNER, who, f"api_key.{action}d", key.tenant_id, payload)


async def _within_quota(session: AsyncSession, tenant_id: str, limit: int) -> int:
    """Valid keys in use, or RESOURCE_EXHAUSTED at the plan's limit. Callers hold the tenant row's lock."""
    in_use = await repository.count_valid(session, tenant_id)
    if in_use >= limit:
        raise ResourceExhausted(
            f"API key limit exceeded: {in_use} of {limit} keys in use",
            reason="API_KEY_LIMIT_EXCEEDED",
            metadata={"limit": str(limit)},
        )
    return in_use


async def create(session: AsyncSession, who: Principal, new: ApiKey, tenant: TenantInfo) -> tuple[ApiKey, bool, bool]:
    """The new key, or the one an earlier request with the same request_id created (False: a retry), and
    whether it is the tenant's only valid key (the first, or the first again after all were revoked)."""
    await repository.lock_tenant(session, new.tenant_id, tenant.status, tenant.max_api_keys)
    earlier = await repository.by_request_id(session, new.tenant_id, new.request_id)
    if earlier is not None:
        return earlier, False, False
    if tenant.status != "active":
        raise FailedPrecondition(f"tenant is {tenant.status}", reason="TENANT_INACTIVE")
    in_use = await _within_quota(session, new.tenant_id, tenant.max_api_keys)
    key = await repository.add(session, new)
    await _record(session, who, key, "create", {}, {"name": key.name, "first_valid_key": in_use == 0})
    return key, True, in_use == 0


async def revoke(session: AsyncSession, who: Principal, tenant_id: str, key_id: str, reason: str) -> ApiKey:
    before = await repository.get(session, tenant_id, key_id, lock=True)
    key = await repository.change(
        session, tenant_id, before.id, status="revoked", revoked_at=func.now(), revoked_reason=reason
    )
    await _record(session, who, key, "revoke", {"status": before.status}, {"reason": reason})
    return key


def _successor(old: ApiKey, who: Principal, issued: keys.Issued) -> ApiKey:
    """A new secret with the old key's name, expiry and limits."""
    return ApiKey(
        id=str(uuid.uuid4()),
        tenant_id=old.tenant_id,
        created_by=who.actor_id,
        name=old.name,
        key_prefix=issued.prefix,
        key_hash=issued.digest,
        status="active",
        expires_at=old.expires_at,
        permissions=old.permissions,
        allowed_workers=old.allowed_workers,
        rate_limit_rpm=old.rate_limit_rpm,
        max_concurrent_runs=old.max_concurrent_runs,
    )


async def rotate(
    session: AsyncSession, who: Principal, tenant_id: str, key_id: str, grace: timedelta, tenant: TenantInfo
) -> tuple[ApiKey, ApiKey, str]:
    """The old key (valid for the grace period, never past its own expiry), its successor and the
    successor's secret. The caller must hold every scope of the key (the successor has the same ones),
    and during the grace period both keys count against the quota."""
    await repository.lock_tenant(session, tenant_id, tenant.status, tenant.max_api_keys)
    old = await repository.get(session, tenant_id, key_id, lock=True)
    who.require_scopes(old.permissions)
    now = datetime.now(UTC)
    if keys.status(old.status, old.expires_at, now) != "active" or old.rotated_to:
        raise FailedPrecondition("only a valid, unrotated key can be rotated", reason="API_KEY_NOT_ROTATABLE")
    if grace:  # the old key stays valid beside its successor: one more key in use
        await _within_quota(session, tenant_id, tenant.max_api_keys)
    issued = keys.issue()
    new = await repository.add(session, _successor(old, who, issued))
    until = min(old.expires_at, now + grace) if old.expires_at else now + grace
    old = await repository.change(session, tenant_id, old.id, expires_at=until, rotated_to=new.id)
    await _record(session, who, old, "rotate", {}, {"new_key_id": new.id, "grace_expires_at": until.isoformat()})
    return old, new, issued.secret


async def enable(session: AsyncSession, who: Principal, tenant_id: str, key_id: str, tenant: TenantInfo) -> ApiKey:
    """Re-enabling counts against the quota again; an enabled key is left as it is."""
    await repository.lock_tenant(session, tenant_id, tenant.status, tenant.max_api_keys)
    key = await repository.get(session, tenant_id, key_id, lock=True)
    who.require_scopes(key.permissions)  # enabling grants the key's scopes again
    if key.status == "revoked":
        raise FailedPrecondition("a revoked key cannot be enabled", reason="API_KEY_REVOKED")
    if key.status == "disabled":
        await _within_quota(session, tenant_id, tenant.max_api_keys)
        key = await repository.change(session, tenant_id, key.id, status="active")
        await _record(session, who, key, "enable", {"status": "disabled"}, {"status": "active"})
    return key


async def disable(session: AsyncSession, who: Principal, tenant_id: str, key_id: str) -> ApiKey:
    key = await repository.get(session, tenant_id, key_id, lock=True)
    if key.status == "revoked":
        raise FailedPrecondition("a revoked key cannot be disabled", reason="API_KEY_REVOKED")
    if key.status == "active":
        key = await repository.change(session, tenant_id, key.id, status="disabled")
        await _record(session, who, key, "disable", {"status": "active"}, {"status": "disabled"})
    return key
