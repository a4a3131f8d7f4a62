"""The one server interceptor: request id, who may call (the peer's certificate, then the gate rule's
principal part), and error mapping.

These three run as a single wrapper around each handler so the hot path (VerifyApiKey) pays for
one extra coroutine frame, not three.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NamedTuple

import asyncpg
import grpc
import sqlalchemy.exc
from google.protobuf import descriptor_pool
from grpc_status import rpc_status

from aos.gate.v1 import gate_pb2
from services.common import principal, tls
from services.common.errors import InvalidArgument, PermissionDenied, ServiceError, Unauthenticated, Unavailable
from services.common.metrics import MethodStats, Metrics

# Set for the handler of each RPC (one task per call): every log line it emits carries them.
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
tenant: contextvars.ContextVar[str] = contextvars.ContextVar("tenant", default="")
rpc_method: contextvars.ContextVar[str] = contextvars.ContextVar("rpc_method", default="")
log = logging.getLogger("aos.rpc")

# Errors that mean "the database is not answering": the caller should retry, not see INTERNAL.
_DOWN = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.InterfaceError,
    sqlalchemy.exc.TimeoutError,
)


def gate_rule(method: str) -> gate_pb2.Rule | None:
    """The (aos.gate.v1.rule) of "/pkg.Service/Method", from the generated descriptors."""
    try:
        found = descriptor_pool.Default().FindMethodByName(method.strip("/").replace("/", "."))
    except KeyError:
        return None
    options = found.GetOptions()
    return options.Extensions[gate_pb2.rule] if options.HasExtension(gate_pb2.rule) else None


# A call's own request id when the caller sent none: unique across processes like a uuid4 (same 32 hex digits),
# without a random read per call.
_PROCESS = os.urandom(8).hex()
_CALLS = itertools.count()

# Methods without a gate rule that any peer holding a certificate of our CA may call. Every other method
# without one (the edge's ext_authz Check) is the gateway's alone.
_OPEN = ("/grpc.health.v1.Health/", "/grpc.reflection.")


class Rule(NamedTuple):
    """The principal part of a gate rule, read out of the descriptor once per method (a protobuf field read
    per call costs more than the check itself)."""

    principals: frozenset[principal.Kind]
    callers: frozenset[str]
    tenantless: bool
    scope: str


def compiled(rule: gate_pb2.Rule | None) -> Rule | None:
    if rule is None:
        return None
    kinds = frozenset(principal.KINDS[k] for k in rule.principals)
    return Rule(kinds, frozenset(rule.callers), rule.tenantless, rule.scope)


def check(rule: gate_pb2.Rule | None, metadata: Any, peer: str, method: str = "") -> principal.Principal | None:
    """Who may call, before any handler runs: `peer` is the identity on the caller's verified certificate
    (tls.peer). Customer and operator metadata is believed only from the gateway; a service caller must be
    its certificate's identity and named in the rule's callers; then the principal part of the gate rule
    (the onboarding state is the edge's job). Returns the caller (None for a method without a rule)."""
    return _admit(compiled(rule), metadata, peer, method)


def _admit(rule: Rule | None, metadata: Any, peer: str, method: str) -> principal.Principal | None:
    if rule is None:
        if peer != tls.GATEWAY and not method.startswith(_OPEN):
            raise PermissionDenied("only the gateway may call this method", reason="PEER_NOT_ALLOWED")
        return None
    caller = principal.from_metadata(metadata or ())
    if caller is None:
        raise Unauthenticated("authentication required", reason="MISSING_AUTH")
    if caller.kind is principal.Kind.SERVICE:
        if caller.actor_id != peer:
            raise PermissionDenied("the service caller is not the peer's certificate", reason="PEER_IDENTITY_MISMATCH")
        if peer not in rule.callers:
            raise PermissionDenied(f"service {peer} may not call this method", reason="CALLER_NOT_ALLOWED")
    elif peer != tls.GATEWAY:
        raise PermissionDenied("caller metadata is accepted only from the gateway", reason="PEER_NOT_GATEWAY")
    if caller.kind not in rule.principals:
        raise PermissionDenied(f"{caller.kind} callers may not call this method", reason="PRINCIPAL_NOT_ALLOWED")
    if caller.kind in (principal.Kind.HUMAN, principal.Kind.API_KEY) and not rule.tenantless:
        caller.tenant()
    if caller.kind is principal.Kind.API_KEY and rule.scope and not caller.has_scope(rule.scope):
        raise PermissionDenied(f"API key lacks scope {rule.scope}", reason="SCOPE_REQUIRED")
    return caller


def _caused_by(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kinds) or (
            isinstance(seen, sqlalchemy.exc.DBAPIError) and seen.connection_invalidated and kinds is _DOWN
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _nul(exc: BaseException) -> bool:
    return _caused_by(exc, (asyncpg.CharacterNotInRepertoireError,))


def _unavailable(exc: BaseException) -> bool:
    return _caused_by(exc, _DOWN)


class ServiceInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, domain: str, metrics: Metrics | None = None) -> None:
        self._domain = domain
        self._metrics = metrics or Metrics()
        self._wrapped: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}

    def _status(self, exc: Exception) -> Any:
        """The google.rpc.Status an exception becomes (None: the handler aborted by itself)."""
        if isinstance(exc, grpc.aio.AbortError):
            return None
        if not isinstance(exc, ServiceError):
            if _nul(exc):  # a NUL in a field no validator looked at (ids, filters): still the caller's error
                exc = InvalidArgument("request", "must not contain NUL characters")
            elif _unavailable(exc):
                log.warning("database unavailable: %s", type(exc).__name__)
                exc = Unavailable(
                    "database unavailable", reason="DATABASE_UNAVAILABLE", metadata={"dependency": "database"}
                )
            else:
                log.exception("unexpected error")
                exc = ServiceError("internal error")
        status = rpc_status.to_status(exc.to_status(self._domain))
        if exc.http_status:  # read by the gateway's status-hint filter, like a 201 on success
            hint = (("x-aos-http-status", str(exc.http_status)),)
            status = status._replace(trailing_metadata=status.trailing_metadata + hint)
        if exc.legacy_http_status:
            hint = (("x-aos-legacy-http-status", str(exc.legacy_http_status)),)
            status = status._replace(trailing_metadata=status.trailing_metadata + hint)
        self._metrics.error(status.code.name, exc.reason)
        return status

    async def _fail(
        self, exc: Exception, context: grpc.aio.ServicerContext[Any, Any], stats: MethodStats, start: float | None
    ) -> None:
        status = self._status(exc)
        code = status.code.name if status is not None else _aborted_code(context)
        _done(stats, code, start)
        if status is None:
            raise exc
        await context.abort_with_status(status)

    def _enter(self, context: grpc.aio.ServicerContext[Any, Any], rule: Rule | None, method: str) -> None:
        metadata = context.invocation_metadata() or ()
        given: str | bytes = ""
        tenant_id: str | bytes = ""
        for key, value in metadata:
            if key == "x-request-id":
                given = value
            elif key == "x-aos-tenant-id":
                tenant_id = value
        request_id.set(given if isinstance(given, str) and given else f"{_PROCESS}{next(_CALLS):016x}")
        tenant.set(tenant_id if isinstance(tenant_id, str) else "")
        rpc_method.set(method)
        principal.current.set(_admit(rule, metadata, tls.peer(context), method))

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(details)
        if handler is None:
            return handler
        # One wrapped handler per method, built once: the per-call cost is the wrapper's frame alone.
        wrapped = self._wrapped.get(details.method)
        if wrapped is None:
            wrapped = self._wrapped[details.method] = self._wrap(handler, details.method)
        return wrapped

    def _wrap(self, handler: grpc.RpcMethodHandler[Any, Any], method: str) -> grpc.RpcMethodHandler[Any, Any]:
        rule, stats, clock = compiled(gate_rule(method)), self._metrics.method(method), time.perf_counter
        if handler.unary_unary:
            inner: Any = handler.unary_unary

            async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                start = clock()
                try:
                    self._enter(context, rule, method)
                    reply = await inner(request, context)
                except Exception as exc:
                    await self._fail(exc, context, stats, start)
                except asyncio.CancelledError:  # the caller went away or its deadline passed
                    _done(stats, "CANCELLED", start)
                    raise
                _done(stats, "OK", start)
                return reply

            return grpc.unary_unary_rpc_method_handler(unary, handler.request_deserializer, handler.response_serializer)
        if handler.unary_stream:
            stream: Any = handler.unary_stream

            async def streaming(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
                # Streams (event watches) may run for hours: counted by code, kept out of the latency histogram.
                try:
                    self._enter(context, rule, method)
                    async for item in stream(request, context):
                        yield item
                except Exception as exc:
                    await self._fail(exc, context, stats, None)
                except asyncio.CancelledError:
                    _done(stats, "CANCELLED", None)
                    raise
                _done(stats, "OK", None)

            return grpc.unary_stream_rpc_method_handler(
                streaming, handler.request_deserializer, handler.response_serializer
            )
        return handler


def _done(stats: MethodStats, code: str, start: float | None) -> None:
    seconds = None if start is None else time.perf_counter() - start
    stats.done(code, seconds)
    if log.isEnabledFor(logging.DEBUG):  # the access log, off at the default INFO level
        log.debug("%s %s%s", stats.method, code, "" if seconds is None else f" in {seconds * 1000:.1f} ms")


def _aborted_code(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    code = context.code()
    return code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"
