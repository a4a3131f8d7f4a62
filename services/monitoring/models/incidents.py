from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, DateTime, Index, Integer, String, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from services.monitoring import policy
from services.monitoring.models.base import Base, one_of, stamped


class Incident(Base):
    __tablename__ = "incident"
    __table_args__ = (
        one_of("severity", policy.SEVERITIES),
        one_of("category", policy.CATEGORIES),
        one_of("cause_type", policy.CAUSE_TYPES),
        one_of("lifecycle_state", policy.LIFECYCLE),
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
    created_at: Mapped[datetime] = stamped()
    updated_at: Mapped[datetime] = stamped()
    acked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acked_by: Mapped[str | None] = mapped_column(String(255))
    ack_note: Mapped[str | None] = mapped_column(String(2000))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resolved_by: Mapped[str | None] = mapped_column(String(255))
    resolution_method: Mapped[str | None] = mapped_column(String(50))
    resolution_notes: Mapped[str | None] = mapped_column(String(2000))
