"""Monitoring's rules with no I/O: a run's attribution (MONITORING.md 3.1, 0.14), its risk, latency and
evidence derived from the tenant's thresholds (3.3), and the incident a failed or aborted run gets (4)."""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
from typing import Any, NamedTuple

from services.common.errors import FailedPrecondition, InvalidArgument

STATUSES = ("running", "succeeded", "failed", "aborted")
FINAL_STATUSES = STATUSES[1:]
STATES = ("LIVE", "COMPLETED")
SOURCES = ("sdk", "human")
PROVIDER_TYPES = ("openai", "anthropic", "internal")
RISK_LEVELS = ("NORMAL", "NEAR_THRESHOLD", "AT_RISK", "VIOLATED")  # rising
RISK_TYPES = ("COST", "TOKENS", "TIME")  # also the tie order
LATENCY_BUCKETS = ("OK", "SLOW", "STALLED")
EVIDENCE = ("FLOWING", "DEGRADED", "MISSING")
ACTOR_TYPES = ("HUMAN", "SYSTEM", "SERVICE")
EXECUTION_STATUSES = ("SUCCEEDED", "FAILED", "ABORTED", "TIMEOUT")
# A heartbeat this soon after the run's last write changes nothing (it would only churn the row).
QUIET_SECONDS = 5.0


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """A tenant's thresholds; 0 disables a limit. `customized` names the values the tenant set."""

    run_budget_cents: int = 500
    run_tokens: int = 100_000
    run_time_ms: int = 600_000
    near_threshold_pct: int = 80
    expected_latency_ms: int = 30_000
    stalled_after_ms: int = 120_000
    customized: frozenset[str] = frozenset()

    @classmethod
    def of(cls, stored: dict[str, int | None]) -> Thresholds:
        """The defaults, overridden by the tenant's stored values (None keeps a default)."""
        chosen = {name: value for name, value in stored.items() if value is not None}
        return cls(**chosen, customized=frozenset(chosen))


THRESHOLDS = tuple(f.name for f in dataclasses.fields(Thresholds) if f.name != "customized")
# Dimension → (its threshold, unit).
DIMENSIONS = {"COST": ("run_budget_cents", "cents"), "TOKENS": ("run_tokens", "tokens"), "TIME": ("run_time_ms", "ms")}
_OUTCOMES = {"NORMAL": "OK", "NEAR_THRESHOLD": "NEAR_THRESHOLD", "AT_RISK": "BREACH"}


class Usage(NamedTuple):
    cost_cents: int
    tokens: int
    time_ms: int  # duration once COMPLETED, elapsed while LIVE


class Risk(NamedTuple):
    level: str
    risk_type: str
    violation: bool
    context: dict[str, Any]


def level(actual: int, limit: int, near_pct: int) -> str:
    if limit <= 0:
        return "NORMAL"
    if actual >= limit:
        return "AT_RISK"
    return "NEAR_THRESHOLD" if 100 * actual >= near_pct * limit else "NORMAL"


def risk(t: Thresholds, usage: Usage, failed: bool) -> Risk:
    """The worst dimension (ties COST, TOKENS, TIME); a failed run with a dimension AT_RISK is VIOLATED."""
    actuals = dict(zip(RISK_TYPES, usage, strict=True))
    levels = {
        dim: level(actuals[dim], getattr(t, field), t.near_threshold_pct) for dim, (field, _) in DIMENSIONS.items()
    }
    worst = max(RISK_TYPES, key=lambda dim: (RISK_LEVELS.index(levels[dim]), -RISK_TYPES.index(dim)))
    overall = "VIOLATED" if failed and "AT_RISK" in levels.values() else levels[worst]
    return Risk(overall, worst, overall == "VIOLATED", policy_context(t, worst, actuals[worst], levels[worst]))


def policy_context(t: Thresholds, dimension: str, actual: int, dimension_level: str) -> dict[str, Any]:
    """The legacy policy_context of one dimension, filled from its threshold."""
    field, unit = DIMENSIONS[dimension]
    limit, custom = getattr(t, field), field in t.customized
    return {
        "policy_id": "TENANT_THRESHOLD" if custom else "SYSTEM_DEFAULT",
        "policy_name": f"{field.replace('_', ' ')} threshold",
        "policy_scope": "TENANT",
        "limit_type": field.upper(),
        "threshold_value": limit or None,
        "threshold_unit": unit,
        "threshold_source": "TENANT" if custom else "SYSTEM_DEFAULT",
        "evaluation_outcome": _OUTCOMES[dimension_level] if limit else "ADVISORY",
        "actual_value": actual,
        "risk_type": dimension,
        "proximity_pct": round(100 * actual / limit, 2) if limit else None,
        "facade_ref": None,
        "threshold_ref": None,
        "violation_ref": None,
    }


