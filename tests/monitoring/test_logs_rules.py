"""The pure rules of the logs and traces (MONITORING.md 6.1-6.5): the envelope's checksum, the replay window's
bounds, trace validation and redaction, the comparison, and the strict list queries. No I/O."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from google.protobuf import json_format

from aos.monitoring.v1 import logs_pb2 as pb
from aos.monitoring.v1 import logs_service_pb2 as rpc
from services.common.errors import InvalidArgument, NotFound
from services.monitoring import logs_queries, records, traces
from services.monitoring.models import LlmRunRecord, Trace, TraceStep

T = datetime(2026, 12, 2, 12, 0, 0, tzinfo=UTC)


def a_record(**changes: Any) -> LlmRunRecord:
    values: dict[str, Any] = {
        "id": "4b0c3f0e-7d1a-4c52-9a61-0d5b1f6e2a10",
        "tenant_id": "t-1",
        "run_id": "9f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b",
        "trace_id": None,
        "provider": "openai",
        "model": "gpt-4o",
        "prompt_hash": "a" * 64,
        "response_hash": None,
        "input_tokens": 10,
        "output_tokens": 5,
        "cost_cents": 3,
        "execution_status": "SUCCEEDED",
        "source": "SDK",
        "started_at": T - timedelta(seconds=5),
        "completed_at": T,
        "is_synthetic": False,
        "created_at": T,
    }
    return LlmRunRecord(**(values | changes))


def test_the_checksum_is_sha256_of_the_record_as_sorted_key_json_in_utc() -> None:
    record = a_record()
    expected = dict(records.fields(record))
    assert expected["completed_at"] == "2026-12-02T12:00:00Z" and expected["response_hash"] is None
    body = json.dumps(expected, sort_keys=True, separators=(",", ":"))
    assert records.checksum(record) == hashlib.sha256(body.encode()).hexdigest()
    # The same instant in another zone is the same record; any changed field is another checksum.
    shifted = a_record(completed_at=T.astimezone(timezone(timedelta(hours=2))))
    assert records.checksum(shifted) == records.checksum(record)
    assert records.checksum(a_record(cost_cents=4)) != records.checksum(record)


def test_the_origin_is_the_agent_unless_a_human_completed_the_run() -> None:
    assert (records.origin(a_record()), records.origin(a_record(source="API"))) == ("AGENT", "HUMAN")


def test_the_replay_window_is_thirty_seconds_either_side_inclusive() -> None:
    """M28's bounds: T - 30 s and T + 30 s are in, T - 31 s is not."""
    start, end = records.window(T)
    assert (start, end) == (T - timedelta(seconds=30), T + timedelta(seconds=30))
    assert start <= T - timedelta(seconds=30) and not start <= T - timedelta(seconds=31)


def trace_input(**fields: Any) -> pb.TraceInput:
    return json_format.ParseDict(fields, pb.TraceInput())


def test_a_trace_needs_run_id_or_trace_id_and_is_never_overwritten() -> None:
    """M26 at the rules: no ids names trace.run_id; overwrite: true is refused."""
    for request, overwrite, field in [
        (trace_input(steps=[{"skill_name": "llm"}]), False, "trace.run_id"),
        (trace_input(trace_id="t1"), True, "overwrite"),
        (trace_input(trace_id="a/b"), False, "trace.trace_id"),
        (trace_input(trace_id="t1", steps=[{"skill_name": "s"}] * 1001), False, "trace.steps"),
        (trace_input(trace_id="t1", steps=[{"step_index": 1}, {"step_index": 1}]), False, "trace.steps[1].step_index"),
        (trace_input(trace_id="t1", steps=[{"cost_cents": -1}]), False, "trace.steps[0].cost_cents"),
        (trace_input(trace_id="t1", metadata={"blob": "x" * (2 * 1024 * 1024)}), False, "trace"),
    ]:
        with pytest.raises(InvalidArgument) as refused:
            traces.parse(request, overwrite)
        assert refused.value.violations[0][0] == field, (field, refused.value.violations[0][0])
    with pytest.raises(NotFound):  # a run_id that is no UUID names no run of the tenant
        traces.parse(trace_input(run_id="not-a-run"), False)


def test_a_trace_defaults_its_ids_seed_and_root_hash() -> None:
    run_id = str(uuid.uuid4())
    sent = [{"skill_name": "b", "step_index": 1}, {"skill_name": "a", "step_index": 0}, {"skill_name": "c"}]
    new = traces.parse(trace_input(run_id=run_id, steps=sent), False)
    assert (new.trace["trace_id"], new.trace["seed"], new.trace["schema_version"]) == (run_id, 42, "1.1")
    # Steps are stored by step_index; a step without one takes its position.
    assert [(s["step_index"], s["skill_name"]) for s in new.steps] == [(0, "a"), (1, "b"), (2, "c")]
    assert new.trace["root_hash"] == traces.sha256(new.steps) and new.trace["step_count"] == 3
    given = traces.parse(trace_input(trace_id="t1", root_hash="r1", seed=0), False)
    assert (given.trace["run_id"], given.trace["root_hash"], given.trace["seed"]) == (None, "r1", 0)


