from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.onboarding.models import OnboardingAudit, OnboardingState, OnboardingTransition
from services.onboarding.policy import State


async def ensure(session: AsyncSession, tenant_id: str, tenant_created_at: datetime | None = None) -> None:
    """Creates the tenant's row at CREATED unless it exists. A known creation time (from account) replaces the
    "first seen" time a row created lazily got, so stalled detection counts from the real signup."""
    stmt = insert(OnboardingState).values(
        tenant_id=tenant_id, state=State.CREATED, tenant_created_at=tenant_created_at or datetime.now(UTC)
    )
    if tenant_created_at is None:
        await session.execute(stmt.on_conflict_do_nothing(index_elements=["tenant_id"]))
        return
    least = func.least(OnboardingState.tenant_created_at, stmt.excluded.tenant_created_at)
    await session.execute(stmt.on_conflict_do_update(index_elements=["tenant_id"], set_={"tenant_created_at": least}))


async def get(session: AsyncSession, tenant_id: str) -> OnboardingState | None:
    return await session.get(OnboardingState, tenant_id)


# The row lock taken in `old` makes concurrent advances queue; each re-reads the committed state and only the
# first one still finds `state < target`, so exactly one transition is written.
_ADVANCE = text(
    "UPDATE onboarding_state AS s SET state = :target, updated_at = now() "
    "FROM (SELECT tenant_id, state FROM onboarding_state WHERE tenant_id = :t FOR UPDATE) AS old "
    "WHERE s.tenant_id = old.tenant_id AND s.state < :target RETURNING old.state"
)


async def advance(session: AsyncSession, tenant_id: str, target: int) -> int | None:
    """The state before the move, or None when the tenant was already at or above target."""
    row = (await session.execute(_ADVANCE, {"t": tenant_id, "target": target})).first()
    return None if row is None else int(row[0])


async def add_transition(session: AsyncSession, row: OnboardingTransition) -> None:
    session.add(row)
    await session.flush()


async def add_audit(session: AsyncSession, row: OnboardingAudit) -> None:
    session.add(row)
    await session.flush()


async def stalled(session: AsyncSession, before: datetime, limit: int = 1000) -> list[OnboardingState]:
    query = (
        select(OnboardingState)
        .where(OnboardingState.state < State.COMPLETE, OnboardingState.tenant_created_at < before)
        .order_by(OnboardingState.tenant_created_at)
        .limit(limit)
    )
    return list((await session.scalars(query)).all())
