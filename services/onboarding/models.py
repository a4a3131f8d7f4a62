from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Identity, Index, SmallInteger, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common import db, events, follow


class Base(DeclarativeBase):
    metadata = db.metadata()


events.tables(Base.metadata)
# Where each peer's EventLog was last read; its follower resumes there after a restart.
event_cursor = follow.tables(Base.metadata)


def _now() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class OnboardingState(Base):
    """One row per tenant onboarding knows of; `state` only grows (conditional updates)."""

    __tablename__ = "onboarding_state"
    __table_args__ = (Index("ix_onboarding_state_stalled", "state", "tenant_created_at"),)

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[int] = mapped_column(SmallInteger)
    # When account created the tenant (its tenant.created event), for stalled detection.
    tenant_created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class OnboardingTransition(Base):
    __tablename__ = "onboarding_transition"
    __table_args__ = (Index("ix_onboarding_transition_tenant", "tenant_id", "sequence_no", unique=True),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    from_state: Mapped[int] = mapped_column(SmallInteger)
    to_state: Mapped[int] = mapped_column(SmallInteger)
    trigger: Mapped[str] = mapped_column(String(255))
    actor_type: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str | None] = mapped_column(Text)
    event_id: Mapped[str] = mapped_column(String(36))
    sequence_no: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = _now()


class OnboardingAudit(Base):
    """Founder overrides, written in the transaction of the change they authorise (never without it)."""

    __tablename__ = "onboarding_audit"

    audit_id: Mapped[str] = mapped_column(String(120), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(50))
    from_state: Mapped[int] = mapped_column(SmallInteger)
    to_state: Mapped[int] = mapped_column(SmallInteger)
    actor_type: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[str] = mapped_column(String(255))
    actor_email: Mapped[str] = mapped_column(String(320))
    reason: Mapped[str] = mapped_column(Text)
    # The predicate's conditions the override skipped: known to be missing, and unknown (their source was down).
    missing: Mapped[list[str]] = mapped_column(JSONB)
    unknown: Mapped[list[str]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    created_at: Mapped[datetime] = _now()
