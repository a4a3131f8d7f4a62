"""The edge gate: Envoy's ext_authz Check, run after jwt_authn and the transcoder, before the router.

It sees the gRPC method path (REST requests are already transcoded), classifies the credential, verifies
API keys through api_keys (keyguard: cached, failures rate-limited), reads a token's verified claims and a
human's tenant and role from account's members table (identity), enforces the method's gate rule, sets
every caller header the services read and answers a refusal with the legacy JSON body (SPEC 0.14, 3.6).
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

import grpc
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import aos
from aos.api_keys.v1 import api_keys_service_pb2 as keys_rpc
from aos.gate.v1 import gate_pb2
from services.common.errors import NotFound, Unavailable
from services.common.interceptors import gate_rule
from services.common.principal import KINDS, Kind, Principal
from services.onboarding import identity, keyguard, policy, states
from services.onboarding.clients import Clients
from services.onboarding.edge import (
    INVALID_KEY,
    NOT_FOUND,
    UNAUTHENTICATED,
    Denied,
    allow,
    canonical,
    deny,
    invalid_token,
    unfit,
)
from services.onboarding.keyguard import PREFIX_CHARS, KeyGuard
from services.onboarding.policy import State

log = logging.getLogger("aos.gate")
# Envoy hands the gate header names in lower case.
INTEGRATION_KEY = "x-cus-integration-key"
# The credentials themselves never travel past the gate.
CREDENTIAL_HEADERS = ("x-aos-key", INTEGRATION_KEY)
# The headers the gate tells callers apart by (with a bearer token's verified payload).
CALLER_CREDENTIALS = ("authorization", *CREDENTIAL_HEADERS)
ANSWERS = 10_000  # remembered approvals at most


def _violation(current: State, required: State, endpoint: str) -> Denied:
    return Denied(
        403,
        {
            "error": "onboarding_state_violation",
            "current_state": current.name,
            "required_state": required.name,
            "endpoint": endpoint,
        },
    )


def load_rules() -> dict[str, gate_pb2.Rule | None]:
    """Imports every service's generated API, so that the gate rules of all methods are in the descriptor pool.
    This process imports only the APIs it calls (account, api_keys, integrations); without the others, a
    transcoded call to monitoring found no rule and fell back to the path table (COMPLETE, no scope check).
    Returns each of their methods' rule by gRPC path: a dict lookup per request instead of a descriptor search."""
    names = sorted(
        f"aos.{found.parent.parent.name}.v1.{found.stem}"
        for root in aos.__path__
        for found in Path(root).glob("*/v1/*_service_pb2.py")
    )
    paths = [
        f"/{service.full_name}/{method.name}"
        for name in names
        for service in importlib.import_module(name).DESCRIPTOR.services_by_name.values()
        for method in service.methods
    ]
    return {path: gate_rule(path) for path in paths}


class Answer(NamedTuple):
    """A finished approval and the cached inputs it was made from. It stands only while each of them is still
    the one in its cache, so whatever drops those (a key revoked, a membership changed, a tenant event, their
    TTLs) drops it too; a token's also ends at the token's exp."""

    reply: external_auth_pb2.CheckResponse
    tenant_id: str
    verdict: tuple[str, keys_rpc.VerifyApiKeyResponse] | None  # (key digest, keyguard's cached verdict)
    member: tuple[tuple[str, str], identity.Membership] | None  # ((org, user), the cached membership)
    expires: float


