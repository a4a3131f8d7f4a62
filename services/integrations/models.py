from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, DateTime, Index, Integer, LargeBinary, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

from services.common import db, events
from services.integrations import policy


class Base(DeclarativeBase):
    metadata = db.metadata()


events.tables(Base.metadata)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Managed:
    """Columns every registered resource has: identity, lifecycle, credential, latest validation."""

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(20))
    # encrypted://… (sealed here) or env://… (dev); never a raw secret.
    credential_ref: Mapped[str] = mapped_column(Text, server_default="")
    config: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    health_state: Mapped[str] = mapped_column(String(20), server_default="unknown")
    health_message: Mapped[str | None] = mapped_column(Text)
    health_checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    latency_ms: Mapped[int] = mapped_column(Integer, server_default="0")
    created_by: Mapped[str | None] = mapped_column(String(255))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    @declared_attr.directive
    @classmethod
    def __table_args__(cls) -> tuple[Any, ...]:
        name = cls.__tablename__  # type: ignore[attr-defined]
        lifecycle: policy.Lifecycle = cls.LIFECYCLE  # type: ignore[attr-defined]
        return (
            # Names are unique among a tenant's live rows; a deleted name can be reused.
            Index(
                f"uq_{name}_tenant_name", "tenant_id", "name", unique=True, postgresql_where=text("deleted_at IS NULL")
            ),
            Index(f"ix_{name}_tenant_created", "tenant_id", "created_at", "id"),
            Index(f"ix_{name}_tenant_status", "tenant_id", "status"),
            CheckConstraint(_in("status", lifecycle.statuses), name="status"),
            CheckConstraint(_in("health_state", policy.HEALTH_STATES), name="health_state"),
            *cls.EXTRA_ARGS,  # type: ignore[attr-defined]
        )


class Integration(Managed, Base):
    __tablename__ = "integration"
    LIFECYCLE = policy.INTEGRATION
    EXTRA_ARGS = (
        CheckConstraint(_in("provider_type", policy.PROVIDERS), name="provider_type"),
        CheckConstraint("budget_limit_cents >= 0 AND token_limit_month >= 0 AND rate_limit_rpm >= 0", name="limits"),
        Index("ix_integration_tenant_provider", "tenant_id", "provider_type"),
    )

    provider_type: Mapped[str] = mapped_column(String(50))
    default_model: Mapped[str | None] = mapped_column(String(100))
    budget_limit_cents: Mapped[int] = mapped_column(Integer, server_default="0")
    token_limit_month: Mapped[int] = mapped_column(BigInteger, server_default="0")
    rate_limit_rpm: Mapped[int] = mapped_column(Integer, server_default="0")


class Connector(Managed, Base):
    __tablename__ = "connector"
    LIFECYCLE = policy.CONNECTOR
    EXTRA_ARGS = (CheckConstraint(_in("connector_type", policy.CONNECTOR_TYPES), name="connector_type"),)

    connector_type: Mapped[str] = mapped_column(String(20))
    endpoint: Mapped[str] = mapped_column(Text, server_default="")
    capabilities: Mapped[list[str]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    connection_count: Mapped[int] = mapped_column(Integer, server_default="0")
    error_count: Mapped[int] = mapped_column(Integer, server_default="0")
    last_connected: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Datasource(Managed, Base):
    __tablename__ = "datasource"
    LIFECYCLE = policy.DATASOURCE
    EXTRA_ARGS = (CheckConstraint(_in("source_type", policy.SOURCE_TYPES), name="source_type"),)

    source_type: Mapped[str] = mapped_column(String(20))
    endpoint: Mapped[str] = mapped_column(Text, server_default="")
    description: Mapped[str] = mapped_column(String(1000), server_default="")
    tags: Mapped[list[str]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))


class TenantKey(Base):
    """A tenant's data key, wrapped by the KEK named in kek_id (never stored in clear)."""

    __tablename__ = "tenant_key"

    tenant_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    kek_id: Mapped[str] = mapped_column(String(64))
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    rotated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
