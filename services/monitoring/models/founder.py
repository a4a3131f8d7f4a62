from datetime import datetime
from typing import Any

from sqlalchemy import Index, String
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from services.monitoring.models.base import Base, stamped


class FounderAccessAudit(Base):
    """One operator read across tenants, written before the read (MONITORING.md 0.9); never changed
    afterwards (the migration's trigger and grants)."""

    __tablename__ = "founder_access_audit"
    __table_args__ = (Index("ix_founder_access_audit_created", "created_at", "id"),)

    id: Mapped[str] = mapped_column(UUID(as_uuid=False), primary_key=True)
    operator_id: Mapped[str] = mapped_column(String(255))
    operator_email: Mapped[str] = mapped_column(String(320))
    rpc: Mapped[str] = mapped_column(String(100))
    # The tenant and id read; both null for the cross-tenant lists (the filters say what was asked).
    tenant_id: Mapped[str | None] = mapped_column(String(64))
    target_id: Mapped[str | None] = mapped_column(String(100))
    filters: Mapped[dict[str, Any]] = mapped_column(JSONB)
    request_id: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = stamped()
