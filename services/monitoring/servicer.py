from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeAlias, TypeVar

import grpc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aos.monitoring.v1 import monitoring_pb2 as pb
from aos.monitoring.v1 import monitoring_service_pb2 as rpc
from aos.monitoring.v1 import monitoring_service_pb2_grpc
from services.common import validation
from services.common.errors import NotFound
from services.common.interceptors import request_id
from services.common.principal import MANAGERS, WRITERS, Principal, caller
from services.common.server import created
from services.monitoring import incidents, ingest, policy, queries, repository, requests, responses, runs, tenants
from services.monitoring.models import Incident, Run

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
Sessions: TypeAlias = async_sessionmaker[AsyncSession]
T = TypeVar("T")


def header(context: Context, name: str) -> str:
    """A caller header the gateway sets beside the principal (x-aos-key-prefix, x-aos-integration-id)."""
    value = dict(context.invocation_metadata() or ()).get(name, "")
    return value if isinstance(value, str) else ""


async def _scope(session: AsyncSession, who: Principal, allowed: tuple[str, ...]) -> tuple[str, policy.Thresholds]:
    """The caller's tenant once its lifecycle allows the call, and its thresholds."""
    tenant_id = await tenants.require(session, who, allowed)
    return tenant_id, await repository.thresholds(session, tenant_id)


class ActivityServicer(monitoring_service_pb2_grpc.ActivityServiceServicer):
    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    async def CreateRun(self, request: rpc.CreateRunRequest, context: Context) -> rpc.CreateRunResponse:
        who = caller(context)
        values = requests.new_run(request, who, header(context, "x-aos-key-prefix"))
        async with self._sessions.begin() as session:
            _, t = await _scope(session, who, tenants.WRITABLE)
            run, fresh = await runs.create(session, who, values, t)
        if fresh:
            await created(context)
        return rpc.CreateRunResponse(**responses.detail_fields(run, t, datetime.now(UTC)))

    async def _detail(self, context: Context, run_id: str) -> dict[str, Any]:
        who, run_id = caller(context), requests.run_id(run_id)
        async with self._sessions() as session:
            tenant_id, t = await _scope(session, who, tenants.READABLE)
            run = await repository.get_run(session, tenant_id, run_id)
        return responses.detail_fields(run, t, datetime.now(UTC))

    async def GetRun(self, request: rpc.GetRunRequest, context: Context) -> rpc.GetRunResponse:
        return rpc.GetRunResponse(**await self._detail(context, request.run_id))

    async def GetRunDetail(self, request: rpc.GetRunDetailRequest, context: Context) -> rpc.GetRunDetailResponse:
        return rpc.GetRunDetailResponse(**await self._detail(context, request.run_id))

    async def HeartbeatRun(self, request: rpc.HeartbeatRunRequest, context: Context) -> rpc.HeartbeatRunResponse:
        who, run_id, totals = caller(context), requests.run_id(request.run_id), requests.totals(request)
        async with self._sessions.begin() as session:
            _, t = await _scope(session, who, tenants.WRITABLE)
            run = await runs.heartbeat(session, who, run_id, totals, t)
        return rpc.HeartbeatRunResponse(run=responses.run_detail(run, t))

    async def CompleteRun(self, request: rpc.CompleteRunRequest, context: Context) -> rpc.CompleteRunResponse:
        who, run_id, done = caller(context), requests.run_id(request.run_id), requests.completion(request)
        async with self._sessions.begin() as session:
            _, t = await _scope(session, who, tenants.WRITABLE)
            completed = await runs.complete(session, who, run_id, done, t)
        return rpc.CompleteRunResponse(
            run=responses.run_detail(completed.run, t),
            record_id=completed.record_id,
            incident_ids=completed.incident_ids,
        )

    async def _runs(self, context: Context, listing: queries.Listing, response: Callable[..., T]) -> T:
        who = caller(context)
        async with self._sessions() as session:
            tenant_id, t = await _scope(session, who, tenants.READABLE)
            rows, total = await repository.page(session, Run, tenant_id, listing)
        now = datetime.now(UTC)
        return responses.page(
            response, rows, total, listing, lambda r: pb.RunSummary(**responses.summary_fields(r, t, now))
        )

    async def ListLiveRuns(self, request: rpc.ListLiveRunsRequest, context: Context) -> rpc.ListLiveRunsResponse:
        return await self._runs(context, queries.live(request), rpc.ListLiveRunsResponse)

    async def ListCompletedRuns(
        self, request: rpc.ListCompletedRunsRequest, context: Context
    ) -> rpc.ListCompletedRunsResponse:
        return await self._runs(context, queries.completed(request), rpc.ListCompletedRunsResponse)

    async def GetRunStatusSummary(
        self, request: rpc.GetRunStatusSummaryRequest, context: Context
    ) -> rpc.GetRunStatusSummaryResponse:
        who = caller(context)
        project_id = validation.length("project_id", request.project_id, 0, 64)
        async with self._sessions() as session:
            tenant_id = await tenants.require(session, who, tenants.READABLE)
            counts = await repository.status_counts(session, tenant_id, project_id)
        return responses.status_summary(counts)

    async def GetThresholds(self, request: rpc.GetThresholdsRequest, context: Context) -> rpc.GetThresholdsResponse:
        who = caller(context)
        async with self._sessions() as session:
            _, t = await _scope(session, who, tenants.READABLE)
        return rpc.GetThresholdsResponse(thresholds=responses.thresholds(t))

    async def UpdateThresholds(
        self, request: rpc.UpdateThresholdsRequest, context: Context
    ) -> rpc.UpdateThresholdsResponse:
        who = caller(context)
        who.require_role(*MANAGERS)
        changes = requests.threshold_changes(request)
        async with self._sessions.begin() as session:
            await tenants.require(session, who, tenants.WRITABLE)
            t = await runs.set_thresholds(session, who, changes)
        return rpc.UpdateThresholdsResponse(thresholds=responses.thresholds(t))


