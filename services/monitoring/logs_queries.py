"""The logs' and traces' list requests → validated filters and pages (MONITORING.md 0.3 and section 2's list
parameters), with the same rules as queries.py: INVALID_QUERY naming the parameter, as_of refused, both
before any database access."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.sql.elements import ColumnElement

from aos.monitoring.v1 import logs_service_pb2 as rpc
from services.common import paging
from services.monitoring import policy, queries, querystring, traces
from services.monitoring.models import LlmRunRecord, Trace
from services.monitoring.queries import Listing, bad, choices, instant, window

TOPICS = ("llm_runs", "system_records")


def _equal(request: Any, names: tuple[str, ...], high: int = 128) -> dict[str, Any]:
    """The string filters the request sets, bounded and free of NUL (which no stored value holds, and which
    PostgreSQL would refuse with a 500)."""
    chosen = {name: getattr(request, name) for name in names if request.HasField(name)}
    for name, value in chosen.items():
        if isinstance(value, str) and (len(value) > high or "\x00" in value):
            raise bad(name, f"must be at most {high} characters without NUL")
    return chosen


def records(request: Any) -> tuple[Listing, dict[str, Any]]:
    """ListLlmRunRecords' listing and the filters it applied (by parameter name, for `filters_applied`)."""
    page = queries.page(request, 50, 100, queries.RUN_ID)
    applied: dict[str, Any] = {}
    where: list[ColumnElement[bool]] = []
    if request.HasField("run_id"):
        try:
            run_id = str(uuid.UUID(request.run_id))
        except ValueError:
            raise bad("run_id", f"must be a run id (a UUID), got {request.run_id!r}") from None
        where.append(LlmRunRecord.run_id == run_id)
        applied["run_id"] = run_id
    for name, value in _equal(request, ("provider", "model")).items():
        where.append(getattr(LlmRunRecord, name) == value)
        applied[name] = value
    statuses = choices("execution_status", request.execution_status, policy.EXECUTION_STATUSES)
    if statuses:
        where.append(LlmRunRecord.execution_status.in_(statuses))
        applied["execution_status"] = statuses
    if request.HasField("is_synthetic"):
        where.append(LlmRunRecord.is_synthetic.is_(request.is_synthetic))
        applied["is_synthetic"] = request.is_synthetic
    where += window(request, "created", LlmRunRecord.created_at)
    applied |= {name: getattr(request, name) for name in ("created_after", "created_before") if request.HasField(name)}
    return Listing(where, page, (LlmRunRecord.created_at, LlmRunRecord.id)), applied


def trace_list(request: Any) -> Listing:
    chosen = _equal(request, ("agent_id", "status", "root_hash", "plan_hash", "seed"))
    where = [getattr(Trace, name) == value for name, value in chosen.items()]
    start, end = instant("from_date", request.from_date), instant("to_date", request.to_date)
    if start and end and start > end:
        raise bad("from_date", "must not be after to_date")
    where += ([Trace.created_at >= start] if start else []) + ([Trace.created_at <= end] if end else [])
    return Listing(where, queries.page(request, 100, 1000, traces.TRACE_ID), (Trace.created_at, Trace.trace_id))


def facade(raw_query: str) -> tuple[str, Listing]:
    """The logs facade's topic (required, once) and its legacy limit/offset page; nothing else is taken."""
    params = querystring.parse(raw_query)
    topic = querystring.topic(params, TOPICS)
    request = querystring.message(params, rpc.LogsTopicQuery)
    size = request.limit if request.HasField("limit") else 20
    if not 1 <= size <= 100:
        raise bad("limit", f"must be between 1 and 100, got {size}")
    if not 0 <= request.offset <= queries.MAX_OFFSET:
        raise bad("offset", f"must be between 0 and {queries.MAX_OFFSET}, got {request.offset}")
    page = paging.Page(size, request.offset, None, legacy=True)
    return topic, Listing([], page, (LlmRunRecord.created_at, LlmRunRecord.id))
