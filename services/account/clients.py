"""The peers that count a tenant's usage, as account sees them: api_keys (valid keys) and monitoring (runs and
tokens), each asked with its deadline. A peer that does not answer is UNAVAILABLE naming it, never a zero."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, NamedTuple

import grpc

from aos.api_keys.v1 import api_keys_service_pb2, api_keys_service_pb2_grpc
from aos.monitoring.v1 import monitoring_service_pb2, monitoring_service_pb2_grpc
from services.common import channels, principal, tls
from services.common.errors import Unavailable

ME = "account"
TIMEOUT = 2.0


class Usage(NamedTuple):
    runs_today: int
    runs_this_month: int
    tokens_this_month: int
    api_keys: int


class Counters:
    def __init__(self, api_keys_addr: str, monitoring_addr: str, me: tls.Identity) -> None:
        self._channels = {
            name: channels.peer(addr, me, name) if addr else None
            for name, addr in (("api_keys", api_keys_addr), ("monitoring", monitoring_addr))
        }
        keys, monitoring = self._channels["api_keys"], self._channels["monitoring"]
        self._keys = api_keys_service_pb2_grpc.ApiKeysServiceStub(keys) if keys else None
        self._monitoring = monitoring_service_pb2_grpc.TelemetryServiceStub(monitoring) if monitoring else None

    async def _ask(self, peer: str, stub: Any, method: str, request: Any, tenant_id: str) -> Any:
        if stub is None:
            raise Unavailable(f"{peer} service not configured", metadata={"dependency": peer})
        try:
            return await getattr(stub, method)(
                request, metadata=principal.service_metadata(ME, tenant_id), timeout=TIMEOUT, wait_for_ready=True
            )
        except grpc.aio.AioRpcError as exc:
            raise Unavailable(
                f"{peer} service unavailable", reason="DEPENDENCY_UNAVAILABLE", metadata={"dependency": peer}
            ) from exc

    async def valid_keys(self, tenant_id: str) -> int:
        request = api_keys_service_pb2.GetActivationEvidenceRequest(tenant_id=tenant_id)
        reply = await self._ask("api_keys", self._keys, "GetActivationEvidence", request, tenant_id)
        return int(reply.valid_keys)

    async def runs_and_tokens(self, tenant_id: str) -> monitoring_service_pb2.GetTenantUsageResponse:
        request = monitoring_service_pb2.GetTenantUsageRequest(tenant_id=tenant_id)
        reply: monitoring_service_pb2.GetTenantUsageResponse = await self._ask(
            "monitoring", self._monitoring, "GetTenantUsage", request, tenant_id
        )
        return reply

    async def count(self, tenant_id: str, what: str) -> int:
        """One Usage field, asked of the one peer that counts it."""
        if what == "api_keys":
            return await self.valid_keys(tenant_id)
        return int(getattr(await self.runs_and_tokens(tenant_id), what))

    async def usage(self, tenant_id: str) -> Usage:
        """Both peers at once: the latency of the slower, and every peer that failed named together."""
        keys, runs = await asyncio.gather(
            self.valid_keys(tenant_id), self.runs_and_tokens(tenant_id), return_exceptions=True
        )
        failed = [a for a in (keys, runs) if isinstance(a, BaseException)]
        if failed:
            down = [str(e.metadata["dependency"]) for e in failed if isinstance(e, Unavailable)]
            if len(down) < len(failed):
                raise next(e for e in failed if not isinstance(e, Unavailable))
            raise Unavailable(
                f"usage unavailable from {', '.join(down)}",
                reason="DEPENDENCY_UNAVAILABLE",
                metadata={"dependency": ",".join(down)},
            )
        assert not isinstance(keys, BaseException) and not isinstance(runs, BaseException)
        return Usage(int(runs.runs_today), int(runs.runs_this_month), int(runs.tokens_this_month), keys)

    async def close(self) -> None:
        for channel in self._channels.values():
            if channel is not None:
                with contextlib.suppress(Exception):
                    await channel.close()