class TelemetryServicer(monitoring_service_pb2_grpc.TelemetryServiceServicer):
    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    async def IngestUsage(self, request: rpc.IngestUsageRequest, context: Context) -> rpc.IngestUsageResponse:
        who, integration = caller(context), header(context, "x-aos-integration-id")
        allowed, _ = ingest.owned([requests.usage(request.record, "", integration)], integration)
        if not allowed:  # another integration than the credential's: the unknown-id answer
            raise NotFound("integration not found", reason="INTEGRATION_NOT_FOUND")
        call_id = allowed[0]["call_id"]
        async with self._sessions.begin() as session:
            tenant_id = await tenants.require(session, who, tenants.WRITABLE)
            stored = await ingest.store(session, who, allowed)
            record_id = stored.accepted.get(call_id) or await repository.usage_id(session, tenant_id, call_id)
        status = "accepted" if call_id in stored.accepted else "duplicate"
        return responses.ingested(status, record_id, call_id, request_id.get())

    async def IngestUsageBatch(
        self, request: rpc.IngestUsageBatchRequest, context: Context
    ) -> rpc.IngestUsageBatchResponse:
        who, integration = caller(context), header(context, "x-aos-integration-id")
        allowed, refused = ingest.owned(requests.batch(request, integration), integration)
        async with self._sessions.begin() as session:
            await tenants.require(session, who, tenants.WRITABLE)
            stored = await ingest.store(session, who, allowed)
        return rpc.IngestUsageBatchResponse(
            accepted=len(stored.accepted),
            duplicates=stored.duplicates,
            errors=len(refused),
            total=len(request.records),
            error_details=[rpc.IngestError(index=i, call_id=c, reason="INTEGRATION_NOT_FOUND") for i, c in refused],
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


class IncidentsServicer(monitoring_service_pb2_grpc.IncidentsServiceServicer):
    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    async def _list(self, context: Context, listing: queries.Listing, response: Callable[..., T]) -> T:
        who = caller(context)
        async with self._sessions() as session:
            tenant_id = await tenants.require(session, who, tenants.READABLE)
            rows, total = await repository.page(session, Incident, tenant_id, listing)
        return responses.page(response, rows, total, listing, responses.incident)

    async def ListActiveIncidents(
        self, request: rpc.ListActiveIncidentsRequest, context: Context
    ) -> rpc.ListActiveIncidentsResponse:
        return await self._list(context, queries.active_incidents(request), rpc.ListActiveIncidentsResponse)

    async def ListResolvedIncidents(
        self, request: rpc.ListResolvedIncidentsRequest, context: Context
    ) -> rpc.ListResolvedIncidentsResponse:
        return await self._list(context, queries.resolved_incidents(request), rpc.ListResolvedIncidentsResponse)

    async def GetIncident(self, request: rpc.GetIncidentRequest, context: Context) -> rpc.GetIncidentResponse:
        who, incident_id = caller(context), requests.incident_id(request.incident_id)
        async with self._sessions() as session:
            tenant_id = await tenants.require(session, who, tenants.READABLE)
            incident = await repository.get_incident(session, tenant_id, incident_id)
        return rpc.GetIncidentResponse(incident=responses.incident(incident))

    async def ListIncidentsByRun(
        self, request: rpc.ListIncidentsByRunRequest, context: Context
    ) -> rpc.ListIncidentsByRunResponse:
        who, run_id = caller(context), requests.run_id(request.run_id)
        async with self._sessions() as session:
            tenant_id = await tenants.require(session, who, tenants.READABLE)
            await repository.get_run(session, tenant_id, run_id)  # another tenant's run: 404
            found = await repository.incidents_of(session, tenant_id, run_id)
        return rpc.ListIncidentsByRunResponse(
            run_id=run_id, incidents=[responses.incident(i) for i in found], total=len(found)
        )

    async def AcknowledgeIncident(
        self, request: rpc.AcknowledgeIncidentRequest, context: Context
    ) -> rpc.AcknowledgeIncidentResponse:
        who, incident_id = caller(context), requests.incident_id(request.incident_id)
        who.require_role(*WRITERS)
        note = validation.length("note", request.note, 0, 2000)
        async with self._sessions.begin() as session:
            await tenants.require(session, who, tenants.WRITABLE)
            incident = await incidents.acknowledge(session, who, incident_id, note)
        return rpc.AcknowledgeIncidentResponse(incident=responses.incident(incident))

    async def ResolveIncident(
        self, request: rpc.ResolveIncidentRequest, context: Context
    ) -> rpc.ResolveIncidentResponse:
        who, incident_id = caller(context), requests.incident_id(request.incident_id)
        who.require_role(*WRITERS)
        method = validation.length("resolution_method", request.resolution_method or "manual", 1, 50)
        notes = validation.length("resolution_notes", request.resolution_notes, 0, 2000)
        async with self._sessions.begin() as session:
            await tenants.require(session, who, tenants.WRITABLE)
            incident = await incidents.resolve(session, who, incident_id, method, notes)
        return rpc.ResolveIncidentResponse(incident=responses.incident(incident))