def latency_bucket(t: Thresholds, expected_ms: int | None, elapsed_ms: int, silent_ms: int | None) -> str:
    """`silent_ms` (since the run was last seen) only while LIVE: a silent LIVE run is STALLED; otherwise a
    run over its expected latency (its own, else the tenant's) is SLOW."""
    if silent_ms is not None and t.stalled_after_ms and silent_ms > t.stalled_after_ms:
        return "STALLED"
    expected = expected_ms or t.expected_latency_ms
    return "SLOW" if expected and elapsed_ms > expected else "OK"


def evidence_health(live: bool, latency: str, hashes: int, traced: bool) -> str:
    """While LIVE: DEGRADED once STALLED. Once COMPLETED: FLOWING with a trace or both hashes, DEGRADED with
    one of them, else MISSING."""
    if live:
        return "DEGRADED" if latency == "STALLED" else "FLOWING"
    if traced or hashes >= 2:
        return "FLOWING"
    return "DEGRADED" if hashes == 1 else "MISSING"


def provider_type(provider: str) -> str:
    name = provider.strip().lower()
    if name in ("openai", "azure_openai"):
        return "openai"
    return "anthropic" if name == "anthropic" else "internal"


class Attribution(NamedTuple):
    actor_type: str
    actor_id: str | None
    origin_system_id: str


def attribution(actor_type: str, actor_id: str, origin_system_id: str, key_prefix: str) -> Attribution:
    """Both CreateRun shapes: with none of the three fields (aos-sdk 0.1.0) the run is SERVICE from
    "sdk:" + the key's prefix; with any of them, all must be consistent (names the first wrong field)."""
    if not (actor_type or actor_id or origin_system_id):
        return Attribution("SERVICE", None, f"sdk:{key_prefix}")
    if actor_type not in ACTOR_TYPES:
        raise InvalidArgument("actor_type", f"must be exactly one of {', '.join(ACTOR_TYPES)}, got {actor_type!r}")
    if not 1 <= len(origin_system_id) <= 255:
        raise InvalidArgument("origin_system_id", "is required (1..255 characters) with an actor_type")
    if (actor_type == "HUMAN") != bool(actor_id):
        raise InvalidArgument("actor_id", "is required for HUMAN and must be absent otherwise")
    if len(actor_id) > 255:
        raise InvalidArgument("actor_id", "must be at most 255 characters")
    return Attribution(actor_type, actor_id or None, origin_system_id)


# Incident codes in the order they are looked for in an error message: code → (severity, category).
CODES = {
    "AGENT_CRASH": ("CRITICAL", "EXECUTION_FAILURE"),
    "EXECUTION_TIMEOUT": ("HIGH", "EXECUTION_FAILURE"),
    "STEP_FAILURE": ("HIGH", "EXECUTION_FAILURE"),
    "SKILL_ERROR": ("HIGH", "EXECUTION_FAILURE"),
    "BUDGET_EXCEEDED": ("MEDIUM", "BUDGET_EXCEEDED"),
    "RATE_LIMIT_EXCEEDED": ("MEDIUM", "RATE_LIMIT"),
    "RESOURCE_EXHAUSTION": ("MEDIUM", "RESOURCE_EXHAUSTION"),
    "RETRY_EXHAUSTED": ("MEDIUM", "EXECUTION_FAILURE"),
    "UNKNOWN": ("MEDIUM", "EXECUTION_FAILURE"),
    "CANCELLED": ("LOW", "MANUAL"),
    "MANUAL_STOP": ("LOW", "MANUAL"),
}
SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW")
CATEGORIES = tuple(dict.fromkeys(category for _, category in CODES.values()))
CAUSE_TYPES = ("LLM_RUN", "SYSTEM", "HUMAN")
LIFECYCLE = ("ACTIVE", "ACKED", "RESOLVED")


def incident_code(status: str, error_code: str, error_message: str) -> str | None:
    """The code of the incident a completion creates (None for a success): a known error_code, else the
    first code found in the upper-cased message, else CANCELLED for an aborted run and UNKNOWN otherwise."""
    if status not in ("failed", "aborted"):
        return None
    if error_code.upper() in CODES:
        return error_code.upper()
    message = error_message.upper()
    found = next((code for code in CODES if code in message), None)
    return found or ("CANCELLED" if status == "aborted" else "UNKNOWN")


