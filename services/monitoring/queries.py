"""List requests → validated filters, order and page (MONITORING.md 0.3, section 2's list parameters). A bad
parameter is 400 INVALID_QUERY naming it, as_of is UNSUPPORTED_PARAM, both before any database access."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, asc, case, desc, false, func, literal_column, not_, or_, select
from sqlalchemy.sql.elements import ColumnElement

from services.common import paging, validation
from services.common.errors import InvalidArgument
from services.monitoring import policy
from services.monitoring.models import Incident, MonitoringThreshold, Run

MAX_OFFSET = 10_000
RUN_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
INCIDENT_ID = re.compile(r"inc_[0-9a-f]{16}")
_RISK_RANK = case({level: i for i, level in enumerate(policy.RISK_LEVELS)}, value=Run.risk_level)
_SEVERITY_RANK = case({s: i for i, s in enumerate(reversed(policy.SEVERITIES))}, value=Incident.severity)


def bad(field: str, description: str) -> InvalidArgument:
    return InvalidArgument(field, description, reason="INVALID_QUERY")


@dataclass(frozen=True)
class Listing:
    """Filters, then either a keyset order (newest first by (time, id): `keyset`) or an explicit one."""

    where: list[ColumnElement[bool]]
    page: paging.Page
    keyset: tuple[Any, Any] | None = None
    order: tuple[Any, ...] = ()

    def select(self, query: Select[Any]) -> Select[Any]:
        query = query.where(*self.where)
        if self.keyset is None:
            return query.order_by(*self.order).offset(self.page.offset).limit(self.page.size + 1)
        return self.page.apply(query, *self.keyset)

    def key(self, row: Any) -> tuple[datetime, str]:
        assert self.keyset is not None
        return getattr(row, self.keyset[0].key), getattr(row, self.keyset[1].key)


def _after(token: str, ids: re.Pattern[str]) -> tuple[datetime, str] | None:
    try:
        after = validation.decode_token(token)
    except InvalidArgument as exc:
        exc.reason = "INVALID_QUERY"
        raise
    if after and not ids.fullmatch(after[1]):
        raise bad("page_token", "unknown page token")
    return after


def refuse_as_of(request: Any) -> None:
    if request.HasField("as_of"):
        raise InvalidArgument("as_of", "point-in-time reads are not supported", reason="UNSUPPORTED_PARAM")


def offsets(request: Any, default: int, high: int) -> paging.Page:
    """Legacy limit/offset only (lists with no keyset: signals are computed, not rows)."""
    refuse_as_of(request)
    size = request.limit if request.HasField("limit") else default
    if not 1 <= size <= high:
        raise bad("limit", f"must be between 1 and {high}, got {size}")
    if not 0 <= request.offset <= MAX_OFFSET:
        raise bad("offset", f"must be between 0 and {MAX_OFFSET}, got {request.offset}")
    return paging.Page(size, request.offset, None, legacy=True)


def page(request: Any, default: int, high: int, ids: re.Pattern[str]) -> paging.Page:
    """Legacy limit/offset, or the twin's page_size/page_token (whose id must look like `ids`); never both."""
    refuse_as_of(request)
    legacy = request.HasField("limit") or bool(request.offset)
    if legacy and (request.page_token or request.page_size):
        raise bad("page_token", "cannot be combined with limit/offset")
    field, size = ("limit", request.limit) if request.HasField("limit") else ("page_size", request.page_size or default)
    if not 1 <= size <= high:
        raise bad(field, f"must be between 1 and {high}, got {size}")
    if not 0 <= request.offset <= MAX_OFFSET:
        raise bad("offset", f"must be between 0 and {MAX_OFFSET} (deeper pages use page_token), got {request.offset}")
    return paging.Page(size, request.offset, _after(request.page_token, ids), legacy)


def choices(field: str, values: Sequence[str], allowed: Sequence[str]) -> list[str]:
    for value in values:
        if value not in allowed:
            raise bad(field, f"must be one of {', '.join(allowed)}, got {value!r}")
    return list(dict.fromkeys(values))


