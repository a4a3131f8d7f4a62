"""Requests → validated values (MONITORING.md 3.1, 3.2, 7): every bad field is INVALID_ARGUMENT naming it,
before any database access; free text is redacted here, so nothing unredacted reaches a row."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, date, datetime
from typing import Any, NamedTuple

from google.protobuf import json_format

from aos.monitoring.v1 import monitoring_pb2 as pb
from aos.monitoring.v1 import monitoring_service_pb2 as rpc
from services.common import validation
from services.common.errors import InvalidArgument, NotFound
from services.common.principal import Kind, Principal
from services.monitoring import policy, queries, redaction

HASH = re.compile(r"[0-9a-f]{64}")
MAX_PLAN = 64 * 1024
MAX_METADATA = 8 * 1024
MAX_BATCH = 100


def run_id(value: str) -> str:
    """A run id as stored (a UUID); anything else is an unknown run, never a 500 from the database."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise NotFound("run not found", reason="RUN_NOT_FOUND") from None


def incident_id(value: str) -> str:
    if not queries.INCIDENT_ID.fullmatch(value):
        raise NotFound("incident not found", reason="INCIDENT_NOT_FOUND")
    return value


def _optional(field: str, value: str, high: int) -> str | None:
    return validation.length(field, value, 0, high) or None


def _count(field: str, value: int) -> int:
    if value < 0:
        raise InvalidArgument(field, f"must be an integer >= 0, got {value}")
    return value


def _json(field: str, message: Any, high: int) -> Any:
    data = json_format.MessageToDict(message)
    encoded = json.dumps(data)
    if len(encoded) > high:
        raise InvalidArgument(field, f"must be at most {high} bytes of JSON")
    if "\\u0000" in encoded:  # jsonb cannot hold NUL: the caller's error, not a 500 from the database
        raise InvalidArgument(field, "must not contain NUL characters")
    return redaction.value(data)


def new_run(request: rpc.CreateRunRequest, who: Principal, key_prefix: str) -> dict[str, Any]:
    """The column values of a new LIVE run (both CreateRun shapes)."""
    who_by = policy.attribution(request.actor_type, request.actor_id, request.origin_system_id, key_prefix)
    expected = request.expected_latency_ms if request.HasField("expected_latency_ms") else None
    if expected is not None:
        validation.between("expected_latency_ms", expected, 1, 2**31 - 1)
    now = datetime.now(UTC)
    return {
        "run_id": str(uuid.uuid4()),
        "tenant_id": who.tenant(),
        "project_id": _optional("project_id", request.project_id, 64),
        "agent_id": validation.length("agent_id", request.agent_id, 1, 100),
        "goal": redaction.text(validation.length("goal", request.goal, 1, 4000)),
        "plan": _json("plan", request.plan, MAX_PLAN) if request.HasField("plan") else None,
        "idempotency_key": _optional("idempotency_key", request.idempotency_key, 100),
        "parent_run_id": run_id(request.parent_run_id) if request.parent_run_id else None,
        "expected_latency_ms": expected,
        "is_synthetic": request.is_synthetic,
        "actor_type": who_by.actor_type,
        "actor_id": who_by.actor_id,
        "origin_system_id": who_by.origin_system_id,
        "source": "human" if who.kind is Kind.HUMAN else "sdk",
        "status": "running",
        "state": "LIVE",
        "provider_type": "internal",
        "started_at": now,
        "last_seen_at": now,
    }


class Totals(NamedTuple):
    input_tokens: int
    output_tokens: int
    cost_cents: int


def totals(request: rpc.HeartbeatRunRequest | rpc.CompleteRunRequest) -> Totals:
    return Totals(*(_count(f, getattr(request, f)) for f in Totals._fields))


class Completion(NamedTuple):
    status: str
    error_code: str
    error_message: str
    totals: Totals
    duration_ms: int | None
    provider: str | None
    model: str | None
    prompt_hash: str | None
    response_hash: str | None
    trace_id: str | None


def _hash(field: str, value: str) -> str | None:
    if value and not HASH.fullmatch(value):
        raise InvalidArgument(field, "must be a SHA-256 digest in lower-case hex (64 characters)")
    return value or None


def completion(request: rpc.CompleteRunRequest) -> Completion:
    duration = request.duration_ms if request.HasField("duration_ms") else None
    return Completion(
        status=validation.one_of("status", request.status, policy.FINAL_STATUSES),
        error_code=validation.length("error_code", request.error_code, 0, 50),
        error_message=redaction.text(validation.length("error_message", request.error_message, 0, 2000)),
        totals=totals(request),
        duration_ms=None if duration is None else _count("duration_ms", duration),
        provider=_optional("provider", request.provider, 50),
        model=_optional("model", request.model, 100),
        prompt_hash=_hash("prompt_hash", request.prompt_hash),
        response_hash=_hash("response_hash", request.response_hash),
        trace_id=_optional("trace_id", request.trace_id, 100),
    )


