from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from aos.monitoring.v1 import monitoring_pb2 as pb
from aos.monitoring.v1 import monitoring_service_pb2 as rpc
from aos.monitoring.v1 import monitoring_service_pb2_grpc
from services.common import validation
from services.common.errors import NotFound
from services.common.interceptors import request_id
from services.common.principal import MANAGERS, WRITERS, caller
from services.common.server import created
from services.monitoring import (
    clients,
    policy,
    queries,
    querystring,
    repository,
    requests,
    responses,
    runs,
    signals,
    tenants,
)
from services.monitoring.models import Run
from services.monitoring.servicer import Context, Sessions, header, scope

T = TypeVar("T")
Summarise = Callable[[Run], pb.RunSummary]
# The runs facade's topics: each one's own list request (its filters) and listing.
FACADE_TOPICS: dict[str, tuple[type[Any], Callable[[Any], queries.Listing]]] = {
    "live": (rpc.ListLiveRunsRequest, queries.live),
    "completed": (rpc.ListCompletedRunsRequest, queries.completed),
}


class ActivityServicer(monitoring_service_pb2_grpc.ActivityServiceServicer):
    def __init__(self, sessions: Sessions, account: clients.Account) -> None:
        self._sessions, self._account = sessions, account

    async def CreateRun(self, request: rpc.CreateRunRequest, context: Context) -> rpc.CreateRunResponse:
        who = caller(context)
        values = requests.new_run(request, who, header(context, "x-aos-key-prefix"))
        # Asked before the transaction opens (none spans a call out); another tenant's project is unknown.
        if values["project_id"] and not await self._account.project_exists(who.tenant(), values["project_id"]):
            raise NotFound("project not found", reason="PROJECT_NOT_FOUND")
        async with self._sessions.begin() as session:
            _, t = await scope(session, who, tenants.WRITABLE)
            run, fresh = await runs.create(session, who, values, t)
        if fresh:
            await created(context)
        return rpc.CreateRunResponse(**responses.detail_fields(run, t, datetime.now(UTC)))

    async def _detail(self, context: Context, run_id: str) -> dict[str, Any]:
        who, run_id = caller(context), requests.run_id(run_id)
        async with self._sessions() as session:
            tenant_id, t = await scope(session, who, tenants.READABLE)
            run = await repository.get_run(session, tenant_id, run_id)
        return responses.detail_fields(run, t, datetime.now(UTC))

    async def GetRun(self, request: rpc.GetRunRequest, context: Context) -> rpc.GetRunResponse:
        return rpc.GetRunResponse(**await self._detail(context, request.run_id))

    async def GetRunDetail(self, request: rpc.GetRunDetailRequest, context: Context) -> rpc.GetRunDetailResponse:
        return rpc.GetRunDetailResponse(**await self._detail(context, request.run_id))

    async def HeartbeatRun(self, request: rpc.HeartbeatRunRequest, context: Context) -> rpc.HeartbeatRunResponse:
        who, run_id, totals = caller(context), requests.run_id(request.run_id), requests.totals(request)
        async with self._sessions.begin() as session:
            _, t = await scope(session, who, tenants.WRITABLE)
            run = await runs.heartbeat(session, who, run_id, totals, t)
        return rpc.HeartbeatRunResponse(run=responses.run_detail(run, t))

    async def CompleteRun(self, request: rpc.CompleteRunRequest, context: Context) -> rpc.CompleteRunResponse:
        who, run_id, done = caller(context), requests.run_id(request.run_id), requests.completion(request)
        async with self._sessions.begin() as session:
            _, t = await scope(session, who, tenants.WRITABLE)
            completed = await runs.complete(session, who, run_id, done, t)
        return rpc.CompleteRunResponse(
            run=responses.run_detail(completed.run, t),
            record_id=completed.record_id,
            incident_ids=completed.incident_ids,
        )

    async def _page(self, context: Context, listing: queries.Listing) -> tuple[list[Run], int, Summarise]:
        """A page of the tenant's runs, their total, and how to show one of them."""
        who = caller(context)
        async with self._sessions() as session:
            tenant_id, t = await scope(session, who, tenants.READABLE)
            rows, total = await repository.page(session, Run, tenant_id, listing)
        now = datetime.now(UTC)
        return rows, total, lambda r: pb.RunSummary(**responses.summary_fields(r, t, now))

    async def _runs(self, context: Context, listing: queries.Listing, response: Callable[..., T]) -> T:
        rows, total, summarise = await self._page(context, listing)
        return responses.page(response, rows, total, listing, summarise)

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
            _, t = await scope(session, who, tenants.READABLE)
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

    async def ListSignals(self, request: rpc.ListSignalsRequest, context: Context) -> rpc.ListSignalsResponse:
        who, q = caller(context), queries.signals(request)
        async with self._sessions() as session:
            tenant_id = await tenants.require(session, who, tenants.READABLE)
            rows, total = await signals.page(session, tenant_id, q)
        return responses.signals(rows, total, q.page)

    async def AcknowledgeSignal(
        self, request: rpc.AcknowledgeSignalRequest, context: Context
    ) -> rpc.AcknowledgeSignalResponse:
        who = caller(context)
        who.require_role(*WRITERS)
        target, comment = requests.signal_target(request, who.tenant()), requests.note("comment", request.comment)
        async with self._sessions.begin() as session:
            await tenants.require(session, who, tenants.WRITABLE)
            row = await signals.acknowledge(session, who, target, comment)
        return responses.acknowledged(row)

    async def SuppressSignal(self, request: rpc.SuppressSignalRequest, context: Context) -> rpc.SuppressSignalResponse:
        who = caller(context)
        who.require_role(*WRITERS)
        target, reason = requests.signal_target(request, who.tenant()), requests.note("reason", request.reason)
        minutes = policy.suppress_minutes(request.duration_minutes)
        async with self._sessions.begin() as session:
            await tenants.require(session, who, tenants.WRITABLE)
            row = await signals.suppress(session, who, target, minutes, reason)
        return responses.suppressed(row)

    async def GetActivityMetrics(
        self, request: rpc.GetActivityMetricsRequest, context: Context
    ) -> rpc.GetActivityMetricsResponse:
        who = caller(context)
        project_id = validation.length("project_id", request.project_id, 0, 64)
        async with self._sessions() as session:
            tenant_id = await tenants.require(session, who, tenants.READABLE)
            counts = await repository.run_counts(session, tenant_id, project_id)
        return responses.activity_metrics(counts)

    async def ListRunsFacade(self, request: rpc.ListRunsFacadeRequest, context: Context) -> rpc.ListRunsFacadeResponse:
        params = querystring.parse(request.raw_query)
        topic = querystring.topic(params, tuple(FACADE_TOPICS))
        message, listing_of = FACADE_TOPICS[topic]
        listing = listing_of(querystring.message(params, message))
        rows, total, summarise = await self._page(context, listing)
        meta = responses.facade_meta(request_id.get(), header(context, "x-correlation-id"))
        return responses.runs_facade(topic, rows, total, listing, summarise, meta)
