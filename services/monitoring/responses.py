"""Rows → protos: runs (with the projection derived at read time while LIVE), incidents, thresholds and the
legacy list and ingest envelopes (MONITORING.md section 2's outputs)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from google.protobuf import json_format, struct_pb2, timestamp_pb2

from aos.monitoring.v1 import monitoring_pb2 as pb
from aos.monitoring.v1 import monitoring_service_pb2 as rpc
from services.common import paging
from services.monitoring import policy
from services.monitoring.models import Incident, Run, SignalFeedback
from services.monitoring.queries import Listing

NULL = struct_pb2.Value(null_value=struct_pb2.NULL_VALUE)
T = TypeVar("T")


def _ms(since: datetime, now: datetime) -> int:
    return max(0, int((now - since).total_seconds() * 1000))


def projection(run: Run, t: policy.Thresholds, now: datetime) -> tuple[str, str]:
    """latency_bucket and evidence_health: stored once COMPLETED, derived from the clock while LIVE."""
    if run.latency_bucket and run.evidence_health:
        return run.latency_bucket, run.evidence_health
    silent = _ms(run.last_seen_at, now)
    latency = policy.latency_bucket(t, run.expected_latency_ms, _ms(run.started_at, now), silent)
    return latency, policy.evidence_health(True, latency, 0, traced=False)


def struct(data: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(data)
    return struct


def summary_fields(run: Run, t: policy.Thresholds, now: datetime) -> dict[str, Any]:
    latency, evidence = projection(run, t, now)
    fields: dict[str, Any] = {
        **{k: getattr(run, k) for k in ("run_id", "source", "provider_type", "state", "status", "risk_level")},
        **{k: getattr(run, k) for k in ("risk_type", "incident_count", "policy_violation", "cost_cents")},
        **{k: getattr(run, k) for k in ("input_tokens", "output_tokens", "is_synthetic", "tenant_id")},
        "project_id": run.project_id or "",
        "started_at": run.started_at,
        "last_seen_at": run.last_seen_at,
        "latency_bucket": latency,
        "evidence_health": evidence,
        "integrity_status": "UNKNOWN",
        "policy_draft_count": 0,
        "estimated_cost_usd": float(run.cost_cents) / 100,
        "policy_context": struct(run.policy_context),
        "incident_severity": run.incident_severity or "",
    }
    if run.completed_at is not None:
        fields |= {"completed_at": run.completed_at, "duration_ms": float(run.duration_ms or 0)}
    return fields


def detail_fields(run: Run, t: policy.Thresholds, now: datetime) -> dict[str, Any]:
    fields = summary_fields(run, t, now) | {
        k: getattr(run, k) or "" for k in ("agent_id", "goal", "error_code", "error_message", "actor_type")
    }
    fields |= {k: getattr(run, k) or "" for k in ("actor_id", "origin_system_id", "parent_run_id", "idempotency_key")}
    if run.plan is not None:
        fields["plan"] = json_format.ParseDict(run.plan, struct_pb2.Value())
    if run.expected_latency_ms is not None:
        fields["expected_latency_ms"] = run.expected_latency_ms
    return fields


def run_detail(run: Run, t: policy.Thresholds) -> pb.RunDetail:
    return pb.RunDetail(**detail_fields(run, t, datetime.now(UTC)))


def page(
    response: Callable[..., T], rows: Sequence[Any], total: int, listing: Listing, item: Callable[[Any], Any]
) -> T:
    """A list answer: items, total, has_more, the legacy pagination block (next_offset null on the last and on
    keyset pages) and the next keyset page's token."""
    current = listing.page
    items, token, more = current.cut(rows, listing.key)
    pagination = _pagination(current, len(items), more and current.after is None)
    reply = response(
        items=[item(r) for r in items], total=total, has_more=more, pagination=pagination, next_page_token=token
    )
    reply.generated_at.FromDatetime(datetime.now(UTC))  # type: ignore[attr-defined]
    return reply


