from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar

from aos.monitoring.v1 import monitoring_service_pb2 as rpc
from aos.monitoring.v1 import monitoring_service_pb2_grpc
from services.common import validation
from services.common.errors import NotFound
from services.common.interceptors import request_id
from services.common.principal import Principal, caller
from services.monitoring import clients, ingest, repository, requests, responses
from services.monitoring.servicer import Context, Sessions, header

T = TypeVar("T")


class TelemetryServicer(monitoring_service_pb2_grpc.TelemetryServiceServicer):
    def __init__(self, sessions: Sessions, integrations: clients.Integrations) -> None:
        self._sessions, self._integrations = sessions, integrations

    async def IngestUsage(self, request: rpc.IngestUsageRequest, context: Context) -> rpc.IngestUsageResponse:
        who, integration = caller(context), header(context, "x-aos-integration-id")
        allowed, _ = await self._owned(who, [requests.usage(request.record, "", integration)], integration)
        if not allowed:  # not the tenant's integration, or not the credential's: the unknown-id answer
            raise NotFound("integration not found", reason="INTEGRATION_NOT_FOUND")
        call_id = allowed[0]["call_id"]
        async with self._sessions.begin() as session:
            stored = await ingest.store(session, who, allowed)
            record_id = stored.accepted.get(call_id) or await repository.usage_id(session, who.tenant(), call_id)
        status = "accepted" if call_id in stored.accepted else "duplicate"
        return responses.ingested(status, record_id, call_id, request_id.get())

    async def IngestUsageBatch(
        self, request: rpc.IngestUsageBatchRequest, context: Context
    ) -> rpc.IngestUsageBatchResponse:
        who, integration = caller(context), header(context, "x-aos-integration-id")
        allowed, refused = await self._owned(who, requests.batch(request, integration), integration)
        async with self._sessions.begin() as session:
            stored = await ingest.store(session, who, allowed)
        return rpc.IngestUsageBatchResponse(
            accepted=len(stored.accepted),
            duplicates=stored.duplicates,
            errors=len(refused),
            total=len(request.records),
            error_details=[rpc.IngestError(index=i, call_id=c, reason="INTEGRATION_NOT_FOUND") for i, c in refused],
        )

    async def _owned(
        self, who: Principal, records: list[dict[str, Any]], integration: str
    ) -> tuple[list[dict[str, Any]], list[tuple[int, str]]]:
        """Validated records split by ownership, asked of integrations (cached) before the transaction opens:
        no connection is held while it answers."""
        owned_ids = await self._integrations.owned(who.tenant(), ingest.named(records, integration))
        return ingest.owned(records, integration, owned_ids)

    async def GetTenantUsage(self, request: rpc.GetTenantUsageRequest, context: Context) -> rpc.GetTenantUsageResponse:
        tenant_id = validation.length("tenant_id", request.tenant_id, 1, 64)
        async with self._sessions() as session:
            runs_today, runs_this_month, tokens = await repository.tenant_usage(session, tenant_id, datetime.now(UTC))
        return rpc.GetTenantUsageResponse(
            runs_today=runs_today, runs_this_month=runs_this_month, tokens_this_month=tokens
        )

    async def GetIntegrationUsage(
        self, request: rpc.GetIntegrationUsageRequest, context: Context
    ) -> rpc.GetIntegrationUsageResponse:
        tenant_id, integration_id, start, end = requests.period(request)
        async with self._sessions() as session:
            usage = await repository.integration_usage(session, tenant_id, integration_id, start, end)
        return rpc.GetIntegrationUsageResponse(
            cost_cents=usage[0], tokens=usage[1], records=usage[2], requests_last_minute=usage[3]
        )