def test_every_stored_string_of_a_trace_is_redacted_and_counted() -> None:
    """M25 at the rules: e-mail, aos_ key and card number become markers, wherever they are."""
    secret = "aos_" + "k" * 24
    new = traces.parse(
        trace_input(
            trace_id="t1",
            agent_id="bob@example.com",
            metadata={"note": f"key {secret}", "password": "hunter2"},
            steps=[{"skill_name": "pay", "params": {"card": "4111 1111 1111 1111", "n": 1}, "outcome_code": "ok"}],
        ),
        False,
    )
    assert new.trace["agent_id"] == "[REDACTED_EMAIL]"
    assert new.trace["meta"] == {"note": "key [REDACTED_SECRET]", "password": "[REDACTED]"}
    assert new.steps[0]["params"] == {"card": "[REDACTED_CARD]", "n": 1} and new.steps[0]["outcome_code"] == "ok"
    assert new.trace["redaction_count"] == 4


def a_trace(root: str = "r", seed: int = 42, frozen: str | None = None) -> Trace:
    return Trace(trace_id="t", root_hash=root, seed=seed, frozen_timestamp=frozen)


def steps(*skills: str, category: str = "SUCCESS") -> list[TraceStep]:
    return [TraceStep(step_index=i, skill_name=s, outcome_category=category) for i, s in enumerate(skills)]


def test_compare_lists_each_difference() -> None:
    """M29 at the rules: traces differing in step 1's skill differ there, and only there."""
    assert traces.compare(a_trace(), steps("a", "b"), a_trace(), steps("a", "b")) == []
    (only,) = traces.compare(a_trace(), steps("a", "b"), a_trace(), steps("a", "c"))
    assert only == traces.Difference("steps[1].skill_name", "b", "c")
    found = traces.compare(a_trace("r1", 1, "2026"), steps("a"), a_trace("r2", 2), steps("a", "x", category="F"))
    assert [d.field for d in found] == [
        "root_hash",
        "seed",
        "frozen_timestamp",
        "step_count",
        "steps[0].outcome_category",
        "steps[1].skill_name",
        "steps[1].outcome_category",
    ]
    assert found[3] == traces.Difference("step_count", "1", "2") and found[5].trace1 == ""
    assert traces.summary([]) == "The traces match." and "steps[1].skill_name" in traces.summary(found)


@pytest.mark.parametrize(
    ("request_", "field", "reason"),
    [
        ("", "topic", "INVALID_QUERY"),
        ("topic=foo", "topic", "INVALID_QUERY"),
        ("topic=llm_runs&topic=llm_runs", "topic", "INVALID_QUERY"),
        ("topic=llm_runs&foo=1", "foo", "INVALID_QUERY"),
        ("topic=llm_runs&limit=0", "limit", "INVALID_QUERY"),
        ("topic=llm_runs&limit=101", "limit", "INVALID_QUERY"),
        ("topic=llm_runs&limit=1&limit=2", "limit", "INVALID_QUERY"),
        ("topic=llm_runs&offset=-1", "offset", "INVALID_QUERY"),
        ("topic=llm_runs&as_of=2026-01-01T00:00:00Z", "as_of", "UNSUPPORTED_PARAM"),
    ],
)
def test_the_logs_facade_is_strict(request_: str, field: str, reason: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        logs_queries.facade(request_)
    assert (refused.value.violations[0][0], refused.value.reason) == (field, reason)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"limit": 101}, "limit"),
        ({"execution_status": ["DONE"]}, "execution_status"),
        ({"run_id": "x"}, "run_id"),
        ({"provider": "open\x00ai"}, "provider"),
        ({"created_after": "2026-01-01T00:00:00"}, "created_after"),
        ({"created_after": "2026-02-01T00:00:00Z", "created_before": "2026-01-01T00:00:00Z"}, "created_after"),
    ],
)
def test_the_record_list_is_strict(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        logs_queries.records(rpc.ListLlmRunRecordsRequest(**fields))
    assert (refused.value.violations[0][0], refused.value.reason) == (field, "INVALID_QUERY")


def test_the_record_list_reports_the_filters_it_applied() -> None:
    run_id = str(uuid.uuid4())
    request = rpc.ListLlmRunRecordsRequest(run_id=run_id, execution_status=["FAILED", "FAILED"], is_synthetic=False)
    _, applied = logs_queries.records(request)
    assert applied == {"run_id": run_id, "execution_status": ["FAILED"], "is_synthetic": False}


@pytest.mark.parametrize(
    ("fields", "field"),
    [({"limit": 1001}, "limit"), ({"from_date": "2026-01-02"}, "from_date"), ({"agent_id": "a" * 129}, "agent_id")],
)
def test_the_trace_list_is_strict(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        logs_queries.trace_list(rpc.ListTracesRequest(**fields))
    assert refused.value.violations[0][0] == field
    assert logs_queries.trace_list(rpc.ListTracesRequest(limit=1000)).page.size == 1000
