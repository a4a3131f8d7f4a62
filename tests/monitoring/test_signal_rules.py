"""The pure signal rules of policy.py (MONITORING.md section 5) and the facades' query parsing of
querystring.py (0.3; M18, M22-M24): what the SQL mirrors and what is refused before any database access."""

import hashlib

import pytest

from aos.monitoring.v1 import monitoring_service_pb2 as rpc
from services.common.errors import InvalidArgument
from services.monitoring import policy, querystring

RUN = "1a2b3c4d-0000-4000-8000-000000000001"


def test_fingerprints_differ_per_tenant_run_and_type() -> None:
    """M22: the legacy fingerprint collided across runs; this one is SHA-256 of v1|tenant|run|type, cut to 32."""
    expected = hashlib.sha256(f"v1|t-a|{RUN}|cost_risk".encode()).hexdigest()[:32]
    assert policy.fingerprint("t-a", RUN, "cost_risk") == expected
    others = {
        policy.fingerprint("t-b", RUN, "cost_risk"),
        policy.fingerprint("t-a", RUN.replace("1a2b", "9f9f"), "cost_risk"),
        policy.fingerprint("t-a", RUN, "execution_failure"),
    }
    assert expected not in others and len(others) == 3
    assert policy.signal_id(expected) == f"sig-{expected[:16]}"


@pytest.mark.parametrize(
    ("risk_level", "risk_type", "incident_severity", "signals"),
    [
        ("NORMAL", "COST", None, {}),
        ("NEAR_THRESHOLD", "COST", None, {"cost_risk": "LOW"}),
        ("AT_RISK", "TOKENS", None, {"token_risk": "MEDIUM"}),
        ("VIOLATED", "TIME", None, {"time_risk": "HIGH"}),
        ("NORMAL", "COST", "CRITICAL", {"execution_failure": "HIGH"}),
        ("NORMAL", "COST", "HIGH", {"execution_failure": "HIGH"}),
        ("NORMAL", "COST", "MEDIUM", {"execution_failure": "MEDIUM"}),
        ("AT_RISK", "COST", "LOW", {"cost_risk": "MEDIUM", "execution_failure": "LOW"}),
    ],
)
def test_a_run_yields_a_risk_signal_and_a_failure_signal(
    risk_level: str, risk_type: str, incident_severity: str | None, signals: dict[str, str]
) -> None:
    assert policy.signals_of(risk_level, risk_type, incident_severity) == signals


def test_rank_puts_acknowledged_signals_below_their_severity_only() -> None:
    ranks = {(s, a): policy.signal_rank(s, a) for s in policy.SIGNAL_SEVERITIES for a in (False, True)}
    assert ranks[("HIGH", False)] == 3 and ranks[("HIGH", True)] == pytest.approx(1.8)
    # An acknowledged HIGH still outranks an unacknowledged LOW, and sinks below an unacknowledged MEDIUM.
    assert ranks[("MEDIUM", False)] > ranks[("HIGH", True)] > ranks[("MEDIUM", True)] > ranks[("LOW", False)]


@pytest.mark.parametrize("minutes", [0, 14, 1441, -60])
def test_suppression_outside_15_to_1440_minutes_is_an_invalid_duration(minutes: int) -> None:
    """M23: minutes (the legacy crashed mixing hours and minutes)."""
    with pytest.raises(InvalidArgument) as refused:
        policy.suppress_minutes(minutes)
    assert (refused.value.reason, refused.value.violations[0][0]) == ("INVALID_DURATION", "duration_minutes")
    assert policy.suppress_minutes(15) == 15 and policy.suppress_minutes(1440) == 1440


def _refused(raw: str, topics: tuple[str, ...] = ("live", "completed")) -> tuple[str, str]:
    with pytest.raises(InvalidArgument) as refused:
        params = querystring.parse(raw)
        querystring.topic(params, topics)
        querystring.message(params, rpc.ListCompletedRunsRequest)
    return refused.value.reason, refused.value.violations[0][0]


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ("", "topic"),  # M18: no topic
        ("limit=5", "topic"),
        ("topic=foo", "topic"),
        ("topic=live&topic=completed", "topic"),  # once
        ("topic=completed&foo=1", "foo"),  # unknown
        ("topic=completed&page_token=abc", "page_token"),  # the facade pages by limit/offset only
        ("topic=completed&limit=1&limit=2", "limit"),  # once-only parameter repeated
        ("topic=completed&limit=ten", "limit"),
        ("topic=completed&limit=1_0", "limit"),
        ("topic=completed&offset=99999999999", "offset"),  # beyond int32
        ("topic=completed&pagination=1", "pagination"),
    ],
)
def test_facade_queries_name_what_is_wrong(raw: str, named: str) -> None:
    assert _refused(raw) == ("INVALID_QUERY", named)


def test_as_of_is_unsupported_before_anything_else() -> None:
    assert _refused("as_of=2026-01-01T00:00:00Z") == ("UNSUPPORTED_PARAM", "as_of")
    assert _refused("topic=completed&as_of=") == ("UNSUPPORTED_PARAM", "as_of")


def test_a_facade_query_becomes_the_topics_own_request() -> None:
    params = querystring.parse("topic=completed&status=failed&status=aborted&limit=2&sort_by=duration_ms&x=%20")
    assert querystring.topic(params, ("live", "completed")) == "completed"
    params.pop("x")
    request = querystring.message(params, rpc.ListCompletedRunsRequest)
    assert list(request.status) == ["failed", "aborted"]
    assert (request.limit, request.sort_by, request.HasField("offset")) == (2, "duration_ms", False)
    plus = querystring.parse("project_id=a+b%2Bc")
    assert querystring.message(plus, rpc.ListLiveRunsRequest).project_id == "a b+c"  # form encoding


def test_summaries_say_what_the_signal_is_about() -> None:
    assert policy.signal_summary("token_risk", RUN, "AT_RISK", None) == "Run 1a2b3c4d is AT_RISK on token"
    assert (
        policy.signal_summary("execution_failure", RUN, "NORMAL", "HIGH") == "Run 1a2b3c4d failed with a HIGH incident"
    )