def usage(record: pb.UsageRecordInput, at: str, integration: str) -> dict[str, Any]:
    """One usage record's values; `at` prefixes field names ("records[2]." in a batch). `integration` is
    the one the caller's credential names ("" for an X-AOS-Key), which the record may repeat but not change."""
    try:
        return _usage(record, integration)
    except InvalidArgument as exc:
        # The prefix is added only to the one refusal: a batch validates up to 100 records, and naming every
        # field of every record up front was a tenth of ingest's CPU.
        ((field, description),) = exc.violations
        raise InvalidArgument(f"{at}{field}", description) from None


def _usage(record: pb.UsageRecordInput, integration: str) -> dict[str, Any]:
    call_id = record.call_id  # verbatim: not trimmed
    if not 1 <= len(call_id) <= 100 or "\x00" in call_id:
        raise InvalidArgument("call_id", f"must be 1..100 characters, got {len(call_id)}")
    return {
        "call_id": call_id,
        "integration_id": validation.length("integration_id", record.integration_id or integration, 1, 64),
        "provider": validation.length("provider", record.provider, 1, 50),
        "model": validation.length("model", record.model, 1, 100),
        "tokens_in": _count("tokens_in", record.tokens_in),
        "tokens_out": _count("tokens_out", record.tokens_out),
        "cost_cents": _count("cost_cents", record.cost_cents),
        "policy_result": validation.one_of(
            "policy_result", record.policy_result or "allowed", ("allowed", "warned", "blocked")
        ),
        "metadata": _json("metadata", record.metadata, MAX_METADATA) if record.HasField("metadata") else {},
        "latency_ms": _count("latency_ms", record.latency_ms) if record.HasField("latency_ms") else None,
        "session_id": _optional("session_id", record.session_id, 100),
        "agent_id": _optional("agent_id", record.agent_id, 100),
        "error_code": _optional("error_code", record.error_code, 50),
        # Empty (the common case) needs no redaction pass.
        "error_message": (redaction.text(validation.length("error_message", record.error_message, 0, 2000)) or None)
        if record.error_message
        else None,
    }


def batch(request: rpc.IngestUsageBatchRequest, integration: str) -> list[dict[str, Any]]:
    """Every record validated before anything is written: one bad field fails the batch."""
    if not 1 <= len(request.records) <= MAX_BATCH:
        raise InvalidArgument("records", f"must hold 1..{MAX_BATCH} records, got {len(request.records)}")
    return [usage(record, f"records[{i}].", integration) for i, record in enumerate(request.records)]


def threshold_changes(request: Any) -> dict[str, int]:
    changes = {name: getattr(request, name) for name in policy.THRESHOLDS if request.HasField(name)}
    for name, value in changes.items():
        validation.between(name, value, 1 if name == "near_threshold_pct" else 0, 100 if "pct" in name else 2**31 - 1)
    return changes


def period(request: rpc.GetIntegrationUsageRequest) -> tuple[str, str, date, date]:
    tenant_id = validation.length("tenant_id", request.tenant_id, 1, 64)
    integration_id = validation.length("integration_id", request.integration_id, 1, 64)
    start, end = (request.period_start.ToDatetime(UTC).date(), request.period_end.ToDatetime(UTC).date())
    if not request.HasField("period_end"):
        end = datetime.now(UTC).date()
    if start > end:
        raise InvalidArgument("period_start", "must not be after period_end")
    return tenant_id, integration_id, start, end


class SignalTarget(NamedTuple):
    """The signal a feedback request names, validated before any database access."""

    fingerprint: str
    run_id: str
    signal_type: str
    risk_type: str | None


def signal_target(request: rpc.AcknowledgeSignalRequest | rpc.SuppressSignalRequest, tenant_id: str) -> SignalTarget:
    """The body names the signal; the path's fingerprint must be that signal's in the caller's tenant, so
    another tenant's (or a made-up) fingerprint is simply not found."""
    signal_type = validation.one_of("signal_type", request.signal_type, policy.SIGNAL_TYPES)
    risk_type = validation.one_of("risk_type", request.risk_type, ("", *policy.RISK_TYPES)) or None
    risky = {v: k for k, v in policy.RISK_SIGNALS.items()}
    if risk_type and signal_type in risky and risky[signal_type] != risk_type:
        raise InvalidArgument("risk_type", f"must match signal_type {signal_type} ({risky[signal_type]})")
    run = run_id(request.run_id)
    if request.signal_fingerprint != policy.fingerprint(tenant_id, run, signal_type):
        raise NotFound("signal not found", reason="SIGNAL_NOT_FOUND")
    return SignalTarget(request.signal_fingerprint, run, signal_type, risk_type)


def note(field: str, value: str) -> str | None:
    """A comment or reason: at most 500 characters, stored redacted."""
    return redaction.text(validation.length(field, value, 0, 500)) or None
