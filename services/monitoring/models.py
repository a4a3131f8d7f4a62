"""Monitoring's own tables (MONITORING.md section 1). Every time is timestamptz; lists scan the
(tenant_id, time, id) indexes backwards for newest first, so they need no DESC. llm_run_record and
usage_record are write-once: the migration adds a trigger refusing UPDATE and DELETE, and revokes them."""

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    Date,
    DateTime,
    Index,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import CHAR, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common import db, events, follow
from services.monitoring import policy


class Base(DeclarativeBase):
    metadata = db.metadata()


events.tables(Base.metadata)
# Where this service is in account's event log (tenants.py).
CURSORS = follow.tables(Base.metadata)


def _in(column: str, values: tuple[str, ...]) -> CheckConstraint:
    return CheckConstraint(f"{column} IN ({', '.join(repr(v) for v in values)})", name=column)


def _count(column: str) -> CheckConstraint:
    return CheckConstraint(f"{column} >= 0", name=column)


def _now() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now())


class Run(Base):
    __tablename__ = "run"
    __table_args__ = (
        UniqueConstraint("tenant_id", "idempotency_key"),
        _in("status", policy.STATUSES),
        _in("state", policy.STATES),
        _in("source", policy.SOURCES),
        _in("provider_type", policy.PROVIDER_TYPES),
        _in("risk_level", policy.RISK_LEVELS),
        _in("risk_type", policy.RISK_TYPES),
        _in("latency_bucket", policy.LATENCY_BUCKETS),
        _in("evidence_health", policy.EVIDENCE),
        _in("actor_type", policy.ACTOR_TYPES),
        CheckConstraint("(actor_type = 'HUMAN') = (actor_id IS NOT NULL)", name="actor_id"),
        # The projection is stored once COMPLETED and derived at read time while LIVE.
        CheckConstraint(
            "(state = 'COMPLETED') = (completed_at IS NOT NULL AND latency_bucket IS NOT NULL "
            "AND evidence_health IS NOT NULL AND duration_ms IS NOT NULL)",
            name="completed",
        ),
        CheckConstraint("(state = 'LIVE') = (status = 'running')", name="running"),
        *(_count(c) for c in ("input_tokens", "output_tokens", "cost_cents", "incident_count")),
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
        _in("execution_status", policy.EXECUTION_STATUSES),
        _in("source", ("SDK", "API")),
        *(_count(c) for c in ("input_tokens", "output_tokens", "cost_cents")),
        Index("ix_llm_run_record_tenant_created", "tenant_id", "created_at", "id"),
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
    created_at: Mapped[datetime] = _now()


class UsageRecord(Base):
    """One LLM call reported by the SDK; written by ingest in one set-based statement (ingest.py)."""

    __tablename__ = "usage_record"
    __table_args__ = (
        UniqueConstraint("tenant_id", "call_id"),
        _in("policy_result", ("allowed", "warned", "blocked")),
        *(_count(c) for c in ("tokens_in", "tokens_out", "cost_cents", "latency_ms")),
        Index("ix_usage_record_tenant_integration_created", "tenant_id", "integration_id", "created_at"),
        Index("ix_usage_record_tenant_created", "tenant_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(UUID(as_uuid=False), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    integration_id: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(64))
    call_id: Mapped[str] = mapped_column(String(100))
    session_id: Mapped[str | None] = mapped_column(String(100))
    agent_id: Mapped[str | None] = mapped_column(String(100))
    provider: Mapped[str] = mapped_column(String(50))
    model: Mapped[str] = mapped_column(String(100))
    tokens_in: Mapped[int] = mapped_column(Integer)
    tokens_out: Mapped[int] = mapped_column(Integer)
    cost_cents: Mapped[int] = mapped_column(Integer)
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    policy_result: Mapped[str] = mapped_column(String(10))
    error_code: Mapped[str | None] = mapped_column(String(50))
    error_message: Mapped[str | None] = mapped_column(String(2000))
    # "metadata" is the column; the attribute cannot shadow DeclarativeBase.metadata.
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB)
    created_at: Mapped[datetime] = _now()


class UsageDaily(Base):
    """Per tenant, integration and UTC day: the sums of the usage records, upserted by each ingest."""

    __tablename__ = "usage_daily"
    __table_args__ = tuple(_count(c) for c in ("records", "tokens_in", "tokens_out", "cost_cents"))

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    integration_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    records: Mapped[int] = mapped_column(BigInteger)
    tokens_in: Mapped[int] = mapped_column(BigInteger)
    tokens_out: Mapped[int] = mapped_column(BigInteger)
    cost_cents: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = _now()


class Incident(Base):
    __tablename__ = "incident"
    __table_args__ = (
        _in("severity", policy.SEVERITIES),
        _in("category", policy.CATEGORIES),
        _in("cause_type", policy.CAUSE_TYPES),
        _in("lifecycle_state", policy.LIFECYCLE),
        CheckConstraint("(lifecycle_state = 'RESOLVED') = (resolved_at IS NOT NULL)", name="resolved_at"),
        # One incident per failed run, whichever completion gets there first.
        Index(
            "uq_incident_tenant_source_run",
            "tenant_id",
            "source_run_id",
            unique=True,
            postgresql_where=text("cause_type = 'LLM_RUN'"),
        ),
        Index(
            "ix_incident_tenant_open",
            "tenant_id",
            "created_at",
            "incident_id",
            postgresql_where=text("lifecycle_state <> 'RESOLVED'"),
        ),
        Index(
            "ix_incident_tenant_resolved",
            "tenant_id",
            "resolved_at",
            "incident_id",
            postgresql_where=text("lifecycle_state = 'RESOLVED'"),
        ),
        Index("ix_incident_tenant_source_run", "tenant_id", "source_run_id"),
        Index("ix_incident_created", "created_at", "incident_id"),
    )

    incident_id: Mapped[str] = mapped_column(String(20), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    source_run_id: Mapped[str | None] = mapped_column(UUID(as_uuid=False))
    title: Mapped[str] = mapped_column(String(200))
    severity: Mapped[str] = mapped_column(String(10))
    category: Mapped[str] = mapped_column(String(30))
    error_code: Mapped[str | None] = mapped_column(String(50))
    error_message: Mapped[str | None] = mapped_column(String(2000))
    cause_type: Mapped[str] = mapped_column(String(10))
    lifecycle_state: Mapped[str] = mapped_column(String(10))
    affected_agent_id: Mapped[str | None] = mapped_column(String(100))
    cost_impact_cents: Mapped[int] = mapped_column(Integer, server_default="0")
    is_synthetic: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()
    acked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acked_by: Mapped[str | None] = mapped_column(String(255))
    ack_note: Mapped[str | None] = mapped_column(String(2000))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_by: Mapped[str | None] = mapped_column(String(255))
    resolution_method: Mapped[str | None] = mapped_column(String(50))
    resolution_notes: Mapped[str | None] = mapped_column(String(2000))


class MonitoringThreshold(Base):
    """A tenant's thresholds (MONITORING.md 3.3); NULL keeps the default."""

    __tablename__ = "monitoring_threshold"
    __table_args__ = tuple(_count(c) for c in policy.THRESHOLDS)

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    run_budget_cents: Mapped[int | None] = mapped_column(Integer)
    run_tokens: Mapped[int | None] = mapped_column(Integer)
    run_time_ms: Mapped[int | None] = mapped_column(Integer)
    near_threshold_pct: Mapped[int | None] = mapped_column(Integer)
    expected_latency_ms: Mapped[int | None] = mapped_column(Integer)
    stalled_after_ms: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = _now()


class TenantLifecycle(Base):
    """A tenant's status as account's tenant.* events last said (a tenant never heard of is active)."""

    __tablename__ = "tenant_lifecycle"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(20))
    updated_at: Mapped[datetime] = _now()
