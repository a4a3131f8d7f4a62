"""Traces (MONITORING.md 6.2, 6.5): an uploaded trace validated and redacted before any database access, stored
once (the first write wins), resolved by run id then trace id, and compared. Nothing here commits."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any, NamedTuple

from google.protobuf import json_format
from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from aos.monitoring.v1 import logs_pb2 as pb
from services.common import events, validation
from services.common.errors import InvalidArgument, NotFound
from services.common.principal import Principal
from services.monitoring import redaction, repository, runs
from services.monitoring.models import LlmRunRecord, Run, Trace, TraceStep

MAX_STEPS = 1000
MAX_BYTES = 2 * 1024 * 1024
DEFAULT_SEED = 42
SCHEMA_VERSION = "1.1"
# A path segment (GET /traces/{id}) and a page token part (split on "|").
TRACE_ID = re.compile(r"[^\s/|\x00]{1,100}")


def canonical(data: Any) -> str:
    """JSON with sorted keys and no spaces: the same data always hashes the same."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def sha256(data: Any) -> str:
    return hashlib.sha256(canonical(data).encode()).hexdigest()


def redactions(before: Any, after: Any) -> int:
    """How many stored values redaction changed, walking the value before and after it in step (a whole value
    under a secret-sounding key counts once)."""
    if before == after:
        return 0
    if isinstance(before, dict) and isinstance(after, dict):
        return sum(redactions(v, after[k]) for k, v in before.items())
    if isinstance(before, list) and isinstance(after, list):
        return sum(redactions(b, a) for b, a in zip(before, after, strict=True))
    return 1


@dataclass
class NewTrace:
    """A trace's and its steps' column values, redacted, before the tenant and store are known."""

    trace: dict[str, Any]
    steps: list[dict[str, Any]] = field(default_factory=list)


def _text(name: str, value: str, high: int) -> str | None:
    return validation.length(name, value, 0, high) or None


def _amount(name: str, value: float) -> float:
    if not math.isfinite(value) or value < 0:
        raise InvalidArgument(name, f"must be a number >= 0, got {value}")
    return value


def _step(i: int, step: pb.TraceStepInput, data: dict[str, Any]) -> dict[str, Any]:
    """One step's columns; `data` is the step as JSON (its params and outcome_data are taken from there)."""
    at = f"trace.steps[{i}]."
    index = step.step_index if step.HasField("step_index") else i
    return {
        "step_index": validation.between(f"{at}step_index", index, 0, 2**31 - 1),
        "skill_name": _text(f"{at}skill_name", step.skill_name, 200),
        "params": data.get("params", {}),
        "status": _text(f"{at}status", step.status, 50),
        "outcome_category": _text(f"{at}outcome_category", step.outcome_category, 100),
        "outcome_code": _text(f"{at}outcome_code", step.outcome_code, 100),
        "outcome_data": data.get("outcome_data"),
        "cost_cents": _amount(f"{at}cost_cents", step.cost_cents),
        "duration_ms": _amount(f"{at}duration_ms", step.duration_ms),
        "retry_count": validation.between(f"{at}retry_count", step.retry_count, 0, 2**31 - 1),
        "timestamp": step.timestamp.ToDatetime(UTC) if step.HasField("timestamp") else None,
        "input_hash": _text(f"{at}input_hash", step.input_hash, 128),
        "output_hash": _text(f"{at}output_hash", step.output_hash, 128),
    }


