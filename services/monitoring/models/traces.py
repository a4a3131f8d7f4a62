from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Double, ForeignKeyConstraint, Index, Integer, String, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from services.monitoring.models.base import Base, non_negative, stamped


class Trace(Base):
    """A trace a client uploaded (MONITORING.md 6.2); the first write wins, so it is never changed. A trace of a
    run names it (one trace per run); trace_id defaults to the run_id."""

    __tablename__ = "trace"
    __table_args__ = (
        # One trace per run; a trace without a run is not constrained.
        Index("uq_trace_tenant_run", "tenant_id", "run_id", unique=True, postgresql_where=text("run_id IS NOT NULL")),
        Index("ix_trace_tenant_created", "tenant_id", "created_at", "trace_id"),
        non_negative("step_count"),
        non_negative("redaction_count"),
    )

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    trace_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    run_id: Mapped[str | None] = mapped_column(UUID(as_uuid=False))
    correlation_id: Mapped[str | None] = mapped_column(String(100))
    agent_id: Mapped[str | None] = mapped_column(String(100))
    plan: Mapped[Any | None] = mapped_column(JSONB)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB)
    root_hash: Mapped[str] = mapped_column(String(128))
    plan_hash: Mapped[str | None] = mapped_column(String(128))
    seed: Mapped[int] = mapped_column(BigInteger)
    frozen_timestamp: Mapped[str | None] = mapped_column(String(64))
    schema_version: Mapped[str] = mapped_column(String(20))
    status: Mapped[str | None] = mapped_column(String(50))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    stored_by: Mapped[str] = mapped_column(String(300))
    step_count: Mapped[int] = mapped_column(Integer)
    redaction_count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = stamped()


class TraceStep(Base):
    __tablename__ = "trace_step"
    __table_args__ = (
        ForeignKeyConstraint(["tenant_id", "trace_id"], ["trace.tenant_id", "trace.trace_id"]),
        # The replay window reads a tenant's steps by time.
        Index("ix_trace_step_tenant_timestamp", "tenant_id", "timestamp"),
        *(non_negative(c) for c in ("cost_cents", "duration_ms", "retry_count")),
    )

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    trace_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    step_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    skill_name: Mapped[str | None] = mapped_column(String(200))
    params: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str | None] = mapped_column(String(50))
    outcome_category: Mapped[str | None] = mapped_column(String(100))
    outcome_code: Mapped[str | None] = mapped_column(String(100))
    outcome_data: Mapped[Any | None] = mapped_column(JSONB)
    cost_cents: Mapped[float] = mapped_column(Double)
    duration_ms: Mapped[float] = mapped_column(Double)
    retry_count: Mapped[int] = mapped_column(Integer)
    timestamp: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    input_hash: Mapped[str | None] = mapped_column(String(128))
    output_hash: Mapped[str | None] = mapped_column(String(128))
