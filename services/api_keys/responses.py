"""The response shapes: the canonical ApiKey and the legacy REST shapes of SPEC 2.3-2.5, built from a row."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf import struct_pb2

from aos.api_keys.v1 import api_key_pb2 as pb
from aos.api_keys.v1 import api_keys_service_pb2 as rpc
from services.api_keys import keys
from services.api_keys.models import ApiKey

MAX_INT32 = 2**31 - 1
NULL = struct_pb2.Value(null_value=struct_pb2.NULL_VALUE)


def api_key_fields(k: ApiKey) -> dict[str, Any]:
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


def api_key_pb(k: ApiKey) -> pb.ApiKey:
    return pb.ApiKey(**api_key_fields(k))


def tenant_api_key(k: ApiKey) -> pb.TenantApiKey:
    f = api_key_fields(k)
    return pb.TenantApiKey(
        id=k.id,
        name=k.name,
        key_prefix=k.key_prefix,
        status=f["status"].lower(),
        total_requests=f["total_requests"],
        **{n: f[n] for n in ("last_used_at", "expires_at", "created_at") if n in f},
    )


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
    rows: list[ApiKey], total: int, limit: int, offset: int, request_id: str, correlation_id: str
) -> rpc.ListPublicApiKeysResponse:
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
    return reply
