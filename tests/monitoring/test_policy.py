"""The pure rules of services/monitoring/policy.py and redaction.py (MONITORING.md 3.1, 3.3, 4, 6.3)."""

import pytest

from services.common.errors import FailedPrecondition, InvalidArgument
from services.monitoring import policy, redaction
from services.monitoring.policy import Thresholds, Usage

DEFAULTS = Thresholds()


@pytest.mark.parametrize(
    ("usage", "failed", "level", "risk_type"),
    [
        (Usage(0, 0, 0), False, "NORMAL", "COST"),
        (Usage(399, 0, 0), False, "NORMAL", "COST"),
        (Usage(400, 0, 0), False, "NEAR_THRESHOLD", "COST"),  # M17: 400 of 500 at 80 %
        (Usage(500, 0, 0), False, "AT_RISK", "COST"),
        (Usage(600, 0, 0), True, "VIOLATED", "COST"),  # a failed run with a dimension at risk
        (Usage(600, 0, 0), False, "AT_RISK", "COST"),
        (Usage(0, 100_000, 0), False, "AT_RISK", "TOKENS"),
        (Usage(0, 80_000, 600_000), False, "AT_RISK", "TIME"),
        (Usage(400, 80_000, 0), False, "NEAR_THRESHOLD", "COST"),  # ties go COST, TOKENS, TIME
        (Usage(0, 80_000, 480_000), False, "NEAR_THRESHOLD", "TOKENS"),
        (Usage(0, 0, 0), True, "NORMAL", "COST"),  # failed but nothing at risk
    ],
)
def test_risk_is_the_worst_dimension(usage: Usage, failed: bool, level: str, risk_type: str) -> None:
    risk = policy.risk(DEFAULTS, usage, failed)
    assert (risk.level, risk.risk_type, risk.violation) == (level, risk_type, level == "VIOLATED")


def test_the_policy_context_comes_from_the_riskiest_dimensions_threshold() -> None:
    context = policy.risk(DEFAULTS, Usage(450, 10, 10), False).context
    assert context["policy_id"] == "SYSTEM_DEFAULT" and context["threshold_value"] == 500
    assert (context["evaluation_outcome"], context["actual_value"], context["proximity_pct"]) == (
        "NEAR_THRESHOLD",
        450,
        90.0,
    )
    assert context["violation_ref"] is None and context["risk_type"] == "COST"
    custom = Thresholds.of({"run_budget_cents": 0, "run_tokens": None})
    unlimited = policy.risk(custom, Usage(10_000, 0, 0), False).context
    assert unlimited["policy_id"] == "TENANT_THRESHOLD" and unlimited["evaluation_outcome"] == "ADVISORY"
    assert unlimited["proximity_pct"] is None and custom.customized == {"run_budget_cents"}


def test_zero_disables_a_limit() -> None:
    t = Thresholds(run_budget_cents=0, run_tokens=0, run_time_ms=0)
    assert policy.risk(t, Usage(10**6, 10**6, 10**9), True).level == "NORMAL"


@pytest.mark.parametrize(
    ("expected", "elapsed", "silent", "bucket"),
    [
        (None, 30_000, None, "OK"),
        (None, 45_000, None, "SLOW"),  # M17: 45 s against the default 30 s
        (60_000, 45_000, None, "OK"),  # the run's own expectation wins
        (None, 1_000, 121_000, "STALLED"),  # M17: LIVE and silent for 121 s
        (None, 1_000, 120_000, "OK"),
        (None, 45_000, 10, "SLOW"),
    ],
)
def test_latency_bucket(expected: int | None, elapsed: int, silent: int | None, bucket: str) -> None:
    assert policy.latency_bucket(DEFAULTS, expected, elapsed, silent) == bucket


def test_evidence_health() -> None:
    assert policy.evidence_health(True, "STALLED", 0, False) == "DEGRADED"
    assert policy.evidence_health(True, "SLOW", 0, False) == "FLOWING"
    assert [policy.evidence_health(False, "OK", n, False) for n in (0, 1, 2)] == ["MISSING", "DEGRADED", "FLOWING"]
    assert policy.evidence_health(False, "OK", 0, True) == "FLOWING"


def test_provider_type() -> None:
    assert [policy.provider_type(p) for p in ("openai", "Azure_OpenAI", "anthropic", "mistral", "")] == [
        "openai",
        "openai",
        "anthropic",
        "internal",
        "internal",
    ]