def parse(request: pb.TraceInput, overwrite: bool) -> NewTrace:
    """The trace to store, or INVALID_ARGUMENT naming the field: ids, sizes, then every field."""
    if overwrite:
        raise InvalidArgument("overwrite", "a stored trace is never replaced; store it under another trace_id")
    run_id = _run_id(request.run_id) if request.run_id.strip() else None
    trace_id = _text("trace.trace_id", request.trace_id, 100) or run_id
    if trace_id and not TRACE_ID.fullmatch(trace_id):
        raise InvalidArgument("trace.trace_id", "must not contain whitespace, '/' or '|' (it is a path segment)")
    if trace_id is None:
        raise InvalidArgument("trace.run_id", "run_id or trace_id is required")
    if len(request.steps) > MAX_STEPS:
        raise InvalidArgument("trace.steps", f"must hold at most {MAX_STEPS} steps, got {len(request.steps)}")
    # The trace as JSON once: its size, and the free-form values (plan, metadata, params, outcome_data) from it.
    data = json_format.MessageToDict(request, preserving_proto_field_name=True)
    encoded = json.dumps(data)
    if len(encoded.encode()) > MAX_BYTES:
        raise InvalidArgument("trace", f"must be at most {MAX_BYTES} bytes of JSON")
    if "\\u0000" in encoded:  # jsonb and text cannot hold NUL: the caller's error, not a 500
        raise InvalidArgument("trace", "must not contain NUL characters")
    steps = [_step(i, s, d) for i, (s, d) in enumerate(zip(request.steps, data.get("steps", ()), strict=True))]
    seen: set[int] = set()
    for i, step in enumerate(steps):
        if step["step_index"] in seen:
            raise InvalidArgument(f"trace.steps[{i}].step_index", f"repeats step_index {step['step_index']}")
        seen.add(step["step_index"])
    values = {
        "trace_id": trace_id,
        "run_id": run_id,
        "correlation_id": _text("trace.correlation_id", request.correlation_id, 100),
        "agent_id": _text("trace.agent_id", request.agent_id, 100),
        "plan": data.get("plan"),
        "meta": data.get("metadata", {}),
        "root_hash": _text("trace.root_hash", request.root_hash, 128),
        "plan_hash": _text("trace.plan_hash", request.plan_hash, 128),
        "seed": request.seed if request.HasField("seed") else DEFAULT_SEED,
        "frozen_timestamp": _text("trace.frozen_timestamp", request.frozen_timestamp, 64),
        "schema_version": _text("trace.schema_version", request.schema_version, 20) or SCHEMA_VERSION,
        "status": _text("trace.status", request.status, 50),
        "started_at": request.started_at.ToDatetime(UTC) if request.HasField("started_at") else None,
        "completed_at": request.completed_at.ToDatetime(UTC) if request.HasField("completed_at") else None,
    }
    return _redacted(values, sorted(steps, key=lambda s: s["step_index"]))


def _run_id(value: str) -> str:
    """A run id as stored (a UUID); anything else names no run of the tenant: the unknown-run answer."""
    try:
        return str(uuid.UUID(value.strip()))
    except ValueError:
        raise NotFound("run not found", reason="RUN_NOT_FOUND") from None


def _redacted(values: dict[str, Any], steps: list[dict[str, Any]]) -> NewTrace:
    """Every stored string redacted (6.3); the root hash, when the client sent none, covers the stored steps."""
    clean, clean_steps = redaction.value(values), redaction.value(steps)
    if len(clean["trace_id"]) > 100:  # a redaction marker may be longer than what it replaced
        raise InvalidArgument("trace.trace_id", "must be at most 100 characters once redacted")
    count = redactions(values, clean) + redactions(steps, clean_steps)
    clean["root_hash"] = clean["root_hash"] or sha256(clean_steps)
    clean |= {"step_count": len(steps), "redaction_count": count}
    return NewTrace(clean, clean_steps)


class Stored(NamedTuple):
    trace: Trace
    stored: bool


async def store(session: AsyncSession, who: Principal, new: NewTrace) -> Stored:
    """Stores the trace unless the tenant has one with its trace_id or run_id (the first write wins, also
    between racing writers: ON CONFLICT waits for the other transaction). A trace of a COMPLETED run is its
    evidence: the run's evidence_health becomes FLOWING."""
    tenant_id = who.tenant()
    run = None
    if new.trace["run_id"]:
        # Locked like CompleteRun locks it: whichever comes second sees the other's write, so a trace racing the
        # completion still makes the run FLOWING (here if the run completed first, in CompleteRun otherwise).
        run = await repository.get_run(session, tenant_id, new.trace["run_id"], lock=True)
    values = new.trace | {"tenant_id": tenant_id, "stored_by": f"{who.actor_type}:{who.actor_id}"}
    stmt = insert(Trace).values(**values).on_conflict_do_nothing().returning(Trace)
    trace = (await session.execute(stmt)).scalar_one_or_none()
    if trace is None:
        return Stored(await _first(session, tenant_id, new.trace["trace_id"], new.trace["run_id"]), False)
    if new.steps:
        rows = [s | {"tenant_id": tenant_id, "trace_id": trace.trace_id} for s in new.steps]
        await session.execute(insert(TraceStep), rows)
    await _evidence(session, tenant_id, trace)
    payload = {"trace_id": trace.trace_id, "run_id": trace.run_id or "", "step_count": trace.step_count}
    payload["root_hash"] = trace.root_hash
    await events.record(session, runs.OWNER, who, "trace.stored", tenant_id, payload, _project(run))
    return Stored(trace, True)