def _pagination(page: paging.Page, count: int, more: bool) -> pb.Pagination:
    """The legacy paging block: next_offset null on the last page (and on keyset pages)."""
    following = struct_pb2.Value(number_value=page.offset + count) if more else NULL
    return pb.Pagination(limit=page.size, offset=page.offset, next_offset=following)


def runs_facade(
    topic: str,
    rows: Sequence[Run],
    total: int,
    listing: Listing,
    item: Callable[[Run], pb.RunSummary],
    meta: pb.FacadeMeta,
) -> rpc.ListRunsFacadeResponse:
    """The legacy /cus/activity/runs answer: the topic's page under `runs`, with the facade's meta block."""
    runs, _, more = listing.page.cut(rows, listing.key)
    reply = rpc.ListRunsFacadeResponse(
        topic=topic,
        runs=[item(r) for r in runs],
        total=total,
        has_more=more,
        pagination=_pagination(listing.page, len(runs), more),
        meta=meta,
    )
    reply.generated_at.FromDatetime(datetime.now(UTC))
    return reply


def facade_meta(request_id: str, correlation_id: str) -> pb.FacadeMeta:
    return pb.FacadeMeta(request_id=request_id, correlation_id=correlation_id, as_of=NULL)


def incident(row: Incident) -> pb.Incident:
    fields: dict[str, Any] = {k: getattr(row, k) or "" for k in ("error_code", "error_message", "affected_agent_id")}
    fields |= {k: getattr(row, k) or "" for k in ("acked_by", "ack_note", "resolved_by", "resolution_method")}
    fields["resolution_notes"] = row.resolution_notes or ""
    times = {k: getattr(row, k) for k in ("created_at", "updated_at", "acked_at", "resolved_at") if getattr(row, k)}
    return pb.Incident(
        incident_id=row.incident_id,
        tenant_id=row.tenant_id,
        title=row.title,
        severity=row.severity,
        category=row.category,
        cause_type=row.cause_type,
        lifecycle_state=row.lifecycle_state,
        llm_run_id=row.source_run_id or "",
        cost_impact_cents=row.cost_impact_cents,
        is_synthetic=row.is_synthetic,
        policy_ref=NULL,
        violation_ref=NULL,
        **fields,
        **times,
    )


def thresholds(t: policy.Thresholds) -> pb.Thresholds:
    return pb.Thresholds(**{name: getattr(t, name) for name in policy.THRESHOLDS}, customized=sorted(t.customized))


def status_summary(counts: list[tuple[str, int]]) -> rpc.GetRunStatusSummaryResponse:
    total = sum(count for _, count in counts)
    buckets = [
        rpc.StatusBucket(status=status, count=count, percentage=round(100 * count / total, 2))
        for status, count in sorted(counts, key=lambda c: (-c[1], c[0]))
    ]
    reply = rpc.GetRunStatusSummaryResponse(buckets=buckets, total_runs=total)
    reply.generated_at.FromDatetime(datetime.now(UTC))
    return reply


def ingested(status: str, record_id: str, call_id: str, request_id: str) -> rpc.IngestUsageResponse:
    meta = pb.ResponseMeta(request_id=request_id)
    meta.timestamp.FromDatetime(datetime.now(UTC))
    result = rpc.IngestResult(status=status, id=record_id, call_id=call_id)
    return rpc.IngestUsageResponse(status=status, id=record_id, call_id=call_id, success=True, data=result, meta=meta)


def _number(value: float | None) -> struct_pb2.Value:
    return NULL if value is None else struct_pb2.Value(number_value=round(float(value), 3))