def incident_title(code: str, run_id: str) -> str:
    return f"{code.replace('_', ' ').title()}: Run {run_id[:8]}"


def new_incident_id() -> str:
    return f"inc_{secrets.token_hex(8)}"


def execution_status(status: str, code: str | None) -> str:
    if status == "failed":
        return "TIMEOUT" if code == "EXECUTION_TIMEOUT" else "FAILED"
    return "ABORTED" if status == "aborted" else "SUCCEEDED"


def acknowledges(state: str) -> bool:
    """Whether acknowledging moves an incident in `state` (ACKED: a no-op); a RESOLVED one cannot be."""
    if state == "RESOLVED":
        raise conflict("a resolved incident cannot be acknowledged", "INCIDENT_RESOLVED")
    return state == "ACTIVE"


def resolves(state: str) -> bool:
    """Whether resolving moves an incident in `state`; resolving a RESOLVED one is a no-op."""
    return state != "RESOLVED"


def conflict(message: str, reason: str, **metadata: str) -> FailedPrecondition:
    """A state conflict: FAILED_PRECONDITION for gRPC callers, 409 for REST ones (MONITORING.md section 2)."""
    error = FailedPrecondition(message, reason=reason, metadata=metadata)
    error.http_status = 409
    return error


# Signals (MONITORING.md section 5). A run's risk dimension names its risk signal; the other types are valid
# filters that nothing produces yet.
RISK_SIGNALS = {"COST": "cost_risk", "TOKENS": "token_risk", "TIME": "time_risk"}
EXECUTION_FAILURE = "execution_failure"
SIGNAL_TYPES = (*RISK_SIGNALS.values(), EXECUTION_FAILURE, "rate_risk", "policy_breach", "evidence_degraded")
SIGNAL_SEVERITIES = ("HIGH", "MEDIUM", "LOW")
# risk_level → the risk signal's severity (NORMAL yields none).
RISK_SEVERITY = {"VIOLATED": "HIGH", "AT_RISK": "MEDIUM", "NEAR_THRESHOLD": "LOW"}
# The run's incident severity → the execution_failure signal's.
FAILURE_SEVERITY = {"CRITICAL": "HIGH", "HIGH": "HIGH", "MEDIUM": "MEDIUM", "LOW": "LOW"}
SEVERITY_WEIGHT = {"HIGH": 3, "MEDIUM": 2, "LOW": 1}
# An acknowledged signal sinks below unacknowledged ones of the same severity, not below lower severities.
ACKNOWLEDGED_FACTOR = 0.6
FEEDBACK_STATES = ("ACKNOWLEDGED", "SUPPRESSED")
SUPPRESS_MINUTES = (15, 1440)


def fingerprint(tenant_id: str, run_id: str, signal_type: str) -> str:
    """Distinct per tenant, run and type (the legacy one collided across runs)."""
    return hashlib.sha256(f"v1|{tenant_id}|{run_id}|{signal_type}".encode()).hexdigest()[:32]


def signal_id(fingerprint_: str) -> str:
    return f"sig-{fingerprint_[:16]}"


def signals_of(risk_level: str, risk_type: str, incident_severity: str | None) -> dict[str, str]:
    """The signals a run yields: signal_type → severity."""
    found = {}
    if risk_level in RISK_SEVERITY:
        found[RISK_SIGNALS[risk_type]] = RISK_SEVERITY[risk_level]
    if incident_severity:
        found[EXECUTION_FAILURE] = FAILURE_SEVERITY[incident_severity]
    return found


def signal_rank(severity: str, acknowledged: bool) -> float:
    return SEVERITY_WEIGHT[severity] * (ACKNOWLEDGED_FACTOR if acknowledged else 1.0)


def signal_summary(signal_type: str, run_id: str, risk_level: str, incident_severity: str | None) -> str:
    if signal_type == EXECUTION_FAILURE:
        return f"Run {run_id[:8]} failed with a {incident_severity} incident"
    return f"Run {run_id[:8]} is {risk_level} on {signal_type.removesuffix('_risk')}"


def suppress_minutes(value: int) -> int:
    low, high = SUPPRESS_MINUTES
    if not low <= value <= high:
        raise InvalidArgument(
            "duration_minutes", f"must be {low}..{high} minutes, got {value}", reason="INVALID_DURATION"
        )
    return value
