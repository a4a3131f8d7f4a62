"""Records and traces → the LogsService protos under their legacy field names (MONITORING.md 6.1, 6.2, 6.5)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar

from google.protobuf import json_format, struct_pb2

from aos.monitoring.v1 import logs_pb2 as pb
from aos.monitoring.v1 import logs_service_pb2 as rpc
from services.monitoring import records, traces
from services.monitoring.models import Incident, LlmRunRecord, Trace, TraceStep
from services.monitoring.responses import struct

T = TypeVar("T")
_RECORD_TEXT = ("trace_id", "provider", "model", "prompt_hash", "response_hash")
_RECORD_VALUES = ("input_tokens", "output_tokens", "cost_cents", "execution_status", "source", "is_synthetic")


def _record_fields(row: LlmRunRecord) -> dict[str, Any]:
    fields: dict[str, Any] = {k: getattr(row, k) or "" for k in _RECORD_TEXT}
    fields |= {k: getattr(row, k) for k in (*_RECORD_VALUES, "run_id", "started_at", "completed_at")}
    return fields


def record(row: LlmRunRecord) -> pb.LlmRunRecord:
    return pb.LlmRunRecord(id=row.id, tenant_id=row.tenant_id, **_record_fields(row), **_at(created_at=row.created_at))


def _at(**times: datetime) -> dict[str, Any]:
    """Times as keyword arguments (the generated stubs type them as Timestamp; protobuf takes datetimes too)."""
    return times


def envelope(row: LlmRunRecord, incidents: list[Incident]) -> rpc.GetLlmRunEnvelopeResponse:
    return rpc.GetLlmRunEnvelopeResponse(
        run_id=row.run_id,
        record=record(row),
        started_at_utc=records.utc(row.started_at),
        completed_at_utc=records.utc(row.completed_at),
        created_at_utc=records.utc(row.created_at),
        incident_ids=[i.incident_id for i in incidents],
        origin=records.origin(row),
        checksum=records.checksum(row),
        immutable=True,
    )


def log_item(row: LlmRunRecord) -> rpc.LogItem:
    return rpc.LogItem(item_id=row.id, source_kind="llm_run", **_record_fields(row), **_at(timestamp=row.created_at))


def step(row: TraceStep) -> pb.TraceStep:
    fields: dict[str, Any] = {k: getattr(row, k) or "" for k in ("skill_name", "status", "outcome_category")}
    fields |= {k: getattr(row, k) or "" for k in ("outcome_code", "input_hash", "output_hash")}
    if row.outcome_data is not None:
        fields["outcome_data"] = json_format.ParseDict(row.outcome_data, struct_pb2.Value())
    if row.timestamp is not None:
        fields["timestamp"] = row.timestamp
    return pb.TraceStep(
        step_index=row.step_index,
        params=struct(row.params),
        cost_cents=row.cost_cents,
        duration_ms=row.duration_ms,
        retry_count=row.retry_count,
        **fields,
    )


def trace(row: Trace, steps: list[TraceStep] | None = None) -> pb.Trace:
    fields: dict[str, Any] = {k: getattr(row, k) or "" for k in ("run_id", "correlation_id", "agent_id", "status")}
    fields |= {k: getattr(row, k) or "" for k in ("plan_hash", "frozen_timestamp")}
    fields |= {k: getattr(row, k) for k in ("started_at", "completed_at") if getattr(row, k) is not None}
    if row.plan is not None:
        fields["plan"] = json_format.ParseDict(row.plan, struct_pb2.Value())
    return pb.Trace(
        trace_id=row.trace_id,
        tenant_id=row.tenant_id,
        metadata=struct(row.meta),
        root_hash=row.root_hash,
        seed=row.seed,
        schema_version=row.schema_version,
        stored_by=row.stored_by,
        step_count=row.step_count,
        redaction_count=row.redaction_count,
        steps=[step(s) for s in steps or ()],
        **_at(created_at=row.created_at),
        **fields,
    )


def replay(run_id: str, anchor: datetime, items: list[records.Item], truncated: bool) -> rpc.GetReplayWindowResponse:
    start, end = records.window(anchor)
    return rpc.GetReplayWindowResponse(
        run_id=run_id,
        items=[
            rpc.ReplayItem(kind=i.kind, id=i.id, record=struct(i.record), **_at(timestamp=i.timestamp)) for i in items
        ],
        item_count=len(items),
        truncated=truncated,
        **_at(anchor=anchor, window_start=start, window_end=end),
    )


def comparison(a: Trace, b: Trace, differences: list[traces.Difference]) -> rpc.CompareTracesResponse:
    return rpc.CompareTracesResponse(
        match=not differences,
        trace1_root_hash=a.root_hash,
        trace2_root_hash=b.root_hash,
        differences=[rpc.TraceDifference(field=d.field, trace1=d.trace1, trace2=d.trace2) for d in differences],
        summary=traces.summary(differences),
    )


def generated(reply: T) -> T:
    reply.generated_at.FromDatetime(datetime.now(UTC))  # type: ignore[attr-defined]
    return reply
