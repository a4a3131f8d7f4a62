"""The caller of an RPC, read from the x-aos-* metadata the gateway (or a calling service) sets.

Services never take a tenant id from a request body, query or client header: only from here.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum

import grpc

from aos.gate.v1 import gate_pb2
from services.common.errors import PermissionDenied, Unauthenticated


class Kind(StrEnum):
    HUMAN = "human"
    API_KEY = "api_key"
    OPERATOR = "operator"
    SERVICE = "service"


# The gate rule's principal kinds (aos.gate.v1) as the kinds a caller can be.
KINDS = {
    gate_pb2.PRINCIPAL_KIND_HUMAN: Kind.HUMAN,
    gate_pb2.PRINCIPAL_KIND_API_KEY: Kind.API_KEY,
    gate_pb2.PRINCIPAL_KIND_OPERATOR: Kind.OPERATOR,
    gate_pb2.PRINCIPAL_KIND_SERVICE: Kind.SERVICE,
}
# A tenant's roles (account's members table holds them): owners and admins manage, members also write
# projects, viewers only read. Every service checks roles with these sets and Principal.require_role.
OWNER = "owner"
ROLES = (OWNER, "admin", "member", "viewer")
MANAGERS = (OWNER, "admin")
WRITERS = (OWNER, "admin", "member")
READERS = ROLES
# Event actor_type per principal kind (SPEC 8).
_ACTOR_TYPES = {Kind.HUMAN: "user", Kind.API_KEY: "sdk", Kind.OPERATOR: "founder", Kind.SERVICE: "system"}


@dataclass(frozen=True)
class Principal:
    kind: Kind
    actor_id: str
    tenant_id: str = ""
    email: str = ""
    email_verified: bool = False
    role: str = ""
    scopes: tuple[str, ...] = ()
    # A human's organisation at the identity provider (signup maps it to the new tenant).
    org_id: str = ""

    @property
    def actor_type(self) -> str:
        return _ACTOR_TYPES[self.kind]

    def has_scope(self, scope: str) -> bool:
        namespace = scope.split(":", 1)[0]
        return any(s in ("*", scope, f"{namespace}:*") for s in self.scopes)

    def tenant(self) -> str:
        """The caller's tenant; a caller without one cannot touch tenant data."""
        if not self.tenant_id:
            raise PermissionDenied("the caller belongs to no tenant", reason="TENANT_REQUIRED")
        return self.tenant_id

    def require_role(self, *roles: str) -> None:
        """Humans act by their role in the tenant; other callers were admitted by their gate rule (and API
        keys by its scope)."""
        if self.kind is Kind.HUMAN and self.role not in roles:
            raise PermissionDenied(f"requires role {' or '.join(roles)}", reason="ROLE_REQUIRED")

    def require_scopes(self, scopes: Iterable[str]) -> None:
        """An API key hands on (grants, or takes over by rotation) only scopes it holds itself; humans are
        bounded by their role instead."""
        if self.kind is not Kind.API_KEY:
            return
        missing = [s for s in dict.fromkeys(scopes) if not self.has_scope(s)]
        if missing:
            raise PermissionDenied(
                f"API key lacks scope {', '.join(missing)}",
                reason="SCOPE_REQUIRED",
                metadata={"scopes": ",".join(missing)},
            )


_BY_VALUE = {kind.value: kind for kind in Kind}
# The caller of the RPC being handled, as the shared interceptor read it before the handler ran (one task per
# RPC, so it never outlives its call): the handler's caller() need not parse the metadata again.
current: ContextVar[Principal | None] = ContextVar("principal", default=None)


def from_metadata(metadata: Iterable[tuple[str, str | bytes]]) -> Principal | None:
    headers = {k: v for k, v in metadata if isinstance(v, str) and k.startswith("x-aos-")}
    kind, actor = _BY_VALUE.get(headers.get("x-aos-actor-type", "")), headers.get("x-aos-actor-id", "")
    if kind is None or not actor:
        return None
    return Principal(
        kind=kind,
        actor_id=actor,
        tenant_id=headers.get("x-aos-tenant-id", ""),
        email=headers.get("x-aos-email", ""),
        email_verified=headers.get("x-aos-email-verified", "") == "true",
        role=headers.get("x-aos-role", ""),
        scopes=tuple(s for s in headers.get("x-aos-scopes", "").split(",") if s),
        org_id=headers.get("x-aos-org-id", ""),
    )


def caller(context: grpc.aio.ServicerContext[object, object]) -> Principal:
    principal = current.get() or from_metadata(context.invocation_metadata() or ())
    if principal is None:
        raise Unauthenticated("authentication required", reason="MISSING_AUTH")
    return principal


def service_metadata(service: str, tenant_id: str = "") -> tuple[tuple[str, str], ...]:
    """Metadata a service sends when it calls another service's internal RPCs."""
    return (("x-aos-actor-type", Kind.SERVICE.value), ("x-aos-actor-id", service), ("x-aos-tenant-id", tenant_id))