def instant(field: str, value: str) -> datetime | None:
    """An RFC 3339 timestamp with its offset; one without is ambiguous and refused."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise bad(field, f"must be an RFC 3339 timestamp, got {value!r}") from None
    if parsed.tzinfo is None:
        raise bad(field, "must carry a UTC offset (e.g. Z or +02:00)")
    return parsed


def window(request: Any, prefix: str, column: Any) -> list[ColumnElement[bool]]:
    after = instant(f"{prefix}_after", getattr(request, f"{prefix}_after"))
    before = instant(f"{prefix}_before", getattr(request, f"{prefix}_before"))
    if after and before and after > before:
        raise bad(f"{prefix}_after", f"must not be after {prefix}_before")
    return ([column >= after] if after else []) + ([column <= before] if before else [])


def _in(column: Any, field: str, values: Sequence[str], allowed: Sequence[str]) -> list[ColumnElement[bool]]:
    chosen = choices(field, values, allowed)
    return [column.in_(chosen)] if chosen else []


def _sorted(request: Any, sorts: dict[str, Any], tie: Any, listing: Listing) -> Listing:
    """The default sort keeps the keyset; another sort (legacy offsets only) orders by it, then the tie id."""
    sort_by = request.sort_by or next(iter(sorts))
    (order,) = choices("sort_order", [request.sort_order or "desc"], ("desc", "asc"))
    choices("sort_by", [sort_by], tuple(sorts))
    if sort_by == next(iter(sorts)) and order == "desc":
        return listing
    if listing.page.after:
        raise bad("page_token", "pages by token only in the default order")
    direction = asc if order == "asc" else desc
    # Offsets only: no token follows a page in this order.
    offsets = dataclasses.replace(listing.page, legacy=True)
    return Listing(listing.where, offsets, None, (direction(sorts[sort_by]), direction(tie)))


def stalled() -> ColumnElement[bool]:
    """A LIVE run silent past its tenant's stall threshold (0 disables it), in SQL: evidence is derived while
    LIVE, and filtering it needs no read of the thresholds first."""
    custom = select(MonitoringThreshold.stalled_after_ms).where(MonitoringThreshold.tenant_id == Run.tenant_id)
    limit = func.coalesce(custom.scalar_subquery(), policy.Thresholds().stalled_after_ms)
    return and_(limit > 0, Run.last_seen_at < func.now() - limit * literal_column("interval '1 millisecond'"))


def live(request: Any) -> Listing:
    # DEGRADED once silent past the stall threshold, FLOWING before; never MISSING while LIVE.
    evidence = {"FLOWING": not_(stalled()), "DEGRADED": stalled(), "MISSING": false()}
    health = choices("evidence_health", request.evidence_health, policy.EVIDENCE)
    where = [Run.state == "LIVE", *([Run.project_id == request.project_id] if request.project_id else [])]
    where += _in(Run.risk_level, "risk_level", request.risk_level, policy.RISK_LEVELS)
    where += _in(Run.source, "source", request.source, policy.SOURCES)
    where += _in(Run.provider_type, "provider_type", request.provider_type, policy.PROVIDER_TYPES)
    if health:
        where.append(or_(*(evidence[h] for h in health)))
    return Listing(where, page(request, 50, 200, RUN_ID), (Run.started_at, Run.run_id))


def completed(request: Any) -> Listing:
    where = [Run.state == "COMPLETED", *([Run.project_id == request.project_id] if request.project_id else [])]
    where += _in(Run.status, "status", request.status, policy.FINAL_STATUSES)
    where += _in(Run.risk_level, "risk_level", request.risk_level, policy.RISK_LEVELS)
    where += window(request, "completed", Run.completed_at)
    sorts = {
        "completed_at": Run.completed_at,
        "started_at": Run.started_at,
        "duration_ms": Run.duration_ms,
        "risk_level": _RISK_RANK,
    }
    listing = Listing(where, page(request, 50, 200, RUN_ID), (Run.completed_at, Run.run_id))
    return _sorted(request, sorts, Run.run_id, listing)


def _incidents(request: Any, where: list[ColumnElement[bool]]) -> list[ColumnElement[bool]]:
    where += _in(Incident.severity, "severity", request.severity, policy.SEVERITIES)
    where += _in(Incident.category, "category", request.category, policy.CATEGORIES)
    where += _in(Incident.cause_type, "cause_type", request.cause_type, policy.CAUSE_TYPES)
    if request.HasField("is_synthetic"):
        where.append(Incident.is_synthetic.is_(request.is_synthetic))
    return where


def active_incidents(request: Any) -> Listing:
    where = _incidents(request, [Incident.lifecycle_state != "RESOLVED"])
    where += window(request, "created", Incident.created_at)
    listing = Listing(where, page(request, 20, 100, INCIDENT_ID), (Incident.created_at, Incident.incident_id))
    sorts = {"created_at": Incident.created_at, "severity": _SEVERITY_RANK}
    return _sorted(request, sorts, Incident.incident_id, listing)


def resolved_incidents(request: Any) -> Listing:
    where = _incidents(request, [Incident.lifecycle_state == "RESOLVED"])
    where += window(request, "resolved", Incident.resolved_at)
    listing = Listing(where, page(request, 20, 100, INCIDENT_ID), (Incident.resolved_at, Incident.incident_id))
    sorts = {"resolved_at": Incident.resolved_at, "created_at": Incident.created_at, "severity": _SEVERITY_RANK}
    return _sorted(request, sorts, Incident.incident_id, listing)


def historical_incidents(request: Any) -> Listing:
    """RESOLVED longer ago than retention_days (7..365, default 30), most recently resolved first."""
    days = request.retention_days if request.HasField("retention_days") else 30
    if not 7 <= days <= 365:
        raise bad("retention_days", f"must be between 7 and 365, got {days}")
    cutoff = Incident.resolved_at < func.now() - days * literal_column("interval '1 day'")
    where = _incidents(request, [Incident.lifecycle_state == "RESOLVED", cutoff])
    listing = Listing(where, page(request, 20, 100, INCIDENT_ID), (Incident.resolved_at, Incident.incident_id))
    sorts = {"resolved_at": Incident.resolved_at, "created_at": Incident.created_at, "severity": _SEVERITY_RANK}
    return _sorted(request, sorts, Incident.incident_id, listing)


def window_days(request: Any) -> int:
    days: int = request.window_days if request.HasField("window_days") else 30
    if not 1 <= days <= 90:
        raise bad("window_days", f"must be between 1 and 90, got {days}")
    return days


def _founder_page(request: Any, ids: re.Pattern[str]) -> paging.Page:
    """Keyset pages only: an offset into every tenant's rows would scan them all."""
    size = request.page_size if request.HasField("page_size") else 50
    if not 1 <= size <= 200:
        raise bad("page_size", f"must be between 1 and 200, got {size}")
    return paging.Page(size, 0, _after(request.page_token, ids))


