from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from pythonjsonlogger import json as jsonlogger
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common import db, metrics, tls, tracing
from services.common.interceptors import ServiceInterceptor, request_id, rpc_method, tenant
from services.common.settings import ServiceSettings

log = logging.getLogger("aos.server")


@dataclass
class Service:
    server: grpc.aio.Server
    health: health.aio.HealthServicer
    names: Sequence[str]
    engine: AsyncEngine
    metrics: metrics.Metrics
    identity: tls.Identity
    on_stop: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    port: int = 0
    metrics_port: int = 0  # 0: no /metrics endpoint; after start, the bound port
    _watch: asyncio.Task[None] | None = None


def create(
    domain: str, names: Sequence[str], engine: AsyncEngine, identity: tls.Identity, metrics_port: int = 0
) -> Service:
    """A grpc.aio server with the shared interceptor, health, reflection and metrics (served on
    `metrics_port` once started, 0 = not served), serving only mutual TLS as `identity`; servicers are added
    by the caller."""
    measured = metrics.Metrics()
    metrics.watch_database(measured, engine)
    server = grpc.aio.server(interceptors=[ServiceInterceptor(domain, measured)])
    checker = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    return Service(server, checker, names, engine, measured, identity, metrics_port=metrics_port)


async def _watch_database(svc: Service, interval: float) -> None:
    """Health is SERVING only while the database answers; it flips back by itself when it returns."""
    status = None
    while True:
        try:
            async with asyncio.timeout(max(interval, 1.0)), svc.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            now = health_pb2.HealthCheckResponse.SERVING
        except Exception:
            now = health_pb2.HealthCheckResponse.NOT_SERVING
        if now != status:
            status = now
            log.info("health %s", health_pb2.HealthCheckResponse.ServingStatus.Name(now))
            for name in ("", *svc.names):
                await svc.health.set(name, now)
        await asyncio.sleep(interval)


async def start(svc: Service, host: str = "127.0.0.1", port: int = 0, health_interval: float = 0.5) -> int:
    # No plaintext port: a caller without a certificate of our CA fails at the handshake.
    svc.port = svc.server.add_secure_port(f"{host}:{port}", svc.identity.server_credentials())
    await svc.server.start()
    if svc.metrics_port:
        svc.metrics_port = await svc.metrics.serve(host, svc.metrics_port)
    svc._watch = asyncio.create_task(_watch_database(svc, health_interval))
    return svc.port


async def stop(svc: Service, grace: float) -> None:
    await svc.health.enter_graceful_shutdown()
    if svc._watch:
        svc._watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await svc._watch
    await svc.server.stop(grace)
    for hook in svc.on_stop:  # e.g. flushing batched writes, after the last RPC finished
        await hook()
    await svc.metrics.close()
    await svc.engine.dispose()


async def serve(svc: Service, host: str, port: int, grace: float) -> None:
    """Runs until SIGTERM or SIGINT, then drains in-flight RPCs for up to `grace` seconds."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    bound = await start(svc, host, port)
    log.info("serving %s on %s:%d (metrics port %d)", ",".join(svc.names), host, bound, svc.metrics_port)
    await stopping.wait()
    await stop(svc, grace)


class JsonFormatter(jsonlogger.JsonFormatter):
    """One JSON object per line, with the request id, tenant and RPC of the call being handled."""

    def __init__(self) -> None:
        super().__init__(
            ["asctime", "levelname", "name", "message"],
            rename_fields={
                "asctime": "ts",
                "levelname": "level",
                "name": "logger",
                "message": "msg",
                "exc_info": "exc",
            },
        )

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        super().add_fields(log_data, record, message_dict)
        log_data.update(request_id=request_id.get(), tenant=tenant.get(), rpc=rpc_method.get())


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


async def created(context: grpc.aio.ServicerContext[object, object]) -> None:
    """Asks the gateway to answer 201 for this REST call (gRPC callers just see a header)."""
    await context.send_initial_metadata((("x-aos-http-status", "201"),))


async def run(name: str, settings: ServiceSettings, build: Callable[[ServiceSettings, AsyncEngine], Service]) -> None:
    """What every `python -m services.<svc>` does: logging, optional tracing (before the server exists, so
    its calls are instrumented), the engine, and serving until SIGTERM."""
    configure_logging(settings.log_level)
    stop_tracing = tracing.configure(name, settings.otlp_endpoint)
    try:
        svc = build(settings, db.create_engine(settings.database_url.get_secret_value()))
        await serve(svc, settings.grpc_host, settings.grpc_port, settings.grace_seconds)
    finally:
        if stop_tracing:
            stop_tracing()
