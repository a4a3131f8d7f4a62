"""Who a bearer token names, as the gate reads it.

Envoy's jwt_authn has verified the token (signature, issuer, audience, exp, nbf) and hands its payload over in
the CheckRequest's metadata. The claim names are the configured identity provider's. Envoy does not look at
iat, so the gate refuses a token issued in the future or living longer than the maximum. A human's tenant and
role are never the token's to say: account's members table decides, asked per (organisation, user) and cached
for at most `seconds`, and dropped at once when account reports a change of the user's membership.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, NamedTuple

from cachetools import TTLCache
from envoy.service.auth.v3 import external_auth_pb2
from google.protobuf import json_format

from services.common.errors import NotFound
from services.common.principal import Kind
from services.onboarding.clients import Clients
from services.onboarding.edge import invalid_token

# Where Envoy puts the verified payload (gateway/identity.py renders the same names).
JWT_METADATA = "envoy.filters.http.jwt_authn"
PAYLOAD_KEY = "jwt_payload"
FAILED_STATUS_KEY = "jwt_failure"


@dataclass(frozen=True)
class Claims:
    """How the identity provider's tokens say things (AOS_IDP_* settings)."""

    org_claim: str = "org_id"
    email_claim: str = "email"
    email_verified_claim: str = "email_verified"
    # An operator's token has `operator_value` in this claim (a string, or a list such as groups).
    operator_claim: str = "groups"
    operator_value: str = "aos-operators"
    max_lifetime_seconds: int = 86_400
    skew_seconds: int = 60


class Token(NamedTuple):
    kind: Kind  # HUMAN or OPERATOR
    subject: str
    email: str
    email_verified: bool
    org: str


def payload(request: external_auth_pb2.CheckRequest) -> dict[str, Any] | None:
    """The verified JWT payload of the request (None: it carried no token)."""
    namespace = request.attributes.metadata_context.filter_metadata.get(JWT_METADATA)
    if namespace is None or PAYLOAD_KEY not in namespace.fields:
        return None
    return json_format.MessageToDict(namespace.fields[PAYLOAD_KEY].struct_value)


def expiry(request: external_auth_pb2.CheckRequest) -> float | None:
    """The verified token's exp (epoch seconds); None without a token or a numeric exp."""
    namespace = request.attributes.metadata_context.filter_metadata.get(JWT_METADATA)
    if namespace is None or PAYLOAD_KEY not in namespace.fields:
        return None
    exp = namespace.fields[PAYLOAD_KEY].struct_value.fields.get("exp")
    return exp.number_value if exp is not None and exp.WhichOneof("kind") == "number_value" else None


def failure(request: external_auth_pb2.CheckRequest) -> str:
    """Why Envoy could not verify the request's token (its own words, e.g. "Jwt is expired"); "" when it did or
    there was none."""
    namespace = request.attributes.metadata_context.filter_metadata.get(JWT_METADATA)
    if namespace is None or FAILED_STATUS_KEY not in namespace.fields:
        return ""
    return str(namespace.fields[FAILED_STATUS_KEY].struct_value.fields["message"].string_value)


def _has(claim: Any, value: str) -> bool:
    return claim == value or (isinstance(claim, list) and value in claim)


def read(claims: dict[str, Any], names: Claims, now: float) -> Token:
    """The caller a verified payload names; Denied (401) for what Envoy let through but the rules refuse."""
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise invalid_token("token lacks a subject")
    iat, exp = claims.get("iat"), claims.get("exp")
    if isinstance(iat, int | float):
        if iat > now + names.skew_seconds:
            raise invalid_token("token issued in the future")
        if isinstance(exp, int | float) and exp - iat > names.max_lifetime_seconds:
            raise invalid_token(f"token lifetime exceeds {names.max_lifetime_seconds} s")
    email, org = claims.get(names.email_claim), claims.get(names.org_claim)
    return Token(
        kind=Kind.OPERATOR if _has(claims.get(names.operator_claim), names.operator_value) else Kind.HUMAN,
        subject=subject,
        email=email if isinstance(email, str) else "",
        email_verified=claims.get(names.email_verified_claim) in (True, "true"),
        org=org if isinstance(org, str) else "",
    )


class Membership(NamedTuple):
    tenant_id: str
    role: str


class Members:
    """(organisation, user) → the user's membership in the organisation's tenant, or None (not a member, or no
    tenant yet: the caller may sign up). Concurrent misses of one key share one call to account."""

    def __init__(self, clients: Clients, seconds: float, size: int = 10_000) -> None:
        self._clients = clients
        self._known: TTLCache[tuple[str, str], Membership | None] = TTLCache(maxsize=size, ttl=seconds)
        self._asking: dict[tuple[str, str], asyncio.Future[Membership | None]] = {}
        self._forgotten = 0  # counts forget() calls: an answer asked for before one is not cached

    async def resolve(self, org: str, user: str) -> Membership | None:
        key = (org, user)
        try:
            return self._known[key]
        except KeyError:
            pass
        asking = self._asking.get(key)
        if asking is None:
            asking = self._asking[key] = asyncio.ensure_future(self._ask(key))
            asking.add_done_callback(lambda done: self._done(key, done))
        return await asyncio.shield(asking)

    def _done(self, key: tuple[str, str], done: asyncio.Future[Membership | None]) -> None:
        if self._asking.get(key) is done:  # not a newer question asked after a forget()
            del self._asking[key]

    async def _ask(self, key: tuple[str, str]) -> Membership | None:
        forgotten = self._forgotten
        try:
            found: Membership | None = Membership(*await self._clients.resolve_member(*key))
        except NotFound:
            found = None
        if forgotten == self._forgotten:
            self._known[key] = found
        return found

    def peek(self, org: str, user: str) -> Membership | None:
        """The cached membership, without asking account on a miss (None also when \"not a member\" is cached)."""
        return self._known.get((org, user))

    def forget(self, user_id: str) -> None:
        """Every cached answer about the user (a member.* event of account), and any being asked for."""
        self._forgotten += 1
        for key in [k for k in self._known if k[1] == user_id]:
            self._known.pop(key, None)
        for key in [k for k in self._asking if k[1] == user_id]:
            self._asking.pop(key, None)
