"""The declarative base of monitoring's tables and the constraint helpers every table module uses."""

from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common import db, events, follow


class Base(DeclarativeBase):
    metadata = db.metadata()


events.tables(Base.metadata)
# Where this service is in account's event log (tenants.py).
CURSORS = follow.tables(Base.metadata)


def one_of(column: str, values: tuple[str, ...]) -> CheckConstraint:
    return CheckConstraint(f"{column} IN ({', '.join(repr(v) for v in values)})", name=column)


def non_negative(column: str) -> CheckConstraint:
    return CheckConstraint(f"{column} >= 0", name=column)


def stamped() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now())
