"""notify.Peer: a best-effort unary call to a peer, with the caller's service metadata; a peer that is down
or absent costs a logged warning, never an error for the write that already committed."""

from __future__ import annotations

from typing import Any

import grpc

from aos.onboarding.v1.onboarding_service_pb2 import NotifyEvidenceRequest
from cli import stack
from services.common import notify

METHOD = "/aos.onboarding.v1.OnboardingService/NotifyEvidence"


async def test_tell_delivers_the_request_with_service_metadata() -> None:
    received: list[tuple[bytes, dict[str, Any]]] = []

    async def record(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        received.append((request, dict(context.invocation_metadata() or ())))
        return b""

    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(record)
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("aos.onboarding.v1.OnboardingService", {"NotifyEvidence": handler})]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    peer = notify.Peer(f"127.0.0.1:{port}", "api_keys", METHOD)
    try:
        await peer.tell(NotifyEvidenceRequest(tenant_id="t-1", kind=1, key_id="k"), "t-1")
    finally:
        await peer.close()
        await server.stop(None)
    ((body, metadata),) = received
    assert NotifyEvidenceRequest.FromString(body) == NotifyEvidenceRequest(tenant_id="t-1", kind=1, key_id="k")
    assert metadata["x-aos-actor-type"] == "service" and metadata["x-aos-actor-id"] == "api_keys"
    assert metadata["x-aos-tenant-id"] == "t-1"


async def test_a_peer_that_is_down_or_absent_is_only_logged() -> None:
    down = notify.Peer(f"127.0.0.1:{stack.free_port()}", "api_keys", METHOD, timeout=0.2)
    await down.tell(NotifyEvidenceRequest(tenant_id="t-1"), "t-1")
    await down.close()
    await notify.Peer("", "api_keys", METHOD).tell(NotifyEvidenceRequest(tenant_id="t-1"), "t-1")
