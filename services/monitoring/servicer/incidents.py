from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from aos.monitoring.v1 import monitoring_service_pb2 as rpc
from aos.monitoring.v1 import monitoring_service_pb2_grpc
from services.common import validation
from services.common.principal import WRITERS, caller
from services.monitoring import incidents, queries, repository, requests, responses, tenants
from services.monitoring.models import Incident
from services.monitoring.servicer import Context, Sessions

T = TypeVar("T")


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
