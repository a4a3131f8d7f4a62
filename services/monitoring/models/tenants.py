from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from services.monitoring.models.base import Base, stamped


class TenantLifecycle(Base):
    """A tenant's status as account's tenant.* events last said (a tenant never heard of is active)."""

    __tablename__ = "tenant_lifecycle"

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    status: Mapped[str] = mapped_column(String(20))
    updated_at: Mapped[datetime] = stamped()