@pytest.mark.parametrize(
    ("status", "code", "message", "expected"),
    [
        ("succeeded", "", "", None),
        ("failed", "", "EXECUTION_TIMEOUT after 30s", "EXECUTION_TIMEOUT"),  # M12
        ("failed", "", "something broke", "UNKNOWN"),  # M13
        ("aborted", "", "", "CANCELLED"),  # M13
        ("failed", "budget_exceeded", "AGENT_CRASH", "BUDGET_EXCEEDED"),  # a known error_code wins
        ("failed", "NOT_A_CODE", "agent_crash then skill_error", "AGENT_CRASH"),  # the first in table order
        ("aborted", "", "manual_stop by user", "MANUAL_STOP"),
    ],
)
def test_incident_code(status: str, code: str, message: str, expected: str | None) -> None:
    assert policy.incident_code(status, code, message) == expected


def test_incident_class_title_and_execution_status() -> None:
    assert policy.CODES["EXECUTION_TIMEOUT"] == ("HIGH", "EXECUTION_FAILURE")
    assert policy.CODES["AGENT_CRASH"] == ("CRITICAL", "EXECUTION_FAILURE")
    assert policy.CODES["CANCELLED"] == ("LOW", "MANUAL")
    assert policy.incident_title("EXECUTION_TIMEOUT", "1a2b3c4d-0000") == "Execution Timeout: Run 1a2b3c4d"
    assert policy.execution_status("failed", "EXECUTION_TIMEOUT") == "TIMEOUT"
    assert [policy.execution_status(s, None) for s in ("succeeded", "failed", "aborted")] == [
        "SUCCEEDED",
        "FAILED",
        "ABORTED",
    ]
    assert policy.new_incident_id().startswith("inc_") and len(policy.new_incident_id()) == 20


def test_incident_moves() -> None:
    assert policy.acknowledges("ACTIVE") is True and policy.acknowledges("ACKED") is False
    with pytest.raises(FailedPrecondition) as refused:
        policy.acknowledges("RESOLVED")
    assert refused.value.http_status == 409
    assert policy.resolves("ACTIVE") and policy.resolves("ACKED") and not policy.resolves("RESOLVED")


def test_attribution_without_fields_is_the_sdk_key() -> None:  # decision 14, aos-sdk 0.1.0
    assert policy.attribution("", "", "", "aos_0123abcd") == ("SERVICE", None, "sdk:aos_0123abcd")
    assert policy.attribution("HUMAN", "u-1", "console", "x") == ("HUMAN", "u-1", "console")
    assert policy.attribution("SYSTEM", "", "cron", "x") == ("SYSTEM", None, "cron")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        (("HUMAN", "", "console"), "actor_id"),  # M10: HUMAN without actor_id
        (("SYSTEM", "u-1", "cron"), "actor_id"),  # SYSTEM with one
        (("human", "u-1", "console"), "actor_type"),  # exactly, not case-folded
        (("SERVICE", "", ""), "origin_system_id"),
        (("", "u-1", ""), "actor_type"),
        (("SERVICE", "", "x" * 256), "origin_system_id"),
    ],
)
def test_attribution_refusals_name_the_field(fields: tuple[str, str, str], field: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        policy.attribution(*fields, "aos_0123abcd")
    assert refused.value.violations[0][0] == field


def test_redaction_markers() -> None:  # 6.3
    card = "4111 1111 1111 1111"
    text = f"mail bob@example.com key aos_{'a' * 30} sk-{'b' * 20} AKIA{'C' * 16} Bearer {'d' * 20} card {card}"
    redacted = redaction.text(text)
    for marker in ("[REDACTED_EMAIL]", "[REDACTED_SECRET]", "[REDACTED_CARD]"):
        assert marker in redacted
    assert "bob@" not in redacted and card not in redacted and "AKIA" not in redacted
    assert redaction.text("order 4111 1111 1111 1112") == "order 4111 1111 1111 1112"  # fails Luhn: not a card
    nested = redaction.value({"params": [{"Password": "hunter2", "note": "x@y.io"}], "n": 3, "token": {"a": 1}})
    assert nested == {"params": [{"Password": "[REDACTED]", "note": "[REDACTED_EMAIL]"}], "n": 3, "token": "[REDACTED]"}