async def _evidence(session: AsyncSession, tenant_id: str, trace: Trace) -> None:
    """The trace is the evidence of its run and of the runs whose completion named its trace_id: those already
    COMPLETED become FLOWING (CompleteRun looks for a trace stored before it)."""
    named = select(LlmRunRecord.run_id).where(
        LlmRunRecord.tenant_id == tenant_id, LlmRunRecord.trace_id == trace.trace_id
    )
    ours = Run.run_id.in_(named) if trace.run_id is None else or_(Run.run_id == trace.run_id, Run.run_id.in_(named))
    flowing = update(Run).where(Run.tenant_id == tenant_id, Run.state == "COMPLETED", ours)
    await session.execute(flowing.values(evidence_health="FLOWING").execution_options(synchronize_session=False))


def _project(run: Run | None) -> str:
    return runs.project(run) if run is not None else events.SYSTEM


async def _first(session: AsyncSession, tenant_id: str, trace_id: str, run_id: str | None) -> Trace:
    """The stored trace a new one collided with: the same trace_id, else the same run's."""
    found = await session.get(Trace, (tenant_id, trace_id))
    if found is None and run_id is not None:
        found = await by_run(session, tenant_id, run_id)
    assert found is not None, "ON CONFLICT matched a trace this transaction cannot see"
    return found


async def by_run(session: AsyncSession, tenant_id: str, run_id: str) -> Trace | None:
    return await session.scalar(select(Trace).where(Trace.tenant_id == tenant_id, Trace.run_id == run_id))


async def resolve(session: AsyncSession, tenant_id: str, ident: str) -> Trace:
    """GetTrace's id: a run's trace first, then a trace_id; another tenant's is unknown (404)."""
    found = None
    with contextlib.suppress(ValueError):  # not a run id: a trace id only
        found = await by_run(session, tenant_id, str(uuid.UUID(ident)))
    if found is None and TRACE_ID.fullmatch(ident):  # no stored trace_id has another shape
        found = await session.get(Trace, (tenant_id, ident))
    if found is None:
        raise NotFound("trace not found", reason="TRACE_NOT_FOUND")
    return found


async def steps_of(session: AsyncSession, tenant_id: str, trace_id: str) -> list[TraceStep]:
    query = (
        select(TraceStep)
        .where(TraceStep.tenant_id == tenant_id, TraceStep.trace_id == trace_id)
        .order_by(TraceStep.step_index)
    )
    return list((await session.scalars(query)).all())


class Difference(NamedTuple):
    field: str
    trace1: str
    trace2: str


def compare(a: Trace, a_steps: list[TraceStep], b: Trace, b_steps: list[TraceStep]) -> list[Difference]:
    """What differs (6.5): root_hash, seed, frozen_timestamp, step count, then each position's skill_name and
    outcome_category (a step only one trace has differs from nothing)."""

    def text(value: Any) -> str:
        return "" if value is None else str(value)

    pairs = [
        ("root_hash", a.root_hash, b.root_hash),
        ("seed", a.seed, b.seed),
        ("frozen_timestamp", a.frozen_timestamp, b.frozen_timestamp),
        ("step_count", len(a_steps), len(b_steps)),
    ]
    for i in range(max(len(a_steps), len(b_steps))):
        one = a_steps[i] if i < len(a_steps) else None
        two = b_steps[i] if i < len(b_steps) else None
        for name in ("skill_name", "outcome_category"):
            pairs.append((f"steps[{i}].{name}", getattr(one, name, None), getattr(two, name, None)))
    return [Difference(name, text(x), text(y)) for name, x, y in pairs if text(x) != text(y)]


def summary(differences: list[Difference]) -> str:
    if not differences:
        return "The traces match."
    return f"{len(differences)} difference(s): {', '.join(d.field for d in differences)}."
