from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Identity, Index, Integer, String, Text, UniqueConstraint, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common import db, events


class Base(DeclarativeBase):
    metadata = db.metadata()


events.tables(Base.metadata)


def _now() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class Tenant(Base):
    __tablename__ = "tenant"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    # The identity provider's organisation (its tokens' organisation claim) this tenant is; one tenant each.
    org_id: Mapped[str] = mapped_column(String(255), unique=True)
    plan: Mapped[str] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(50))
    suspended_reason: Mapped[str | None] = mapped_column(Text)
    billing_email: Mapped[str | None] = mapped_column(String(255))
    max_workers: Mapped[int] = mapped_column(Integer)
    max_runs_per_day: Mapped[int] = mapped_column(Integer)
    max_concurrent_runs: Mapped[int] = mapped_column(Integer)
    max_tokens_per_month: Mapped[int] = mapped_column(BigInteger)
    max_api_keys: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class Member(Base):
    __tablename__ = "member"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = _now()


class Project(Base):
    __tablename__ = "project"
    __table_args__ = (
        UniqueConstraint("tenant_id", "request_id"),
        Index("ix_project_tenant_created", "tenant_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(1000))
    status: Mapped[str] = mapped_column(String(20))
    request_id: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class SdkAttestation(Base):
    __tablename__ = "sdk_attestation"
    __table_args__ = (UniqueConstraint("tenant_id", "attestation_hash", name="uq_sdk_attestations_tenant_hash"),)

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    sdk_version: Mapped[str] = mapped_column(String(100))
    sdk_language: Mapped[str] = mapped_column(String(50))
    client_id: Mapped[str | None] = mapped_column(String(200))
    attested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    attestation_hash: Mapped[str] = mapped_column(String(64))