class Gate(external_auth_pb2_grpc.AuthorizationServicer):  # type: ignore[misc]  # xds-protos has no stubs
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        cache: states.Cache,
        clients: Clients,
        keys: KeyGuard,
        members: identity.Members,
        claims: identity.Claims,
        *,
        veil: bool = False,
    ) -> None:
        self._sessions, self._cache, self._clients, self._veil = sessions, cache, clients, veil
        self._rules = load_rules()
        self.keys, self.members, self._claims = keys, members, claims
        # Approvals of callers whose every input is cached, by (route, endpoint, digest of the credentials): a
        # repeated request costs a dict lookup and a check that those inputs are still cached.
        self._answers: dict[tuple[str, str, bytes], Answer] = {}

    async def Check(
        self, request: external_auth_pb2.CheckRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> external_auth_pb2.CheckResponse:
        http = request.attributes.request.http
        headers = http.headers
        route = http.path.split("?", 1)[0]
        endpoint = _called(http.path, headers)
        asked = (route, endpoint, _credentials(headers, request))
        known = self._answers.get(asked)
        if known is not None and self._stands(known):
            return _removing(known.reply, unfit(headers))
        try:
            answer = await self._check(route, endpoint, headers, request, asked)
            answer.ok_response.headers_to_remove.extend(unfit(headers))
            return answer
        except Denied as denied:
            # The veil: whoever cannot say who they are learns nothing of which routes exist (SPEC 2).
            veiled = self._veil and denied.body.get("error") in UNAUTHENTICATED
            return deny(NOT_FOUND if veiled else denied, as_status=canonical(_called(http.path, headers)))
        except Unavailable as exc:
            log.warning("gate dependency unavailable: %s", exc.message)
            unavailable = Denied(503, {"error": "unavailable", "message": exc.message})
            return deny(unavailable, as_status=canonical(_called(http.path, headers)))

    async def _check(
        self,
        route: str,
        endpoint: str,
        headers: Mapping[str, str],
        request: external_auth_pb2.CheckRequest,
        asked: tuple[str, str, bytes],
    ) -> external_auth_pb2.CheckResponse:
        rule = self._rule(route) if route.startswith("/aos.") else None
        if rule is None and policy.exempt(route):
            return allow({}, [])
        if rule is not None and rule.audience == gate_pb2.AUDIENCE_INTERNAL:
            raise NOT_FOUND  # exactly the 404 of a path that does not exist
        integration_key = _integration_key(headers)
        caller = await self._authenticate(headers, request, integration_key)
        required = policy.from_gate(rule.min_state) if rule is not None else policy.required_state(endpoint)
        if rule is not None:
            self._authorize(rule, caller)
        if caller.kind in (Kind.HUMAN, Kind.API_KEY) and caller.tenant_id:
            await self._enforce_state(caller, required, endpoint)
        elif rule is not None and required is not None and not rule.tenantless and caller.kind is not Kind.OPERATOR:
            raise Denied(403, {"error": "tenant_required", "message": "the caller belongs to no tenant"})
        # Scopes are RBAC, which SPEC 3.6 puts after the onboarding gate: a key of a tenant that is not far
        # enough along hears about the state first.
        if rule is not None and caller.kind is Kind.API_KEY and rule.scope and not caller.has_scope(rule.scope):
            raise Denied(403, {"error": "forbidden", "message": f"API key lacks scope {rule.scope}"})
        if rule is not None and rule.tenantless and caller.kind is Kind.HUMAN and not caller.tenant_id:
            self.members.forget(caller.actor_id)  # signing up: "not a member" is about to be wrong
        answer = allow(self._caller_headers(caller, headers, integration_key), [*CREDENTIAL_HEADERS])
        self._remember(asked, answer, caller, required, request, headers, integration_key)
        return answer

    def _rule(self, route: str) -> gate_pb2.Rule | None:
        try:
            return self._rules[route]
        except KeyError:  # not a method of a service API (or one imported by other means): the descriptors say
            return gate_rule(route)

    def _remember(
        self,
        asked: tuple[str, str, bytes],
        answer: external_auth_pb2.CheckResponse,
        caller: Principal,
        required: State | None,
        request: external_auth_pb2.CheckRequest,
        headers: Mapping[str, str],
        integration_key: IntegrationKey | None,
    ) -> None:
        """Keeps an approval of a tenant's key or member whose inputs are all cached, and are still the ones
        it was decided on (a cache entry replaced while the decision awaited is not vouched for by it)."""
        if not caller.tenant_id or caller.kind not in (Kind.HUMAN, Kind.API_KEY):
            return
        state = self._cache.peek(caller.tenant_id)
        if state is None or (required is not None and state < required):
            return
        verdict, member, expires = None, None, math.inf
        if caller.kind is Kind.API_KEY:
            secret = integration_key.secret if integration_key is not None else headers.get("x-aos-key", "").strip()
            digest = keyguard.digest_of(secret)
            valid = self.keys.verdicts.get(digest)
            if valid is None or (valid.key_id, valid.tenant_id, tuple(valid.scopes)) != (
                caller.actor_id,
                caller.tenant_id,
                caller.scopes,
            ):
                return
            verdict = (digest, valid)
        else:
            who = (caller.org_id, caller.actor_id)
            membership = self.members.peek(*who)
            exp = identity.expiry(request)
            if membership is None or membership != (caller.tenant_id, caller.role) or exp is None:
                return
            member, expires = (who, membership), exp
        if len(self._answers) >= ANSWERS:
            del self._answers[next(iter(self._answers))]
        self._answers[asked] = Answer(answer, caller.tenant_id, verdict, member, expires)

    def _stands(self, known: Answer) -> bool:
        if self._cache.peek(known.tenant_id) is None:
            return False
        if known.verdict is not None:
            digest, verdict = known.verdict
            if self.keys.verdicts.get(digest) is not verdict:
                return False
            self.keys.used(verdict)
            return True
        if known.member is None or time.time() >= known.expires:
            return False
        who, membership = known.member
        return self.members.peek(*who) is membership

    async def _authenticate(
        self,
        headers: Mapping[str, str],
        request: external_auth_pb2.CheckRequest,
        integration_key: IntegrationKey | None,
    ) -> Principal:
        # jwt_authn has verified any `Authorization: Bearer` token and left its payload in the metadata.
        claims = identity.payload(request)
        bearer = claims is not None or headers.get("authorization", "").lower().startswith("bearer ")
        key = headers.get("x-aos-key", "").strip()
        if sum((bearer, bool(key), INTEGRATION_KEY in headers)) > 1:
            message = "Send one of Authorization, X-AOS-Key and X-CUS-Integration-Key"
            raise Denied(400, {"error": "mixed_auth", "message": message})
        if INTEGRATION_KEY in headers:
            if integration_key is None:  # malformed: answered exactly like a wrong key
                raise INVALID_KEY
            key = integration_key.secret
        if not bearer and not key:
            raise Denied(401, {"error": "missing_auth", "message": "Authentication required"})
        if key:
            client = request.attributes.source.address.socket_address.address
            verdict = await self.keys.check(key, client)
            # A valid key of another tenant than the header names is no credential for that tenant: the same
            # answer as a wrong key, so the header cannot be used to learn which tenant a key belongs to.
            if integration_key is not None and verdict.tenant_id != integration_key.tenant_id:
                raise INVALID_KEY
            return Principal(Kind.API_KEY, verdict.key_id, tenant_id=verdict.tenant_id, scopes=tuple(verdict.scopes))
        if claims is None:
            # jwt_authn hands a token it could not verify on to us, with its reason (gateway/identity.py).
            raise invalid_token(identity.failure(request) or "token lacks a principal")
        token = identity.read(claims, self._claims, time.time())
        human = token.kind is Kind.HUMAN
        caller = Principal(
            token.kind,
            token.subject,
            email=token.email,
            email_verified=token.email_verified,
            org_id=token.org if human else "",
        )
        if not human or not token.org:
            return caller
        # A human's tenant and role: only the members table says (none yet: the caller may sign up for the org).
        member = await self.members.resolve(token.org, token.subject)
        return caller if member is None else replace(caller, tenant_id=member.tenant_id, role=member.role)

    def _authorize(self, rule: gate_pb2.Rule, caller: Principal) -> None:
        if caller.kind not in {KINDS.get(k) for k in rule.principals}:
            message = (
                "Founder access required"
                if rule.audience == gate_pb2.AUDIENCE_FOUNDER
                else f"{caller.kind} callers may not call this endpoint"
            )
            raise Denied(403, {"error": "forbidden", "message": message})

    async def _enforce_state(self, caller: Principal, required: State | None, endpoint: str) -> None:
        state = await self._cache.get(caller.tenant_id)
        # The first verified human request of a tenant verifies its identity (SPEC 3.2).
        if state == State.CREATED and caller.kind is Kind.HUMAN and caller.email_verified:
            state = await self._verify_identity(caller)
        if required is not None and state < required:
            # States only move forward, so a cached state can only be too low: it may wrongly deny (another
            # replica advanced the tenant a moment ago), never wrongly allow. Read the truth before denying.
            state = await self._cache.get(caller.tenant_id, fresh=True)
            if state < required:
                raise _violation(state, required, endpoint)

    async def _verify_identity(self, human: Principal) -> State:
        tenant, created_at = human.tenant_id, None
        if not await self._cache.tracked(tenant):  # tracked from now on if account knows it
            try:
                created_at = await self._clients.tenant_created_at(tenant)
            except NotFound:
                return State.CREATED
        async with self._sessions.begin() as session:
            move = await states.advance(
                session, tenant, State.IDENTITY_VERIFIED, "first_human_auth", human, created_at=created_at
            )
        self._cache.put(tenant, move.to_state)
        return move.to_state

    @staticmethod
    def _caller_headers(
        caller: Principal, headers: Mapping[str, str], integration_key: IntegrationKey | None
    ) -> dict[str, str]:
        """Everything the services learn of the caller; Envoy stripped whatever the client sent under these
        names, and empty ones are left out."""
        # An API key's display prefix (monitoring attributes a run that names no actor to "sdk:" + it), whichever
        # header carried the key.
        key = headers.get("x-aos-key", "").strip() if caller.kind is Kind.API_KEY else ""
        if integration_key is not None:
            key = integration_key.secret
        return {
            "x-aos-actor-type": caller.kind.value,
            "x-aos-actor-id": caller.actor_id,
            "x-aos-tenant-id": caller.tenant_id,
            "x-aos-role": caller.role,
            "x-aos-scopes": ",".join(caller.scopes),
            "x-aos-org-id": caller.org_id,
            "x-aos-email": caller.email,
            "x-aos-email-verified": str(caller.email_verified).lower() if caller.kind is not Kind.API_KEY else "",
            "x-aos-key-prefix": key[:PREFIX_CHARS],
            # Only after the key verified as the named tenant's; whether the integration is that tenant's is
            # for the service to ask integrations (an unknown one answers 404 there).
            "x-aos-integration-id": integration_key.integration_id if integration_key is not None else "",
        }


def _credentials(headers: Mapping[str, str], request: external_auth_pb2.CheckRequest) -> bytes:
    """One digest of everything that names the caller: the credential headers, absent ones told apart from
    empty ones (an empty integration key header is a refusal, no header is not), and the verified token's
    payload (jwt_authn removes the token itself before the gate sees the request)."""
    parts = [headers.get(name, "\x00absent") for name in CALLER_CREDENTIALS]
    found = hashlib.sha256("\x00".join(parts).encode())
    found.update(request.attributes.metadata_context.SerializeToString(deterministic=True))
    return found.digest()


def _removing(reply: external_auth_pb2.CheckResponse, names: list[str]) -> external_auth_pb2.CheckResponse:
    """A remembered approval, with this request's unfit headers removed too (a copy: the original is shared)."""
    if not names:
        return reply
    copy = external_auth_pb2.CheckResponse()
    copy.CopyFrom(reply)
    copy.ok_response.headers_to_remove.extend(names)
    return copy


def _called(path: str, headers: Mapping[str, str]) -> str:
    """The path the client called. The REST path (for the 403 body) is only trusted where the transcoder set
    it; a client-sent x-envoy-original-path on any other request must not choose the legacy gate row."""
    route = path.split("?", 1)[0]
    if not route.startswith("/aos."):
        return route
    return headers.get("x-envoy-original-path", route).split("?", 1)[0]


class IntegrationKey(NamedTuple):
    tenant_id: str
    integration_id: str
    secret: str


def _integration_key(headers: Mapping[str, str]) -> IntegrationKey | None:
    """The newer SDK's credential, `{tenant_id}:{integration_id}:{secret}` (MONITORING.md decision 5); None when
    the header is absent or malformed (three non-empty parts; the secret may itself hold colons)."""
    parts = headers.get(INTEGRATION_KEY, "").strip().split(":", 2)
    if len(parts) != 3 or not all(p.strip() for p in parts):
        return None
    return IntegrationKey(*(p.strip() for p in parts))
