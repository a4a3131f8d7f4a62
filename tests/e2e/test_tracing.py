"""Tracing across gRPC hops: account and onboarding processes with an OTLP endpoint configured send their
spans to it, and account's call to onboarding (NotifyEvidence after CreateProject) is one trace, the
onboarding span a child of account's client span."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from aos.account.v1 import account_service_pb2 as acc
from aos.account.v1 import account_service_pb2_grpc
from cli import stack
from tests.conftest import human, pki, tls_channel

pytestmark = pytest.mark.e2e


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """A fake OTLP collector: keeps (service.name, span) of every export."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, Any]] = []

    async def Export(self, request: Any, context: Any) -> trace_service_pb2.ExportTraceServiceResponse:
        for resource in request.resource_spans:
            name = next(a.value.string_value for a in resource.resource.attributes if a.key == "service.name")
            self.spans += [(name, span) for scope in resource.scope_spans for span in scope.spans]
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture
async def collector() -> AsyncIterator[tuple[Collector, int]]:
    server, fake = grpc.aio.server(), Collector()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield fake, port
    await server.stop(0)


async def test_one_request_across_two_services_is_one_trace(
    collector: tuple[Collector, int], db_urls: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, otlp = collector
    for svc in ("ACCOUNT", "ONBOARDING"):
        monkeypatch.setenv(f"{svc}_OTLP_ENDPOINT", f"127.0.0.1:{otlp}")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")  # export within 0.1 s, not the default 5 s
    ports = {"account": stack.free_port(), "onboarding": stack.free_port()}
    peers = {svc: f"127.0.0.1:{port}" for svc, port in ports.items()}
    procs = [stack.start_service(s, db_urls[s], p, peers, tmp_path / f"{s}.log", pki()) for s, p in ports.items()]
    try:
        for proc, port in zip(procs, ports.values(), strict=True):
            await asyncio.to_thread(stack.wait_for_port, port, proc)
        async with tls_channel(peers["account"]) as channel:
            stub = account_service_pb2_grpc.AccountServiceStub(channel)
            made = await stub.CreateTenant(acc.CreateTenantRequest(name="Traced"), metadata=human(), timeout=10)
            md = human(made.tenant.tenant_id)
            await stub.CreateProject(acc.CreateProjectRequest(name="traced"), metadata=md, timeout=10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not _hop(fake.spans):
            await asyncio.sleep(0.1)
    finally:  # in a thread: each process's last export at shutdown needs this loop's collector to answer
        await asyncio.to_thread(stack.stop, procs)
    assert [p.returncode for p in procs] == [0, 0]
    hop = _hop(fake.spans)
    assert hop, [(s, span.name) for s, span in fake.spans] or (tmp_path / "account.log").read_text()
    served, called, notified = hop
    assert served.trace_id == called.trace_id == notified.trace_id
    assert called.parent_span_id == served.span_id and notified.parent_span_id == called.span_id


def _hop(spans: list[tuple[str, Any]]) -> tuple[Any, Any, Any] | None:
    """account's CreateProject server span, its NotifyEvidence client span, onboarding's server span."""
    project = "/aos.account.v1.AccountService/CreateProject"
    notify = "/aos.onboarding.v1.OnboardingService/NotifyEvidence"
    server_kind, client_kind = 2, 3  # opentelemetry.proto Span.SpanKind
    for svc, served in spans:
        if svc != "aos-account" or served.name != project or served.kind != server_kind:
            continue
        for svc2, called in spans:
            if svc2 == "aos-account" and called.name == notify and called.kind == client_kind:
                if called.trace_id != served.trace_id:
                    continue
                for svc3, notified in spans:
                    if svc3 == "aos-onboarding" and notified.name == notify and notified.trace_id == served.trace_id:
                        return served, called, notified
    return None
