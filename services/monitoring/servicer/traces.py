from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from aos.monitoring.v1 import logs_service_pb2 as rpc
from services.common.principal import WRITERS, caller
from services.common.server import created
from services.monitoring import logs_queries, logs_responses, repository, responses, tenants, traces
from services.monitoring.models import Trace, TraceStep
from services.monitoring.servicer import Context, Sessions


class TracesMixin:
    """LogsService's trace RPCs (MONITORING.md 6.2, 6.5); LogsServicer (servicer/logs.py) mixes them in."""

    _sessions: Sessions

    async def _steps(self, session: AsyncSession, tenant_id: str, trace: Trace | None) -> list[TraceStep]:
        return await traces.steps_of(session, tenant_id, trace.trace_id) if trace else []

    async def StoreTrace(self, request: rpc.StoreTraceRequest, context: Context) -> rpc.StoreTraceResponse:
        who = caller(context)
        who.require_role(*WRITERS)
        new = traces.parse(request.trace, request.overwrite)
        async with self._sessions.begin() as session:
            await tenants.require(session, who, tenants.WRITABLE)
            trace, stored = await traces.store(session, who, new)
        if stored:
            await created(context)
        return rpc.StoreTraceResponse(
            trace_id=trace.trace_id, run_id=trace.run_id or "", stored=stored, root_hash=trace.root_hash
        )

    async def ListTraces(self, request: rpc.ListTracesRequest, context: Context) -> rpc.ListTracesResponse:
        who, listing = caller(context), logs_queries.trace_list(request)
        async with self._sessions() as session:
            tenant_id = await tenants.require(session, who, tenants.READABLE)
            rows, total = await repository.page(session, Trace, tenant_id, listing)
        return responses.page(rpc.ListTracesResponse, rows, total, listing, logs_responses.trace)

    async def GetTrace(self, request: rpc.GetTraceRequest, context: Context) -> rpc.GetTraceResponse:
        who = caller(context)
        async with self._sessions() as session:
            tenant_id = await tenants.require(session, who, tenants.READABLE)
            trace = await traces.resolve(session, tenant_id, request.run_id)
            steps = await self._steps(session, tenant_id, trace)
        return rpc.GetTraceResponse(trace=logs_responses.trace(trace, steps))

    async def CompareTraces(self, request: rpc.CompareTracesRequest, context: Context) -> rpc.CompareTracesResponse:
        who = caller(context)
        async with self._sessions() as session:
            tenant_id = await tenants.require(session, who, tenants.READABLE)
            # Both resolve in the caller's tenant before anything is compared: another tenant's is a 404.
            one = await traces.resolve(session, tenant_id, request.trace1)
            two = await traces.resolve(session, tenant_id, request.trace2)
            differences = traces.compare(
                one, await self._steps(session, tenant_id, one), two, await self._steps(session, tenant_id, two)
            )
        return logs_responses.comparison(one, two, differences)
