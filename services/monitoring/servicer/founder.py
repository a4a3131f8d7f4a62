from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from aos.monitoring.v1 import founder_service_pb2 as fdr
from aos.monitoring.v1 import founder_service_pb2_grpc
from aos.monitoring.v1 import monitoring_pb2 as pb
from services.common.principal import Principal, caller
from services.monitoring import founder, founder_responses, policy, queries, requests, responses
from services.monitoring.models import Incident, Run
from services.monitoring.servicer import Context, Sessions

log = logging.getLogger("aos.monitoring.founder")


def _filters(request: Message) -> dict[str, Any]:
    return json_format.MessageToDict(request, preserving_proto_field_name=True)


class FounderServicer(founder_service_pb2_grpc.FounderServiceServicer):
    """Operators only (the gate rule's principal, checked again by the service's interceptor)."""

    def __init__(self, sessions: Sessions, failures: founder.AuditFailures) -> None:
        self._sessions, self._failures = sessions, failures

    async def _audit(self, who: Principal, rpc: str, filters: dict[str, Any], run_id: str | None = None) -> None:
        """Commits the audit row in its own short transaction before the read. Fail open (MONITORING.md 0.9):
        an audit outage must not blind operators, so any failure is logged, counted (alerted) and the read
        goes on."""
        try:
            async with self._sessions.begin() as session:
                await founder.record_access(session, who, rpc, filters, run_id)
        except Exception:
            log.exception("founder access audit failed; %s proceeds unaudited", rpc)
            self._failures.add(rpc)

    async def GetRunTimeline(self, request: fdr.GetRunTimelineRequest, context: Context) -> fdr.GetRunTimelineResponse:
        who, run_id = caller(context), requests.run_id(request.run_id)
        await self._audit(who, "GetRunTimeline", {}, run_id)
        async with self._sessions() as session:
            run, incidents, record = await founder.timeline(session, run_id)
        return founder_responses.timeline(run, incidents, record)

    async def ListAllRuns(self, request: fdr.ListAllRunsRequest, context: Context) -> fdr.ListAllRunsResponse:
        who, listing = caller(context), queries.all_runs(request)
        await self._audit(who, "ListAllRuns", _filters(request))
        async with self._sessions() as session:
            rows = await founder.every(session, Run, listing)
            thresholds = await founder.thresholds_of(session, {r.tenant_id for r in rows})
        now = datetime.now(UTC)

        def summary(run: Run) -> pb.RunSummary:
            t = thresholds.get(run.tenant_id) or policy.Thresholds()
            return pb.RunSummary(**responses.summary_fields(run, t, now))

        return founder_responses.keyset_page(fdr.ListAllRunsResponse, rows, listing, summary)

    async def ListAllIncidents(
        self, request: fdr.ListAllIncidentsRequest, context: Context
    ) -> fdr.ListAllIncidentsResponse:
        who, listing = caller(context), queries.all_incidents(request)
        await self._audit(who, "ListAllIncidents", _filters(request))
        async with self._sessions() as session:
            rows = await founder.every(session, Incident, listing)
        return founder_responses.keyset_page(fdr.ListAllIncidentsResponse, rows, listing, responses.incident)