def _one(column: Any, request: Any, field: str, allowed: Sequence[str]) -> list[ColumnElement[bool]]:
    return [column == choices(field, [getattr(request, field)], allowed)[0]] if request.HasField(field) else []


def _tenant(column: Any, request: Any) -> list[ColumnElement[bool]]:
    if not request.HasField("tenant_id"):
        return []
    if not 1 <= len(request.tenant_id) <= 64:
        raise bad("tenant_id", "must be 1..64 characters")
    return [column == request.tenant_id]


def all_runs(request: Any) -> Listing:
    where = _tenant(Run.tenant_id, request) + _one(Run.state, request, "state", policy.STATES)
    where += _one(Run.risk_level, request, "risk_level", policy.RISK_LEVELS)
    return Listing(where, _founder_page(request, RUN_ID), (Run.started_at, Run.run_id))


def all_incidents(request: Any) -> Listing:
    where = _tenant(Incident.tenant_id, request)
    where += _one(Incident.lifecycle_state, request, "lifecycle_state", policy.LIFECYCLE)
    where += _one(Incident.severity, request, "severity", policy.SEVERITIES)
    return Listing(where, _founder_page(request, INCIDENT_ID), (Incident.created_at, Incident.incident_id))


@dataclass(frozen=True)
class Signals:
    project_id: str | None
    signal_types: list[str]
    severities: list[str]
    window_hours: int
    page: paging.Page


def signals(request: Any) -> Signals:
    hours = request.window_hours if request.HasField("window_hours") else 168
    if not 1 <= hours <= 720:
        raise bad("window_hours", f"must be between 1 and 720, got {hours}")
    return Signals(
        project_id=request.project_id or None,
        signal_types=choices("signal_type", request.signal_type, policy.SIGNAL_TYPES),
        severities=choices("severity", request.severity, policy.SIGNAL_SEVERITIES),
        window_hours=hours,
        page=offsets(request, 50, 100),
    )
