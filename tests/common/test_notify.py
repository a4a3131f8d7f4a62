"""notify.Peer: a best-effort unary call to a peer, with the caller's service metadata; a peer that is down
or absent costs a logged warning, never an error for the write that already committed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc

from aos.onboarding.v1.onboarding_service_pb2 import NotifyEvidenceRequest
from cli import stack
from services.common import notify
from tests.conftest import identity_of

METHOD = "/aos.onboarding.v1.OnboardingService/NotifyEvidence"


@asynccontextmanager
async def told(server_identity: str) -> AsyncIterator[list[tuple[bytes, dict[str, Any]]]]:
    """api_keys' notify.Peer to onboarding, reaching a recording server that holds `server_identity`'s
    certificate; yields what that server received once the caller has told it once."""
    received: list[tuple[bytes, dict[str, Any]]] = []

    async def record(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        received.append((request, dict(context.invocation_metadata() or ())))
        return b""

    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(record)
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("aos.onboarding.v1.OnboardingService", {"NotifyEvidence": handler})]
    )
    port = server.add_secure_port("127.0.0.1:0", identity_of(server_identity).server_credentials())
    await server.start()
    peer = notify.Peer(f"127.0.0.1:{port}", identity_of("api_keys"), "onboarding", METHOD)
    try:
        peer.tell(NotifyEvidenceRequest(tenant_id="t-1", kind=1, key_id="k"), "t-1")
        await peer.drain()
        yield received
    finally:
        await peer.close()
        await server.stop(None)


async def test_tell_delivers_the_request_with_service_metadata() -> None:
    async with told("onboarding") as received:
        ((body, metadata),) = received
    assert NotifyEvidenceRequest.FromString(body) == NotifyEvidenceRequest(tenant_id="t-1", kind=1, key_id="k")
    assert metadata["x-aos-actor-type"] == "service" and metadata["x-aos-actor-id"] == "api_keys"
    assert metadata["x-aos-tenant-id"] == "t-1"


async def test_a_server_without_the_peers_certificate_is_not_told() -> None:
    """The caller checks whom it reaches: a server holding another service's certificate (here account's, on
    the address where onboarding is expected) gets no request."""
    async with told("account") as received:
        assert received == []


async def test_a_peer_that_is_down_or_absent_is_only_logged() -> None:
    down = notify.Peer(f"127.0.0.1:{stack.free_port()}", identity_of("api_keys"), "onboarding", METHOD, timeout=0.2)
    down.tell(NotifyEvidenceRequest(tenant_id="t-1"), "t-1")
    await down.wait(NotifyEvidenceRequest(tenant_id="t-1"), "t-1")  # returns, having only logged
    await down.close()
    notify.Peer("", identity_of("api_keys"), "onboarding", METHOD).tell(NotifyEvidenceRequest(tenant_id="t-1"), "t-1")


async def test_tell_returns_before_the_peer_answers_and_close_waits_for_it() -> None:
    """The writer's reply never waits for the hint; shutting down waits for hints in flight, and past the
    bound on calls in flight a hint is dropped rather than queued."""
    release = asyncio.Event()
    received: list[str] = []

    async def slow(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        received.append(NotifyEvidenceRequest.FromString(request).tenant_id)
        await release.wait()
        return b""

    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(slow)
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("aos.onboarding.v1.OnboardingService", {"NotifyEvidence": handler})]
    )
    port = server.add_secure_port("127.0.0.1:0", identity_of("onboarding").server_credentials())
    await server.start()
    peer = notify.Peer(f"127.0.0.1:{port}", identity_of("api_keys"), "onboarding", METHOD, timeout=5, pending=2)
    try:
        for tenant in ("t-1", "t-2", "t-3"):
            peer.tell(NotifyEvidenceRequest(tenant_id=tenant), tenant)  # returns at once
        for _ in range(100):  # bounded: the two calls in flight reach the server
            if len(received) == 2:
                break
            await asyncio.sleep(0.02)
        assert sorted(received) == ["t-1", "t-2"]  # the third was dropped: two were already pending
        closing = asyncio.create_task(peer.close())
        await asyncio.sleep(0.1)
        assert not closing.done()  # close waits for the calls in flight
        release.set()
        await asyncio.wait_for(closing, 5)
    finally:
        release.set()
        await server.stop(None)
