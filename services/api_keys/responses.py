"""Proto ⇄ row: validated rows and pages from requests; the canonical ApiKey and the legacy REST shapes
of SPEC 2.3-2.5, built from a row."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf import struct_pb2

from aos.api_keys.v1 import api_key_pb2 as pb
from aos.api_keys.v1 import api_keys_service_pb2 as rpc
from services.api_keys import keys
from services.api_keys.models import ApiKey
from services.common import db, paging, querystring, rest, validation
from services.common.errors import InvalidArgument
from services.common.principal import Principal

MAX_INT32 = 2**31 - 1
NULL = struct_pb2.Value(null_value=struct_pb2.NULL_VALUE)
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


def new_key(request: rpc.CreateApiKeyRequest, who: Principal) -> tuple[ApiKey, str]:
    """The validated row of a new key and its secret; INVALID_ARGUMENT (422 on REST) names the field."""
    with unprocessable():
        name = validation.name("name", request.name, 1, 100)
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


def grace(request: rpc.RotateApiKeyRequest) -> timedelta:
    """How long a rotated key stays valid: 24 hours unless the request says (0..168)."""
    hours = _optional(request, "grace_period_hours", 0, 168)
    return timedelta(hours=24 if hours is None else hours)


def list_page(request: rpc.ListApiKeysRequest) -> tuple[str | None, paging.Page]:
    """The status filter and the page; invalid values are 422 on REST."""
    with unprocessable():
        status = validation.one_of("status", request.status.lower(), ("", *STATUSES)) or None
        return status, paging.request(request.page_token, request.page_size, request.limit, request.offset)


def public_page(request: rpc.ListPublicApiKeysRequest) -> tuple[str | None, paging.Page]:
    """SPEC 2.5's filter and offset page, from the REST query string when there is one; invalid values are
    INVALID_QUERY, as_of is UNSUPPORTED_PARAM."""
    if request.raw_query:
        params = querystring.parse(request.raw_query)
        querystring.refuse_as_of(params)
        request = querystring.message(params, rpc.ListPublicApiKeysRequest, ("raw_query",))
    if request.as_of:
        raise InvalidArgument("as_of", "point-in-time reads are not supported", reason="UNSUPPORTED_PARAM")
    try:
        status = validation.one_of("status", request.status, ("", "active", "revoked", "expired")) or None
        limit = _optional(request, "limit", 1, 100) or 50
        offset = validation.between("offset", request.offset, 0, MAX_INT32)
    except InvalidArgument as exc:
        exc.reason = "INVALID_QUERY"
        raise
    return status, paging.Page(limit, offset, legacy=True)


def api_key_fields(k: ApiKey | db.Row) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "key_id": k.id,
        "name": k.name,
        "prefix": k.key_prefix,
        "status": keys.status(k.status, k.expires_at, datetime.now(UTC)).upper(),
        "created_at": k.created_at,
        "total_requests": min(k.total_requests, MAX_INT32),
        "permissions": k.permissions,
        "allowed_workers": k.allowed_workers,
        "rate_limit_rpm": k.rate_limit_rpm or 0,
        "max_concurrent_runs": k.max_concurrent_runs or 0,
        "revoked_reason": k.revoked_reason or "",
        "rotated_to_key_id": k.rotated_to or "",
    }
    for name in ("last_used_at", "expires_at", "revoked_at"):
        if (value := getattr(k, name)) is not None:
            fields[name] = value
    return fields


def api_key_pb(k: ApiKey | db.Row) -> pb.ApiKey:
    return pb.ApiKey(**api_key_fields(k))


def tenant_api_key(k: ApiKey | db.Row) -> pb.TenantApiKey:
    f = api_key_fields(k)
    return pb.TenantApiKey(
        id=k.id,
        name=k.name,
        key_prefix=k.key_prefix,
        status=f["status"].lower(),
        total_requests=f["total_requests"],
        **{n: f[n] for n in ("last_used_at", "expires_at", "created_at") if n in f},
    )


TENANT_KEY = ("id", "name", "key_prefix", "status", "last_used_at", "total_requests", "expires_at", "created_at")


def tenant_list(rows: Sequence[ApiKey | db.Row]) -> rpc.ListTenantApiKeysResponse:
    """The typed keys for gRPC callers and, in `body`, the bare array REST answers (SPEC 2.4)."""
    keys = [tenant_api_key(k) for k in rows]
    return rpc.ListTenantApiKeysResponse(keys=keys, body=rest.json_body([rest.pick(k, TENANT_KEY) for k in keys]))


def created(k: ApiKey, secret: str) -> rpc.CreateApiKeyResponse:
    f = api_key_fields(k)
    return rpc.CreateApiKeyResponse(
        id=k.id,
        name=k.name,
        key_prefix=k.key_prefix,
        key=secret,
        status=f["status"].lower(),
        total_requests=f["total_requests"],
        permissions=k.permissions,
        allowed_workers=k.allowed_workers,
        rate_limit_rpm=f["rate_limit_rpm"],
        max_concurrent_runs=f["max_concurrent_runs"],
        **{n: f[n] for n in ("last_used_at", "expires_at", "created_at") if n in f},
    )


def revoked(k: ApiKey, request_id: str) -> rpc.RevokeApiKeyResponse:
    meta = pb.EnvelopeMeta(request_id=request_id)
    meta.timestamp.FromDatetime(datetime.now(UTC))
    return rpc.RevokeApiKeyResponse(
        success=True,
        data=pb.RevokeResult(success=True, message=f"API key {k.id} revoked"),
        meta=meta,
        api_key=api_key_pb(k),
    )


def public_list(
    rows: list[db.Row], total: int, limit: int, offset: int, request_id: str, correlation_id: str
) -> rpc.ListPublicApiKeysResponse:
    """The typed page for gRPC callers and, in `body`, SPEC 2.5's exact body (null where unset) that REST
    answers alone."""
    more = offset + len(rows) < total
    reply = rpc.ListPublicApiKeysResponse(
        keys=[api_key_pb(k) for k in rows],
        total=total,
        has_more=more,
        pagination=pb.Pagination(
            limit=limit, offset=offset, next_offset=struct_pb2.Value(number_value=offset + len(rows)) if more else NULL
        ),
        meta=pb.ListMeta(request_id=request_id, correlation_id=correlation_id, as_of=NULL),
    )
    reply.generated_at.FromDatetime(datetime.now(UTC))
    page = rest.pick(reply, ("total", "has_more", "pagination", "generated_at", "meta"))
    reply.body.CopyFrom(rest.json_body({"keys": [_legacy_key(k) for k in reply.keys], **page}))
    return reply


# The legacy bodies of the routes that share CreateApiKey, GetApiKey and ListApiKeys with /v1 (SPEC 2.3, 2.4),
# built from those RPCs' typed answers: SPEC's keys exactly, null where the legacy API printed null.
LEGACY_KEY = ("key_id", "name", "prefix", "status", "created_at", "last_used_at", "expires_at", "total_requests")


UNSET_AS_NULL = ("rate_limit_rpm", "max_concurrent_runs", "revoked_reason")


def _legacy_key(k: Any, fields: tuple[str, ...] = LEGACY_KEY) -> dict[str, Any]:
    return rest.pick(k, fields, UNSET_AS_NULL)


def legacy_created(reply: rpc.CreateApiKeyResponse) -> rpc.CreateTenantApiKeyResponse:
    fields = ("id", "name", "key_prefix", "key", "status", "last_used_at", "total_requests", "expires_at")
    shaped = _legacy_key(reply, (*fields, "created_at"))
    return rpc.CreateTenantApiKeyResponse(body=rest.json_body(shaped))


def legacy_detail(reply: rpc.GetApiKeyResponse) -> rpc.GetLegacyApiKeyResponse:
    detail = ("permissions", "allowed_workers", "rate_limit_rpm", "max_concurrent_runs", "revoked_at", "revoked_reason")
    return rpc.GetLegacyApiKeyResponse(body=rest.json_body(_legacy_key(reply, LEGACY_KEY + detail)))


def legacy_list(reply: rpc.ListApiKeysResponse) -> rpc.ListLegacyApiKeysResponse:
    shaped = {
        "items": [_legacy_key(k) for k in reply.items],
        "total": reply.total,
        "has_more": reply.has_more,
        "filters_applied": dict(reply.filters_applied),
    }
    return rpc.ListLegacyApiKeysResponse(body=rest.json_body(shaped))
