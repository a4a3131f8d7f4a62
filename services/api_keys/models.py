from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Identity, Index, Integer, String, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common import db, events, follow


class Base(DeclarativeBase):
    metadata = db.metadata()


events.tables(Base.metadata)
# Where this service is in account's event log (see tenants.py).
CURSORS = follow.tables(Base.metadata)


def _now() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class ApiKey(Base):
    __tablename__ = "api_key"
    __table_args__ = (
        UniqueConstraint("tenant_id", "request_id"),
        Index("ix_api_key_tenant_created", "tenant_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # The account service's tenant id, as plain data: no cross-database foreign key.
    tenant_id: Mapped[str] = mapped_column(String(36))
    created_by: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(100))
    key_prefix: Mapped[str] = mapped_column(String(16))
    # SHA-256 of the full key; the secret itself is never stored.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    permissions: Mapped[list[str]] = mapped_column(JSONB)
    allowed_workers: Mapped[list[str]] = mapped_column(JSONB)
    rate_limit_rpm: Mapped[int | None] = mapped_column(Integer)
    max_concurrent_runs: Mapped[int | None] = mapped_column(Integer)
    # active | disabled | revoked; "expired" is derived from expires_at, never written.
    status: Mapped[str] = mapped_column(String(20))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_reason: Mapped[str | None] = mapped_column(String(255))
    rotated_to: Mapped[str | None] = mapped_column(String(36))
    request_id: Mapped[str | None] = mapped_column(String(100))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    total_requests: Mapped[int] = mapped_column(BigInteger, server_default="0")
    created_at: Mapped[datetime] = _now()


class ApiKeyAudit(Base):
    __tablename__ = "api_key_audit"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(36))
    api_key_id: Mapped[str] = mapped_column(String(36), index=True)
    action: Mapped[str] = mapped_column(String(50))
    actor_type: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[str] = mapped_column(String(255))
    old_value: Mapped[dict[str, Any]] = mapped_column(JSONB)
    new_value: Mapped[dict[str, Any]] = mapped_column(JSONB)
    request_id: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = _now()


class TenantState(Base):
    """What api_keys knows of a tenant, mirrored from account (GetTenant and its events). The row is
    also the per-tenant lock that serialises quota checks."""

    __tablename__ = "tenant_state"

    tenant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    status: Mapped[str] = mapped_column(String(50))
    max_api_keys: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = _now()
