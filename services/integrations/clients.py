"""The one peer integrations asks over gRPC: monitoring's usage of an integration, for the limits route."""

from __future__ import annotations

from datetime import datetime, timedelta

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from aos.monitoring.v1 import monitoring_service_pb2 as monitoring_rpc
from aos.monitoring.v1 import monitoring_service_pb2_grpc
from services.common import channels, errors, principal, tls

PEER = "monitoring"


def _stamp(at: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(at)
    return stamp


class Monitoring:
    """Usage by integration from monitoring; when monitoring cannot answer, UNAVAILABLE naming it (the limits
    route must never show zeros for usage it could not read, MONITORING.md decision 12)."""

    def __init__(self, addr: str, me: tls.Identity, timeout: float = 2.0) -> None:
        self._me, self._timeout = me.name, timeout
        self._channel = channels.peer(addr, me, PEER) if addr else None
        self._stub = monitoring_service_pb2_grpc.TelemetryServiceStub(self._channel) if self._channel else None

    async def usage(
        self, tenant_id: str, integration_id: str, start: datetime, end: datetime
    ) -> monitoring_rpc.GetIntegrationUsageResponse:
        """The integration's usage over [start, end): GetIntegrationUsage counts whole days, both included,
        so the period ends on the day before `end`."""
        if self._stub is None:
            raise _unavailable("not configured")
        request = monitoring_rpc.GetIntegrationUsageRequest(
            tenant_id=tenant_id,
            integration_id=integration_id,
            period_start=_stamp(start),
            period_end=_stamp(end - timedelta(microseconds=1)),
        )
        try:
            return await self._stub.GetIntegrationUsage(
                request, metadata=principal.service_metadata(self._me, tenant_id), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as exc:
            raise _unavailable(exc.code().name.lower()) from exc

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()


def _unavailable(why: str) -> errors.Unavailable:
    return errors.Unavailable(
        f"monitoring unavailable: {why}", reason="DEPENDENCY_UNAVAILABLE", metadata={"dependency": PEER}
    )
