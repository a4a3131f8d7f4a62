"""Optional OpenTelemetry tracing. With an OTLP endpoint configured, every RPC a service serves and every
RPC it makes to a peer becomes a span, and the W3C trace context travels in the gRPC metadata, so one
request across services is one trace. Without an endpoint nothing is installed and nothing is paid."""

from __future__ import annotations

from collections.abc import Callable


def configure(service: str, endpoint: str) -> Callable[[], None] | None:
    """Installs tracing for this process (call before any server or channel is made); returns the
    flush-and-stop to run at shutdown, or None when no endpoint is configured."""
    if not endpoint:
        return None
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorClient, GrpcAioInstrumentorServer
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": f"aos-{service}"}))
    # A short export deadline: the last export runs at shutdown, and a missing collector must not hold it.
    exporter = OTLPSpanExporter(endpoint=endpoint, insecure=True, timeout=2)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    # They wrap grpc.aio.server and grpc.aio.secure_channel: every server and peer channel made after
    # this point is traced, with no change to the code that makes them.
    GrpcAioInstrumentorServer().instrument(tracer_provider=provider)  # type: ignore[no-untyped-call]
    GrpcAioInstrumentorClient().instrument(tracer_provider=provider)  # type: ignore[no-untyped-call]
    return provider.shutdown
