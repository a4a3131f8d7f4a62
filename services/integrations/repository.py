from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import ColumnElement, exists, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.errors import AlreadyExists, NotFound
from services.common.paging import Page
from services.integrations.crypto import Keyring
from services.integrations.models import Connector, Datasource, Integration, TenantKey
from services.integrations.policy import Conflict, Lifecycle

Row = TypeVar("Row", Integration, Connector, Datasource)


def _lifecycle(model: type[Row]) -> Lifecycle:
    lifecycle: Lifecycle = model.LIFECYCLE
    return lifecycle


def _taken(model: type[Row], name: str, exc: IntegrityError) -> AlreadyExists:
    noun = _lifecycle(model).noun.capitalize()
    return AlreadyExists(f"{noun} with name '{name}' already exists", reason="NAME_TAKEN", metadata={"name": name})


async def add(session: AsyncSession, row: Row) -> Row:
    session.add(row)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise _taken(type(row), row.name, exc) from exc
    await session.refresh(row)
    return row


async def get(session: AsyncSession, model: type[Row], tenant_id: str, row_id: str, *, lock: bool = False) -> Row:
    query = select(model).where(model.id == row_id, model.tenant_id == tenant_id)
    row = await session.scalar(query.with_for_update() if lock else query)
    if row is None:
        noun = _lifecycle(model).noun
        raise NotFound(f"{noun} not found", reason=f"{noun.upper()}_NOT_FOUND")
    return row


def _live(model: type[Row], tenant_id: str, filters: dict[str, str]) -> list[ColumnElement[bool]]:
    """The tenant's rows that are not deleted, with the filters that have a value."""
    scope = [model.tenant_id == tenant_id, model.deleted_at.is_(None)]
    return scope + [getattr(model, column) == value for column, value in filters.items() if value]


async def page(session: AsyncSession, model: type[Row], tenant_id: str, filters: dict[str, str], at: Page) -> list[Row]:
    """Live rows, newest first, as `at` asks (keyset or legacy offset, one row past the page)."""
    query = at.apply(select(model).where(*_live(model, tenant_id, filters)), model.created_at, model.id)
    return list((await session.scalars(query)).all())


async def count(session: AsyncSession, model: type[Row], tenant_id: str, filters: dict[str, str]) -> int:
    return await session.scalar(select(func.count()).select_from(model).where(*_live(model, tenant_id, filters))) or 0


async def transition(session: AsyncSession, model: type[Row], tenant_id: str, row_id: str, action: str) -> Row:
    """Conditional update: the row moves only if, when it is locked, its status allows `action`; concurrent
    callers therefore serialize in the database and the status never leaves the lifecycle."""
    lifecycle = _lifecycle(model)
    values: dict[str, Any] = {"status": lifecycle.target(action), "updated_at": func.now()}
    if action == "delete":
        values["deleted_at"] = func.now()
    stmt = (
        update(model)
        .where(
            model.id == row_id,
            model.tenant_id == tenant_id,
            model.deleted_at.is_(None),
            model.status.in_(lifecycle.sources(action)),
        )
        .values(**values)
        .returning(model)
        .execution_options(synchronize_session=False)
    )
    moved = (await session.execute(stmt)).scalar_one_or_none()
    if moved is not None:
        return moved
    row = await get(session, model, tenant_id, row_id)
    deleted = row.deleted_at is not None
    raise Conflict(
        lifecycle.refusal(action, row.status, deleted),
        reason="ILLEGAL_TRANSITION",
        metadata={"status": row.status, "deleted": str(deleted).lower()},
    )


async def change(session: AsyncSession, model: type[Row], tenant_id: str, row_id: str, values: dict[str, Any]) -> Row:
    """Updates a live row; a deleted one is a Conflict, an unknown one is NOT_FOUND."""
    stmt = (
        update(model)
        .where(model.id == row_id, model.tenant_id == tenant_id, model.deleted_at.is_(None))
        .values(**values, updated_at=func.now())
        .returning(model)
        # populate_existing: the session may hold this row already (read under lock just before).
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    try:
        changed = (await session.execute(stmt)).scalar_one_or_none()
    except IntegrityError as exc:
        raise _taken(model, str(values.get("name", "")), exc) from exc
    if changed is not None:
        return changed
    await get(session, model, tenant_id, row_id)
    raise Conflict(f"{_lifecycle(model).noun} is deleted", reason="DELETED")


async def evidence(session: AsyncSession, tenant_id: str) -> bool:
    """SPEC 0.3: an enabled, live integration (or connected connector) whose latest validation passed."""
    integration = exists().where(
        Integration.tenant_id == tenant_id,
        Integration.status == "enabled",
        Integration.deleted_at.is_(None),
        Integration.health_state == "healthy",
    )
    connector = exists().where(
        Connector.tenant_id == tenant_id,
        Connector.status == "connected",
        Connector.deleted_at.is_(None),
        Connector.health_state == "healthy",
    )
    return bool(await session.scalar(select(or_(integration, connector))))


async def data_key(session: AsyncSession, keyring: Keyring, tenant_id: str, *, create: bool) -> bytes | None:
    """The tenant's data key (unwrapped in memory only); created on first use when `create`."""
    row = await session.get(TenantKey, tenant_id)
    if row is None and create:
        kek_id, wrapped = keyring.wrap(tenant_id, keyring.new_data_key())
        stmt = insert(TenantKey).values(tenant_id=tenant_id, kek_id=kek_id, wrapped_key=wrapped)
        await session.execute(stmt.on_conflict_do_nothing(index_elements=["tenant_id"]))
        row = await session.get(TenantKey, tenant_id, populate_existing=True)
    return None if row is None else keyring.unwrap(tenant_id, row.kek_id, row.wrapped_key)


async def rewrap_next(session: AsyncSession, keyring: Keyring) -> bool:
    """Re-wraps one data key not yet under the active KEK (False when none is left); the data key itself
    does not change. Rows another rotation holds are skipped, not waited for."""
    row = await session.scalar(
        select(TenantKey).where(TenantKey.kek_id != keyring.active).limit(1).with_for_update(skip_locked=True)
    )
    if row is None:
        return False
    plain = keyring.unwrap(row.tenant_id, row.kek_id, row.wrapped_key)
    row.kek_id, row.wrapped_key = keyring.wrap(row.tenant_id, plain)
    row.rotated_at = func.now()
    return True


async def owned(session: AsyncSession, tenant_id: str, ids: list[str]) -> set[str]:
    """Those of `ids` that name the tenant's integrations that are not deleted."""
    query = select(Integration.id).where(
        Integration.tenant_id == tenant_id, Integration.id.in_(ids), Integration.deleted_at.is_(None)
    )
    return set((await session.scalars(query)).all())
