from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from aos.monitoring.v1 import monitoring_pb2 as pb
from aos.monitoring.v1 import monitoring_service_pb2 as rpc
from aos.monitoring.v1 import monitoring_service_pb2_grpc
from services.common import validation
from services.common.interceptors import request_id
from services.common.principal import WRITERS, caller
from services.monitoring import incidents, queries, querystring, repository, requests, responses, tenants
from services.monitoring.models import Incident
from services.monitoring.servicer import Context, Sessions, header

T = TypeVar("T")
# The facade's topics: each is its own RPC's request and listing.
TOPICS = {
    "active": (rpc.ListActiveIncidentsRequest, queries.active_incidents),
    "resolved": (rpc.ListResolvedIncidentsRequest, queries.resolved_incidents),
    "historical": (rpc.ListHistoricalIncidentsRequest, queries.historical_incidents),
}


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

    async def ListHistoricalIncidents(
        self, request: rpc.ListHistoricalIncidentsRequest, context: Context
    ) -> rpc.ListHistoricalIncidentsResponse:
        return await self._list(context, queries.historical_incidents(request), rpc.ListHistoricalIncidentsResponse)

    async def ListIncidentsFacade(
        self, request: rpc.ListIncidentsFacadeRequest, context: Context
    ) -> rpc.ListIncidentsFacadeResponse:
        params = querystring.parse(request.raw_query)
        topic = querystring.topic(params, tuple(TOPICS))
        kind, listing_of = TOPICS[topic]
        listing = listing_of(querystring.message(params, kind))
        meta = responses.facade_meta(request_id.get(), header(context, "x-correlation-id"))

        def reply(items: list[pb.Incident], **page: Any) -> rpc.ListIncidentsFacadeResponse:
            return rpc.ListIncidentsFacadeResponse(topic=topic, incidents=items, meta=meta, **page)

        return await self._list(context, listing, reply)

    async def GetIncidentMetrics(
        self, request: rpc.GetIncidentMetricsRequest, context: Context
    ) -> rpc.GetIncidentMetricsResponse:
        who, days = caller(context), queries.window_days(request)
        since = datetime.now(UTC) - timedelta(days=days)
        async with self._sessions() as session:
            tenant_id = await tenants.require(session, who, tenants.READABLE)
            counts, times = await repository.incident_metrics(session, tenant_id, since)
        return responses.incident_metrics(days, since, counts, times)
