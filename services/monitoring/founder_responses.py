"""Founder review's answers: cross-tenant keyset pages and a run's timeline (MONITORING.md section 2)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from google.protobuf import json_format

from aos.monitoring.v1 import founder_service_pb2 as fdr
from services.monitoring.models import Incident, LlmRunRecord, Run
from services.monitoring.queries import Listing
from services.monitoring.responses import incident, struct

T = TypeVar("T")


def keyset_page(response: Callable[..., T], rows: Sequence[Any], listing: Listing, item: Callable[[Any], Any]) -> T:
    """A founder list answer: items, has_more and the next page's token; no total (it would count every
    tenant's rows)."""
    items, token, more = listing.page.cut(rows, listing.key)
    reply = response(items=[item(r) for r in items], has_more=more, next_page_token=token)
    reply.generated_at.FromDatetime(datetime.now(UTC))  # type: ignore[attr-defined]
    return reply


def _plain(row: Any, columns: Sequence[str]) -> dict[str, Any]:
    """Columns as JSON values (times in RFC 3339) for a timeline record."""
    values = {c: getattr(row, c) for c in columns}
    return {c: v.isoformat() if isinstance(v, datetime) else v for c, v in values.items()}


_STARTED = (
    *("run_id", "tenant_id", "project_id", "agent_id", "goal", "plan", "actor_type", "actor_id"),
    *("origin_system_id", "source", "parent_run_id", "idempotency_key", "expected_latency_ms"),
    *("is_synthetic", "started_at"),
)
_ENDED = ("status", "error_code", "error_message", "risk_level", "risk_type", "completed_at", "duration_ms")
_RECORDED = (
    *("id", "trace_id", "provider", "model", "prompt_hash", "response_hash", "input_tokens"),
    *("output_tokens", "cost_cents", "execution_status", "source", "created_at"),
)


def _entry(entry_type: str, when: datetime | None, record: dict[str, Any]) -> fdr.TimelineEntry:
    entry = fdr.TimelineEntry(entry_type=entry_type, record=struct(record))
    if when is not None:
        entry.timestamp.FromDatetime(when)
    return entry


def timeline(run: Run, incidents: Sequence[Incident], record: LlmRunRecord | None) -> fdr.GetRunTimelineResponse:
    """PRE_RUN, then each incident, then OUTCOME: the record and how the run ended, or pending while LIVE."""
    entries = [_entry("PRE_RUN", run.started_at, _plain(run, _STARTED))]
    entries += [
        _entry("INCIDENT", i.created_at, json_format.MessageToDict(incident(i), preserving_proto_field_name=True))
        for i in incidents
    ]
    if run.state == "LIVE":
        entries.append(_entry("OUTCOME", None, {"status": "pending", "last_seen_at": run.last_seen_at.isoformat()}))
    else:
        outcome = _plain(run, _ENDED) | {"record": _plain(record, _RECORDED) if record else None}
        entries.append(_entry("OUTCOME", run.completed_at, outcome))
    return fdr.GetRunTimelineResponse(
        run_id=run.run_id, tenant_id=run.tenant_id, entries=entries, entry_count=len(entries)
    )
