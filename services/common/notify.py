"""Producers tell onboarding about new evidence right after their commit, so a client sees its own write
(e.g. the state after its first key) at once. Best effort: a short deadline, and a failure is only logged,
because onboarding also follows every producer's event log with a durable cursor and repairs what it missed."""

from __future__ import annotations

import contextlib
import logging

import grpc

from aos.onboarding.v1 import onboarding_pb2, onboarding_service_pb2, onboarding_service_pb2_grpc
from services.common import principal

log = logging.getLogger("aos.notify")

KEY_CREATED = onboarding_pb2.EVIDENCE_KIND_API_KEY_CREATED
KEY_CHANGED = onboarding_pb2.EVIDENCE_KIND_API_KEY_CHANGED
CONNECTOR_CHANGED = onboarding_pb2.EVIDENCE_KIND_CONNECTOR_CHANGED
PROJECT_CHANGED = onboarding_pb2.EVIDENCE_KIND_PROJECT_CHANGED


class Notifier:
    def __init__(self, addr: str, caller: str, timeout: float = 0.5) -> None:
        self._caller, self._timeout = caller, timeout
        # A restarted onboarding is reached again within ~0.2-2 s, not gRPC's default 1-120 s backoff.
        options = [
            ("grpc.initial_reconnect_backoff_ms", 200),
            ("grpc.min_reconnect_backoff_ms", 200),
            ("grpc.max_reconnect_backoff_ms", 2000),
        ]
        self._channel = grpc.aio.insecure_channel(addr, options=options) if addr else None
        self._stub = onboarding_service_pb2_grpc.OnboardingServiceStub(self._channel) if self._channel else None

    async def notify(self, tenant_id: str, kind: int, key_id: str = "") -> None:
        if self._stub is None:
            return
        request = onboarding_service_pb2.NotifyEvidenceRequest(tenant_id=tenant_id, kind=kind, key_id=key_id)  # type: ignore[arg-type]
        try:
            await self._stub.NotifyEvidence(
                request, metadata=principal.service_metadata(self._caller, tenant_id), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as exc:
            log.warning("onboarding not notified (%s); it catches up from the event log", exc.code().name)

    async def close(self) -> None:
        if self._channel is not None:
            with contextlib.suppress(Exception):
                await self._channel.close()
