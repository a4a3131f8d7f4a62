from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import exists, func, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common.errors import AlreadyExists, FailedPrecondition, NotFound
from services.integrations.crypto import Keyring
from services.integrations.models import Connector, Datasource, Integration, TenantKey
from services.integrations.policy import Machine

Row = TypeVar("Row", Integration, Connector, Datasource)


def conflict(message: str, reason: str, **metadata: str) -> FailedPrecondition:
    """FAILED_PRECONDITION that REST callers see as 409 (an illegal transition, not bad input)."""
    error = FailedPrecondition(message, reason=reason, metadata=metadata)
    error.http_status = 409
    return error


def _machine(model: type[Row]) -> Machine:
    machine: Machine = model.MACHINE
    return machine


def _taken(model: type[Row], name: str, exc: IntegrityError) -> AlreadyExists:
    noun = _machine(model).noun.capitalize()
    return AlreadyExists(f"{noun} with name '{name}' already exists", reason="NAME_TAKEN", metadata={"name": name})


async def add(session: AsyncSession, row: Row) -> Row:
    session.add(row)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise _taken(type(row), row.name, exc) from exc
    await session.refresh(row)
    return row


async def get(session: AsyncSession, model: type[Row], tenant_id: str, row_id: str) -> Row:
    row = await session.scalar(select(model).where(model.id == row_id, model.tenant_id == tenant_id))
    if row is None:
        noun = _machine(model).noun
        raise NotFound(f"{noun} not found", reason=f"{noun.upper()}_NOT_FOUND")
    return row


async def list_rows(
    session: AsyncSession,
    model: type[Row],
    tenant_id: str,
    filters: dict[str, str],
    after: tuple[datetime, str] | None,
    offset: int,
    limit: int,
) -> tuple[list[Row], int]:
    """Live rows, newest first; keyset after `after`, or the legacy offset. Returns the page and the total."""
    scope = [model.tenant_id == tenant_id, model.deleted_at.is_(None)]
    scope += [getattr(model, column) == value for column, value in filters.items() if value]
    total = await session.scalar(select(func.count()).select_from(model).where(*scope)) or 0
    query = select(model).where(*scope)
    if after:
        # A row comparison, which PostgreSQL turns into an index range (an OR would only filter).
        query = query.where(tuple_(model.created_at, model.id) < tuple_(*after))
    query = query.order_by(model.created_at.desc(), model.id.desc()).offset(offset).limit(limit)
    return list((await session.scalars(query)).all()), total


async def transition(session: AsyncSession, model: type[Row], tenant_id: str, row_id: str, action: str) -> Row:
    """Conditional update: the row moves only if, when it is locked, its status allows `action`; concurrent
    callers therefore serialize in the database and the status never leaves the machine."""
    machine = _machine(model)
    values: dict[str, Any] = {"status": machine.target(action), "updated_at": func.now()}
    if action == "delete":
        values["deleted_at"] = func.now()
    stmt = (
        update(model)
        .where(
            model.id == row_id,
            model.tenant_id == tenant_id,
            model.deleted_at.is_(None),
            model.status.in_(machine.sources(action)),
        )
        .values(**values)
        .returning(model)
        .execution_options(synchronize_session=False)
    )
    moved = (await session.execute(stmt)).scalar_one_or_none()
    if moved is not None:
        return moved
    row = await get(session, model, tenant_id, row_id)
    raise conflict(
        machine.refusal(action, row.status, row.deleted_at is not None),
        "ILLEGAL_TRANSITION",
        status=row.status,
        deleted=str(row.deleted_at is not None).lower(),
    )


async def change(session: AsyncSession, model: type[Row], tenant_id: str, row_id: str, values: dict[str, Any]) -> Row:
    """Updates a live row; a deleted one refuses (409), an unknown one is NOT_FOUND."""
    stmt = (
        update(model)
        .where(model.id == row_id, model.tenant_id == tenant_id, model.deleted_at.is_(None))
        .values(**values, updated_at=func.now())
        .returning(model)
        .execution_options(synchronize_session=False)
    )
    try:
        changed = (await session.execute(stmt)).scalar_one_or_none()
    except IntegrityError as exc:
        raise _taken(model, str(values.get("name", "")), exc) from exc
    if changed is not None:
        return changed
    await get(session, model, tenant_id, row_id)
    raise conflict(f"{_machine(model).noun} is deleted", "DELETED")


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


async def rewrap_all(sessions: async_sessionmaker[AsyncSession], keyring: Keyring) -> int:
    """Re-wraps every data key not yet under the active KEK, one short transaction per tenant (readers never
    wait long and the service keeps serving). The data keys themselves do not change."""
    done = 0
    while True:
        async with sessions.begin() as session:
            row = await session.scalar(
                select(TenantKey).where(TenantKey.kek_id != keyring.active).limit(1).with_for_update(skip_locked=True)
            )
            if row is None:
                return done
            plain = keyring.unwrap(row.tenant_id, row.kek_id, row.wrapped_key)
            row.kek_id, row.wrapped_key = keyring.wrap(row.tenant_id, plain)
            row.rotated_at = func.now()
            done += 1
