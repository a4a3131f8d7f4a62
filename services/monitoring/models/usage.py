from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Date, Index, Integer, String, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from services.monitoring.models.base import Base, non_negative, one_of, stamped


class UsageRecord(Base):
    """One LLM call reported by the SDK; written by ingest in one set-based statement (ingest.py)."""

    __tablename__ = "usage_record"
    __table_args__ = (
        UniqueConstraint("tenant_id", "call_id"),
        one_of("policy_result", ("allowed", "warned", "blocked")),
        *(non_negative(c) for c in ("tokens_in", "tokens_out", "cost_cents", "latency_ms")),
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
    created_at: Mapped[datetime] = stamped()


class UsageDaily(Base):
    """Per tenant, integration and UTC day: the sums of the usage records, upserted by each ingest."""

    __tablename__ = "usage_daily"
    __table_args__ = tuple(non_negative(c) for c in ("records", "tokens_in", "tokens_out", "cost_cents"))

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    integration_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    records: Mapped[int] = mapped_column(BigInteger)
    tokens_in: Mapped[int] = mapped_column(BigInteger)
    tokens_out: Mapped[int] = mapped_column(BigInteger)
    cost_cents: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = stamped()
