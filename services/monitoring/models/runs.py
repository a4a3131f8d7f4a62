from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Computed,
    DateTime,
    Index,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import CHAR, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from services.monitoring import policy
from services.monitoring.models.base import Base, non_negative, one_of, stamped


class Run(Base):
    __tablename__ = "run"
    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key"),
        one_of("status", policy.STATUSES),
        one_of("state", policy.STATES),
        one_of("source", policy.SOURCES),
        one_of("provider_type", policy.PROVIDER_TYPES),
        one_of("risk_level", policy.RISK_LEVELS),
        one_of("risk_type", policy.RISK_TYPES),
        one_of("latency_bucket", policy.LATENCY_BUCKETS),
        one_of("evidence_health", policy.EVIDENCE),
        one_of("actor_type", policy.ACTOR_TYPES),
        CheckConstraint("(actor_type = 'HUMAN') = (actor_id IS NOT NULL)", name="actor_id"),
        # The projection is stored once COMPLETED and derived at read time while LIVE.
        CheckConstraint(
            "(state = 'COMPLETED') = (completed_at IS NOT NULL AND latency_bucket IS NOT NULL "
            "AND evidence_health IS NOT NULL AND duration_ms IS NOT NULL)",
            name="completed",
        ),
        CheckConstraint("(state = 'LIVE') = (status = 'running')", name="running"),
        *(non_negative(c) for c in ("input_tokens", "output_tokens", "cost_cents", "incident_count")),
        Index("ix_run_tenant_state_started", "tenant_id", "state", "started_at", "run_id"),
        Index(
            "ix_run_tenant_completed",
            "tenant_id",
            "completed_at",
            "run_id",
            postgresql_where=text("state = 'COMPLETED'"),
        ),
        Index("ix_run_tenant_at_risk", "tenant_id", "started_at", postgresql_where=text("risk_level <> 'NORMAL'")),
        Index("ix_run_tenant_status", "tenant_id", "status"),
        # Founders' cross-tenant lists.
        Index("ix_run_started", "started_at", "run_id"),
        Index("ix_run_state_started", "state", "started_at", "run_id"),
    )

    run_id: Mapped[str] = mapped_column(UUID(as_uuid=False), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    project_id: Mapped[str | None] = mapped_column(String(64))
    agent_id: Mapped[str] = mapped_column(String(100))
    # A run of the same tenant (checked when written; no cross-tenant reference can be stored).
    parent_run_id: Mapped[str | None] = mapped_column(UUID(as_uuid=False))
    idempotency_key: Mapped[str | None] = mapped_column(String(100))
    actor_type: Mapped[str] = mapped_column(String(10))
    actor_id: Mapped[str | None] = mapped_column(String(255))
    origin_system_id: Mapped[str] = mapped_column(String(255))
    goal: Mapped[str] = mapped_column(String(4000))
    plan: Mapped[Any | None] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(20))
    error_code: Mapped[str | None] = mapped_column(String(50))
    error_message: Mapped[str | None] = mapped_column(String(2000))
    state: Mapped[str] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(String(10))
    provider_type: Mapped[str] = mapped_column(String(20))
    risk_level: Mapped[str] = mapped_column(String(20))
    risk_type: Mapped[str] = mapped_column(String(10))
    latency_bucket: Mapped[str | None] = mapped_column(String(10))
    evidence_health: Mapped[str | None] = mapped_column(String(10))
    policy_violation: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    policy_context: Mapped[dict[str, Any]] = mapped_column(JSONB)
    incident_count: Mapped[int] = mapped_column(Integer, server_default="0")
    incident_severity: Mapped[str | None] = mapped_column(String(10))
    input_tokens: Mapped[int] = mapped_column(Integer, server_default="0")
    output_tokens: Mapped[int] = mapped_column(Integer, server_default="0")
    cost_cents: Mapped[int] = mapped_column(Integer, server_default="0")
    estimated_cost_usd: Mapped[float] = mapped_column(Numeric(12, 2), Computed("cost_cents / 100.0", persisted=True))
    expected_latency_ms: Mapped[int | None] = mapped_column(Integer)
    # started_at is the run's created_at.
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    is_synthetic: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))


class LlmRunRecord(Base):
    """Written by CompleteRun, one per run; never changed afterwards."""

    __tablename__ = "llm_run_record"
    __table_args__ = (
        UniqueConstraint("tenant_id", "run_id"),
        one_of("execution_status", policy.EXECUTION_STATUSES),
        one_of("source", ("SDK", "API")),
        *(non_negative(c) for c in ("input_tokens", "output_tokens", "cost_cents")),
        Index("ix_llm_run_record_tenant_created", "tenant_id", "created_at", "id"),
        # A trace stored after its run completed finds the runs whose completion named it (traces.store).
        Index("ix_llm_run_record_tenant_trace", "tenant_id", "trace_id", postgresql_where=text("trace_id IS NOT NULL")),
    )

    id: Mapped[str] = mapped_column(UUID(as_uuid=False), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[str] = mapped_column(UUID(as_uuid=False))
    trace_id: Mapped[str | None] = mapped_column(String(100))
    provider: Mapped[str | None] = mapped_column(String(50))
    model: Mapped[str | None] = mapped_column(String(100))
    prompt_hash: Mapped[str | None] = mapped_column(CHAR(64))
    response_hash: Mapped[str | None] = mapped_column(CHAR(64))
    input_tokens: Mapped[int] = mapped_column(Integer)
    output_tokens: Mapped[int] = mapped_column(Integer)
    cost_cents: Mapped[int] = mapped_column(Integer)
    execution_status: Mapped[str] = mapped_column(String(10))
    source: Mapped[str] = mapped_column(String(3))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    is_synthetic: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = stamped()


class MonitoringThreshold(Base):
    """A tenant's thresholds (MONITORING.md 3.3); NULL keeps the default."""

    __tablename__ = "monitoring_threshold"
    __table_args__ = tuple(non_negative(c) for c in policy.THRESHOLDS)

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    run_budget_cents: Mapped[int | None] = mapped_column(Integer)
    run_tokens: Mapped[int | None] = mapped_column(Integer)
    run_time_ms: Mapped[int | None] = mapped_column(Integer)
    near_threshold_pct: Mapped[int | None] = mapped_column(Integer)
    expected_latency_ms: Mapped[int | None] = mapped_column(Integer)
    stalled_after_ms: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = stamped()
