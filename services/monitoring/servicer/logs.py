from __future__ import annotations

from google.protobuf import struct_pb2

from aos.monitoring.v1 import logs_service_pb2 as rpc
from aos.monitoring.v1 import logs_service_pb2_grpc
from aos.monitoring.v1 import monitoring_pb2 as pb
from services.common.interceptors import request_id
from services.common.principal import caller
from services.monitoring import logs_queries, logs_responses, records, repository, requests, responses, tenants
from services.monitoring.models import LlmRunRecord
from services.monitoring.servicer import Context, Sessions, header
from services.monitoring.servicer.traces import TracesMixin


class LogsServicer(TracesMixin, logs_service_pb2_grpc.LogsServiceServicer):
    """The records' RPCs here, the traces' in TracesMixin (servicer/traces.py): one proto service."""

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    async def ListLlmRunRecords(
        self, request: rpc.ListLlmRunRecordsRequest, context: Context
    ) -> rpc.ListLlmRunRecordsResponse:
        who = caller(context)
        listing, applied = logs_queries.records(request)
        async with self._sessions() as session:
            tenant_id = await tenants.require(session, who, tenants.READABLE)
            rows, total = await repository.page(session, LlmRunRecord, tenant_id, listing)
        reply = responses.page(rpc.ListLlmRunRecordsResponse, rows, total, listing, logs_responses.record)
        reply.filters_applied.SetInParent()  # {} when none: the field is always there
        reply.filters_applied.update(applied)
        return reply

    async def GetLlmRunEnvelope(
        self, request: rpc.GetLlmRunEnvelopeRequest, context: Context
    ) -> rpc.GetLlmRunEnvelopeResponse:
        who, run_id = caller(context), requests.run_id(request.run_id)
        async with self._sessions() as session:
            tenant_id = await tenants.require(session, who, tenants.READABLE)
            record = await records.record(session, tenant_id, run_id)
            incidents = await repository.incidents_of(session, tenant_id, run_id)
        return logs_responses.envelope(record, incidents)

    async def GetLlmRunTrace(self, request: rpc.GetLlmRunTraceRequest, context: Context) -> rpc.GetLlmRunTraceResponse:
        who, run_id = caller(context), requests.run_id(request.run_id)
        async with self._sessions() as session:
            tenant_id = await tenants.require(session, who, tenants.READABLE)
            run = await repository.get_run(session, tenant_id, run_id)
            trace = await records.trace_of(session, tenant_id, run)
            steps = await self._steps(session, tenant_id, trace)
        return rpc.GetLlmRunTraceResponse(
            run_id=run_id,
            trace_id=trace.trace_id if trace else "",
            steps=[logs_responses.step(s) for s in steps],
            step_count=len(steps),
        )

    async def GetReplayWindow(
        self, request: rpc.GetReplayWindowRequest, context: Context
    ) -> rpc.GetReplayWindowResponse:
        who, run_id = caller(context), requests.run_id(request.run_id)
        async with self._sessions() as session:
            tenant_id = await tenants.require(session, who, tenants.READABLE)
            anchor = records.anchor(await repository.get_run(session, tenant_id, run_id))
            items, truncated = await records.replay(session, tenant_id, *records.window(anchor))
        return logs_responses.replay(run_id, anchor, items, truncated)

    async def ListLogsFacade(self, request: rpc.ListLogsFacadeRequest, context: Context) -> rpc.ListLogsFacadeResponse:
        who = caller(context)
        topic, listing = logs_queries.facade(request.raw_query)
        async with self._sessions() as session:
            tenant_id = await tenants.require(session, who, tenants.READABLE)
            # system_records has no source yet: an empty topic, not an error.
            rows, total = (
                await repository.page(session, LlmRunRecord, tenant_id, listing) if topic == "llm_runs" else ([], 0)
            )
        page, _, more = listing.page.cut(rows, listing.key)
        following = listing.page.offset + len(page) if more else None
        pagination = pb.Pagination(
            limit=listing.page.size,
            offset=listing.page.offset,
            next_offset=responses.NULL if following is None else struct_pb2.Value(number_value=following),
        )
        reply = rpc.ListLogsFacadeResponse(
            topic=topic,
            records=[logs_responses.log_item(r) for r in page],
            total=total,
            has_more=more,
            pagination=pagination,
            meta=responses.facade_meta(request_id.get(), header(context, "x-correlation-id")),
        )
        return logs_responses.generated(reply)
