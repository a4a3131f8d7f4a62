from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias

import grpc
from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aos.api_keys.v1 import api_keys_service_pb2 as rpc
from aos.api_keys.v1 import api_keys_service_pb2_grpc
from aos.onboarding.v1 import onboarding_pb2
from aos.onboarding.v1.onboarding_service_pb2 import NotifyEvidenceRequest as Evidence
from services.api_keys import keys, repository, responses
from services.api_keys.clients import Account
from services.api_keys.models import ApiKey, ApiKeyAudit
from services.api_keys.verify import Verifier
from services.common import events, notify, validation
from services.common.errors import FailedPrecondition, InvalidArgument, PermissionDenied, ResourceExhausted
from services.common.interceptors import request_id
from services.common.principal import Kind, Principal, caller
from services.common.server import created

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
OWNER = "api_keys"
MANAGERS = ("owner", "admin")
READERS = ("owner", "admin", "member", "viewer")
STATUSES = ("active", "revoked", "expired", "disabled")


@contextlib.contextmanager
def unprocessable() -> Iterator[None]:
    """Validation errors that the legacy REST API answered with 422."""
    try:
        yield
    except InvalidArgument as exc:
        exc.http_status = 422
        raise


def _optional(request: Any, field: str, low: int, high: int) -> int | None:
    return validation.between(field, getattr(request, field), low, high) if request.HasField(field) else None


def _strings(field: str, values: Any, pattern: Any = None, high: int = 100) -> list[str]:
    if len(values) > 50:
        raise InvalidArgument(field, "at most 50 entries")
    cleaned = [validation.length(field, v, 1, high) for v in values]
    if pattern is not None and (bad := next((v for v in cleaned if not pattern.fullmatch(v)), None)):
        raise InvalidArgument(field, f"{bad!r} is not a scope like 'keys:read', 'run:*' or '*'")
    return list(dict.fromkeys(cleaned))


def _new_key(request: rpc.CreateApiKeyRequest, who: Principal) -> tuple[ApiKey, str]:
    """The validated row of a new key and its secret; INVALID_ARGUMENT (422 on REST) names the field."""
    with unprocessable():
        name = validation.length("name", request.name, 1, 100)
        days = _optional(request, "expires_in_days", 1, 365)
        row = ApiKey(
            id=str(uuid.uuid4()),
            tenant_id=who.tenant(),
            created_by=who.actor_id,
            name=name,
            status="active",
            expires_at=datetime.now(UTC) + timedelta(days=days) if days else None,
            permissions=_strings("permissions", request.permissions, keys.SCOPE) or list(keys.DEFAULT_SCOPES),
            allowed_workers=_strings("allowed_workers", request.allowed_workers),
            rate_limit_rpm=_optional(request, "rate_limit_rpm", 1, 1000),
            max_concurrent_runs=_optional(request, "max_concurrent_runs", 1, 100),
            request_id=validation.length("request_id", request.request_id, 0, 100) or None,
        )
    issued = keys.issue()
    row.key_prefix, row.key_hash = issued.prefix, issued.digest
    return row, issued.secret


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


