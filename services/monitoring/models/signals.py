from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, Index, String, text
from sqlalchemy.dialects.postgresql import CHAR, UUID
from sqlalchemy.orm import Mapped, mapped_column

from services.monitoring import policy
from services.monitoring.models.base import Base, one_of, stamped


class SignalFeedback(Base):
    """What people said about a computed signal (signals themselves are not stored: MONITORING.md 0.8). One
    acknowledgement per signal; suppressions pile up and each hides the signal until it expires."""

    __tablename__ = "signal_feedback"
    __table_args__ = (
        one_of("feedback_state", policy.FEEDBACK_STATES),
        one_of("signal_type", policy.SIGNAL_TYPES),
        CheckConstraint("(feedback_state = 'SUPPRESSED') = (expires_at IS NOT NULL)", name="expires_at"),
        # The first acknowledgement wins (ON CONFLICT DO NOTHING); repeats read it back.
        Index(
            "uq_signal_feedback_tenant_acknowledged",
            "tenant_id",
            "signal_fingerprint",
            unique=True,
            postgresql_where=text("feedback_state = 'ACKNOWLEDGED'"),
        ),
        # The list's anti-join on live suppressions.
        Index(
            "ix_signal_feedback_tenant_suppressed",
            "tenant_id",
            "signal_fingerprint",
            "expires_at",
            postgresql_where=text("feedback_state = 'SUPPRESSED'"),
        ),
    )

    id: Mapped[str] = mapped_column(UUID(as_uuid=False), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    signal_fingerprint: Mapped[str] = mapped_column(CHAR(32))
    run_id: Mapped[str] = mapped_column(UUID(as_uuid=False))
    signal_type: Mapped[str] = mapped_column(String(30))
    feedback_state: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(255))
    comment: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = stamped()
    # Set exactly for a suppression: hidden until then.
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