def incident_metrics(
    days: int, since: datetime, counts: Sequence[tuple[str, str, int]], times: Sequence[float | None]
) -> rpc.GetIncidentMetricsResponse:
    """Counts by lifecycle_state and by severity (every value present, 0 when none) and the four times."""
    states, severities = dict.fromkeys(policy.LIFECYCLE, 0), dict.fromkeys(policy.SEVERITIES, 0)
    for state, severity, n in counts:
        states[state] += n
        severities[severity] += n
    mean_ack, median_ack, mean_resolve, median_resolve = (_number(t) for t in times)
    reply = rpc.GetIncidentMetricsResponse(
        window_days=days,
        total=sum(states.values()),
        by_lifecycle_state=states,
        by_severity=severities,
        mean_time_to_acknowledge_ms=mean_ack,
        median_time_to_acknowledge_ms=median_ack,
        mean_time_to_resolve_ms=mean_resolve,
        median_time_to_resolve_ms=median_resolve,
    )
    reply.window_start.FromDatetime(since)
    reply.generated_at.FromDatetime(datetime.now(UTC))
    return reply


def signal(row: Any) -> pb.Signal:
    """A row of signals.page: the derived signal, and its acknowledgement (or null)."""
    feedback = NULL
    if row.acknowledged_at is not None:
        acked = {
            "feedback_state": "ACKNOWLEDGED",
            "acknowledged_by": row.actor,
            "acknowledged_at": _rfc3339(row.acknowledged_at),
            "comment": row.comment,
        }
        feedback = struct_pb2.Value(struct_value=struct(acked))
    item = pb.Signal(
        signal_id=policy.signal_id(row.fingerprint),
        signal_fingerprint=row.fingerprint,
        run_id=str(row.run_id),
        project_id=row.project_id or "",
        signal_type=row.signal_type,
        severity=row.severity,
        summary=policy.signal_summary(row.signal_type, str(row.run_id), row.risk_level, row.incident_severity),
        policy_context=struct(row.policy_context),
        feedback=feedback,
    )
    item.created_at.FromDatetime(row.started_at)
    return item


def _rfc3339(at: datetime) -> str:
    """As the transcoder prints a Timestamp, so the list's acknowledged_at equals the acknowledgement's."""
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(at)
    return stamp.ToJsonString()


def signals(rows: Sequence[Any], total: int, page: paging.Page) -> rpc.ListSignalsResponse:
    more = page.offset + len(rows) < total
    reply = rpc.ListSignalsResponse(
        items=[signal(r) for r in rows], total=total, has_more=more, pagination=_pagination(page, len(rows), more)
    )
    reply.generated_at.FromDatetime(datetime.now(UTC))
    return reply


def acknowledged(row: SignalFeedback) -> rpc.AcknowledgeSignalResponse:
    reply = rpc.AcknowledgeSignalResponse(
        signal_fingerprint=row.signal_fingerprint,
        signal_id=policy.signal_id(row.signal_fingerprint),
        run_id=row.run_id,
        signal_type=row.signal_type,
        feedback_state=row.feedback_state,
        acknowledged_by=row.actor,
        comment=row.comment or "",
    )
    reply.acknowledged_at.FromDatetime(row.created_at)
    return reply


def suppressed(row: SignalFeedback) -> rpc.SuppressSignalResponse:
    assert row.expires_at is not None
    reply = rpc.SuppressSignalResponse(signal_fingerprint=row.signal_fingerprint)
    reply.suppressed_until.FromDatetime(row.expires_at)
    return reply


def activity_metrics(counts: Sequence[tuple[str, str, str, str, int]]) -> rpc.GetActivityMetricsResponse:
    """(group, risk_level, evidence_health, risk_type, count) rows → both groups, every known value present."""
    groups: dict[str, pb.RunCounts] = {}
    for group in ("live", "completed_24h"):
        mine = [c for c in counts if c[0] == group]
        by = [
            {value: sum(c[4] for c in mine if c[i] == value) for value in values}
            for i, values in ((1, policy.RISK_LEVELS), (2, policy.EVIDENCE), (3, policy.RISK_TYPES))
        ]
        groups[group] = pb.RunCounts(
            total=sum(c[4] for c in mine), by_risk_level=by[0], by_evidence_health=by[1], by_risk_type=by[2]
        )
    reply = rpc.GetActivityMetricsResponse(live=groups["live"], completed_24h=groups["completed_24h"])
    reply.generated_at.FromDatetime(datetime.now(UTC))
    return reply