class ApiKeysServicer(api_keys_service_pb2_grpc.ApiKeysServiceServicer):
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], account: Account, verifier: Verifier, onboarding: notify.Peer
    ) -> None:
        self._sessions, self._account, self._verifier = sessions, account, verifier
        self._onboarding = onboarding

    async def _changed(self, key: ApiKey) -> None:
        """After the commit: this replica's cache forgets the key, onboarding's gate too."""
        self._verifier.invalidate(f"key:{key.id}")
        await self._onboarding.tell(
            Evidence(tenant_id=key.tenant_id, kind=onboarding_pb2.EVIDENCE_KIND_API_KEY_CHANGED, key_id=key.id),
            key.tenant_id,
        )

    async def _record(
        self, session: AsyncSession, who: Principal, key: ApiKey, action: str, old: dict[str, Any], new: dict[str, Any]
    ) -> None:
        """The audit row, the event and (for verdict changes) the cache NOTIFY, in the RPC's transaction.
        Other replicas drop the key at commit; the handler also drops it here after commit, so a caller
        reads its own write without waiting for the notification."""
        await repository.audit(
            session,
            ApiKeyAudit(
                tenant_id=key.tenant_id,
                api_key_id=key.id,
                action=f"{action}_api_key",
                actor_type=who.actor_type,
                actor_id=who.actor_id,
                old_value=old,
                new_value=new,
                request_id=request_id.get(),
            ),
        )
        await events.emit(
            session,
            event_type=f"api_key.{action}d",  # created, revoked, rotated, enabled, disabled
            tenant_id=key.tenant_id,
            actor_type=who.actor_type,
            actor_id=who.actor_id,
            decision_owner=OWNER,
            payload={"key_id": key.id, "prefix": key.key_prefix, **new},
        )
        if action != "create":
            await repository.notify(session, "key", key.id)

    async def CreateApiKey(self, request: rpc.CreateApiKeyRequest, context: Context) -> rpc.CreateApiKeyResponse:
        who = caller(context)
        who.require_role(*MANAGERS)
        new, secret = _new_key(request, who)
        tenant = await self._account.tenant(new.tenant_id)  # call out first; never inside the transaction
        async with self._sessions.begin() as session:
            await repository.lock_tenant(session, new.tenant_id, tenant.status, tenant.max_api_keys)
            key = await repository.by_request_id(session, new.tenant_id, new.request_id)
            if key is not None:
                secret = ""  # a retry: the first response was the only one with the secret
            else:
                if tenant.status != "active":
                    raise FailedPrecondition(f"tenant is {tenant.status}", reason="TENANT_INACTIVE")
                in_use = await _within_quota(session, new.tenant_id, tenant.max_api_keys)
                key = await repository.add(session, new)
                await self._record(session, who, key, "create", {}, {"name": key.name, "first_valid_key": in_use == 0})
        if secret:
            await self._onboarding.tell(
                Evidence(tenant_id=key.tenant_id, kind=onboarding_pb2.EVIDENCE_KIND_API_KEY_CREATED, key_id=key.id),
                key.tenant_id,
            )
        await created(context)
        return responses.created(key, secret)

    async def GetApiKey(self, request: rpc.GetApiKeyRequest, context: Context) -> rpc.GetApiKeyResponse:
        who = caller(context)
        who.require_role(*READERS)
        async with self._sessions() as session:
            key = await repository.get(session, who.tenant(), request.key_id)
        return rpc.GetApiKeyResponse(**responses.api_key_fields(key))

    async def ListApiKeys(self, request: rpc.ListApiKeysRequest, context: Context) -> rpc.ListApiKeysResponse:
        who = caller(context)
        who.require_role(*READERS)
        tenant_id = who.tenant()
        legacy = bool(request.limit or request.offset)
        with unprocessable():
            status = validation.one_of("status", request.status.lower(), ("", *STATUSES)) or None
            if legacy and (request.page_token or request.page_size):
                raise InvalidArgument("page_token", "cannot be combined with limit/offset")
            size = validation.page_size("limit" if legacy else "page_size", request.limit or request.page_size)
            offset = validation.between("offset", request.offset, 0, responses.MAX_INT32)
            after = validation.decode_token(request.page_token)
        where = [repository.by_status(status)] if status else []
        async with self._sessions() as session:
            rows, total = await repository.list_keys(session, tenant_id, where, after, offset, size)
        more = len(rows) == size and (offset + size < total if legacy else True)
        token = validation.encode_token(rows[-1].created_at, rows[-1].id) if more and not legacy else ""
        return rpc.ListApiKeysResponse(
            items=[responses.api_key_pb(k) for k in rows],
            total=total,
            has_more=offset + len(rows) < total if legacy else bool(token),
            filters_applied={"tenant_id": tenant_id} | ({"status": status} if status else {}),
            next_page_token=token,
        )

    async def ListTenantApiKeys(
        self, request: rpc.ListTenantApiKeysRequest, context: Context
    ) -> rpc.ListTenantApiKeysResponse:
        who = caller(context)
        who.require_role(*READERS)
        where = [] if request.include_revoked else [ApiKey.status != "revoked"]
        async with self._sessions() as session:
            rows, _ = await repository.list_keys(session, who.tenant(), where, None, 0, 1000)
        return rpc.ListTenantApiKeysResponse(keys=[responses.tenant_api_key(k) for k in rows])

    async def ListPublicApiKeys(
        self, request: rpc.ListPublicApiKeysRequest, context: Context
    ) -> rpc.ListPublicApiKeysResponse:
        who = caller(context)
        who.require_role(*READERS)
        if request.as_of:
            raise InvalidArgument("as_of", "point-in-time reads are not supported", reason="UNSUPPORTED_PARAM")
        try:
            status = validation.one_of("status", request.status, ("", "active", "revoked", "expired")) or None
            limit = _optional(request, "limit", 1, 100) or 50
            offset = validation.between("offset", request.offset, 0, responses.MAX_INT32)
        except InvalidArgument as exc:
            exc.reason = "INVALID_QUERY"
            raise
        where = [repository.by_status(status)] if status else []
        async with self._sessions() as session:
            rows, total = await repository.list_keys(session, who.tenant(), where, None, offset, limit)
        correlation = dict(context.invocation_metadata() or ()).get("x-correlation-id", "")
        return responses.public_list(rows, total, limit, offset, request_id.get(), str(correlation))

    async def RevokeApiKey(self, request: rpc.RevokeApiKeyRequest, context: Context) -> rpc.RevokeApiKeyResponse:
        who = caller(context)
        who.require_role(*MANAGERS)
        tenant_id = who.tenant()
        with unprocessable():
            reason = validation.length("reason", request.reason or "Manual revocation", 1, 255)
        async with self._sessions.begin() as session:
            before = await repository.get(session, tenant_id, request.key_id, lock=True)
            key = await repository.change(
                session, tenant_id, before.id, status="revoked", revoked_at=func.now(), revoked_reason=reason
            )
            await self._record(session, who, key, "revoke", {"status": before.status}, {"reason": reason})
        await self._changed(key)
        return responses.revoked(key, request_id.get())

    async def RotateApiKey(self, request: rpc.RotateApiKeyRequest, context: Context) -> rpc.RotateApiKeyResponse:
        who = caller(context)
        who.require_role(*MANAGERS)
        if who.kind is Kind.API_KEY and not who.has_scope("keys:revoke"):
            raise PermissionDenied("API key lacks scope keys:revoke", reason="SCOPE_REQUIRED")
        tenant_id = who.tenant()
        grace = timedelta(hours=_optional(request, "grace_period_hours", 0, 168) or 0)
        if not request.HasField("grace_period_hours"):
            grace = timedelta(hours=24)
        async with self._sessions.begin() as session:
            old = await repository.get(session, tenant_id, request.key_id, lock=True)
            now = datetime.now(UTC)
            if keys.status(old.status, old.expires_at, now) != "active" or old.rotated_to:
                raise FailedPrecondition("only a valid, unrotated key can be rotated", reason="API_KEY_NOT_ROTATABLE")
            issued = keys.issue()
            new = await repository.add(
                session,
                ApiKey(
                    id=str(uuid.uuid4()),
                    tenant_id=tenant_id,
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
                ),
            )
            # The old key lives on for the grace period, but never past its own expiry.
            until = min(old.expires_at, now + grace) if old.expires_at else now + grace
            old = await repository.change(session, tenant_id, old.id, expires_at=until, rotated_to=new.id)
            await self._record(
                session, who, old, "rotate", {}, {"new_key_id": new.id, "grace_expires_at": until.isoformat()}
            )
        await self._changed(old)
        return rpc.RotateApiKeyResponse(
            api_key=responses.api_key_pb(new), key=issued.secret, previous=responses.api_key_pb(old)
        )

    async def EnableApiKey(self, request: rpc.EnableApiKeyRequest, context: Context) -> rpc.EnableApiKeyResponse:
        who = caller(context)
        who.require_role(*MANAGERS)
        tenant_id = who.tenant()
        tenant = await self._account.tenant(tenant_id)
        async with self._sessions.begin() as session:
            await repository.lock_tenant(session, tenant_id, tenant.status, tenant.max_api_keys)
            key = await repository.get(session, tenant_id, request.key_id, lock=True)
            if key.status == "revoked":
                raise FailedPrecondition("a revoked key cannot be enabled", reason="API_KEY_REVOKED")
            if key.status == "disabled":
                await _within_quota(session, tenant_id, tenant.max_api_keys)
                key = await repository.change(session, tenant_id, key.id, status="active")
                await self._record(session, who, key, "enable", {"status": "disabled"}, {"status": "active"})
        await self._changed(key)
        return rpc.EnableApiKeyResponse(api_key=responses.api_key_pb(key))

    async def DisableApiKey(self, request: rpc.DisableApiKeyRequest, context: Context) -> rpc.DisableApiKeyResponse:
        who = caller(context)
        who.require_role(*MANAGERS)
        tenant_id = who.tenant()
        async with self._sessions.begin() as session:
            key = await repository.get(session, tenant_id, request.key_id, lock=True)
            if key.status == "revoked":
                raise FailedPrecondition("a revoked key cannot be disabled", reason="API_KEY_REVOKED")
            if key.status == "active":
                key = await repository.change(session, tenant_id, key.id, status="disabled")
                await self._record(session, who, key, "disable", {"status": "active"}, {"status": "disabled"})
        await self._changed(key)
        return rpc.DisableApiKeyResponse(api_key=responses.api_key_pb(key))

    async def VerifyApiKey(self, request: rpc.VerifyApiKeyRequest, context: Context) -> rpc.VerifyApiKeyResponse:
        return await self._verifier.verify(request.secret)

    async def RecordApiKeyUsage(
        self, request: rpc.RecordApiKeyUsageRequest, context: Context
    ) -> rpc.RecordApiKeyUsageResponse:
        uses = [
            (validation.length("key_id", use.key_id, 1, 36), use.requests, use.last_used_at.ToNanoseconds() / 1e9)
            for use in request.usage
            if use.requests
        ]
        for key_id, requests, at in uses:
            self._verifier.add_usage(key_id, requests, at or time.time())
        return rpc.RecordApiKeyUsageResponse()

    async def GetActivationEvidence(
        self, request: rpc.GetActivationEvidenceRequest, context: Context
    ) -> rpc.GetActivationEvidenceResponse:
        tenant_id = validation.length("tenant_id", request.tenant_id, 1, 36)
        async with self._sessions() as session:
            return rpc.GetActivationEvidenceResponse(has_valid_key=await repository.has_valid_key(session, tenant_id))
