"""The edge gate: Envoy's ext_authz Check, run after jwt_authn and the transcoder, before the router.

It sees the gRPC method path (REST requests are already transcoded), classifies the credential,
verifies API keys through api_keys (cached), takes the tenant only from the principal, enforces the
method's gate rule and answers a refusal with the legacy JSON body (SPEC 0.14, 3.6).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Mapping
from typing import Any

import grpc
from cachetools import TTLCache
from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from envoy.type.v3 import http_status_pb2
from google.rpc import code_pb2, status_pb2
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aos.api_keys.v1 import api_keys_service_pb2 as keys_rpc
from aos.gate.v1 import gate_pb2
from services.common.errors import NotFound, Unavailable
from services.common.interceptors import gate_rule
from services.common.principal import KINDS, Kind, Principal, from_metadata
from services.onboarding import policy, states
from services.onboarding.clients import Clients
from services.onboarding.policy import State

log = logging.getLogger("aos.gate")


class Denied(Exception):
    def __init__(self, status: int, body: dict[str, str]) -> None:
        super().__init__(body.get("error", ""))
        self.status, self.body = status, body


def _header(key: str, value: str) -> base_pb2.HeaderValueOption:
    return base_pb2.HeaderValueOption(
        header=base_pb2.HeaderValue(key=key, value=value),
        append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD,
    )


def deny(status: int, body: dict[str, str]) -> external_auth_pb2.CheckResponse:
    code = {401: code_pb2.UNAUTHENTICATED, 503: code_pb2.UNAVAILABLE}.get(status, code_pb2.PERMISSION_DENIED)
    return external_auth_pb2.CheckResponse(
        status=status_pb2.Status(code=code),
        denied_response=external_auth_pb2.DeniedHttpResponse(
            status=http_status_pb2.HttpStatus(code=status),
            headers=[_header("content-type", "application/json")],
            body=json.dumps(body),
        ),
    )


def allow(headers: dict[str, str], remove: list[str]) -> external_auth_pb2.CheckResponse:
    return external_auth_pb2.CheckResponse(
        status=status_pb2.Status(code=code_pb2.OK),
        ok_response=external_auth_pb2.OkHttpResponse(
            headers=[_header(k, v) for k, v in headers.items()], headers_to_remove=remove
        ),
    )


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


INVALID_KEY = Denied(401, {"error": "api_key_invalid", "message": "Invalid API key"})


class Gate(external_auth_pb2_grpc.AuthorizationServicer):  # type: ignore[misc]  # xds-protos has no stubs
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], cache: states.Cache, clients: Clients, cache_seconds: float
    ) -> None:
        self._sessions, self._cache, self._clients = sessions, cache, clients
        # Key digest → api_keys' verdict.
        self.verdicts: TTLCache[str, keys_rpc.VerifyApiKeyResponse] = TTLCache(maxsize=10_000, ttl=cache_seconds)
        # Valid uses answered from `verdicts` never reach VerifyApiKey, which counts the others: key id →
        # [requests, last use], sent to api_keys in batches so total_requests counts every request.
        self._uses: dict[str, list[float]] = {}

    def forget_key(self, key_id: str) -> None:
        for digest in [d for d, verdict in self.verdicts.items() if verdict.key_id == key_id]:
            self.verdicts.pop(digest, None)

    async def Check(
        self, request: external_auth_pb2.CheckRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> external_auth_pb2.CheckResponse:
        http = request.attributes.request.http
        headers = dict(http.headers)
        try:
            return await self._check(http.path, headers)
        except Denied as denied:
            return deny(denied.status, denied.body)
        except Unavailable as exc:
            log.warning("gate dependency unavailable: %s", exc.message)
            return deny(503, {"error": "unavailable", "message": exc.message})

    async def _check(self, path: str, headers: Mapping[str, str]) -> external_auth_pb2.CheckResponse:
        route = path.split("?", 1)[0]
        transcoded = route.startswith("/aos.")
        # The REST path the client called (for the 403 body) is only trusted where the transcoder set it; a
        # client-sent x-envoy-original-path on any other request must not choose the legacy gate row.
        endpoint = headers.get("x-envoy-original-path", route).split("?", 1)[0] if transcoded else route
        rule = gate_rule(route) if transcoded else None
        if rule is None and policy.exempt(route):
            return allow({}, [])
        if rule is not None and rule.audience == gate_pb2.AUDIENCE_INTERNAL:
            raise Denied(404, {"error": "not_found", "message": "not found"})
        caller = await self._authenticate(headers)
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
        return allow(self._caller_headers(caller, headers), ["x-aos-key"])

    async def _authenticate(self, headers: Mapping[str, str]) -> Principal:
        # jwt_authn has verified any bearer token and copied its claims into x-aos-* (stripped from clients first).
        bearer = bool(headers.get("x-aos-actor-id")) or headers.get("authorization", "").lower().startswith("bearer ")
        key = headers.get("x-aos-key", "").strip()
        if bearer and key:
            raise Denied(400, {"error": "mixed_auth", "message": "Send either Authorization or X-AOS-Key, not both"})
        if not bearer and not key:
            raise Denied(401, {"error": "missing_auth", "message": "Authentication required"})
        if key:
            verdict = await self._verify(key)
            if verdict.code != keys_rpc.VERIFY_CODE_VALID or not verdict.tenant_id:
                raise INVALID_KEY
            return Principal(Kind.API_KEY, verdict.key_id, tenant_id=verdict.tenant_id, scopes=tuple(verdict.scopes))
        caller = from_metadata(headers.items())
        if caller is None or caller.kind not in (Kind.HUMAN, Kind.OPERATOR):
            raise Denied(401, {"error": "invalid_token", "message": "token lacks a principal"})
        return caller

    async def _verify(self, secret: str) -> keys_rpc.VerifyApiKeyResponse:
        digest = hashlib.sha256(secret.encode()).hexdigest()
        cached = self.verdicts.get(digest)
        if cached is None:
            cached = self.verdicts[digest] = await self._clients.verify_key(secret)  # counted by api_keys when VALID
        elif cached.code == keys_rpc.VERIFY_CODE_VALID:
            seen = self._uses.setdefault(cached.key_id, [0, 0.0])
            seen[0] += 1
            seen[1] = time.time()
        return cached

    async def report_usage(self) -> None:
        """Sends the uses answered from the cache since the last report; kept for the next one on failure."""
        if not self._uses:
            return
        batch, self._uses = self._uses, {}
        try:
            await self._clients.record_key_usage({k: (int(n), at) for k, (n, at) in batch.items()})
        except Exception as exc:
            log.warning("key usage not reported (%s); retrying with the next batch", type(exc).__name__)
            for key_id, (n, at) in batch.items():
                seen = self._uses.setdefault(key_id, [0, at])
                seen[0] += n
                seen[1] = max(seen[1], at)

    async def report_usage_forever(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            await self.report_usage()

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
    def _caller_headers(caller: Principal, headers: Mapping[str, str]) -> dict[str, str]:
        injected = {
            "x-aos-actor-type": caller.kind.value,
            "x-aos-actor-id": caller.actor_id,
            "x-aos-request-id": headers.get("x-request-id", ""),
        }
        if caller.kind is Kind.API_KEY:
            injected |= {"x-aos-tenant-id": caller.tenant_id, "x-aos-scopes": ",".join(caller.scopes)}
            # The key's display prefix (monitoring attributes unattributed runs to "sdk:" + it).
            injected["x-aos-key-prefix"] = headers.get("x-aos-key", "").strip()[:12]
        return injected
