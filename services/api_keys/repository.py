from __future__ import annotations

from typing import Any

from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from services.api_keys.models import ApiKey, ApiKeyAudit, TenantState
from services.common import paging
from services.common.errors import NotFound

# Replicas drop cached verdicts when this channel says so (the NOTIFY is delivered at commit).
CHANNEL = "api_keys_cache"


def valid() -> ColumnElement[bool]:
    """SPEC 0.2: active (so neither revoked nor disabled) and not expired."""
    return and_(ApiKey.status == "active", or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > func.now()))


def by_status(status: str | None) -> list[ColumnElement[bool]]:
    """The filter for a status as customers see it; none without a status."""
    if status is None:
        return []
    if status == "active":
        return [valid()]
    if status == "expired":
        return [and_(ApiKey.status == "active", ApiKey.expires_at <= func.now())]
    return [ApiKey.status == status]


async def lock_tenant(session: AsyncSession, tenant_id: str, status: str, max_api_keys: int) -> TenantState:
    """Refreshes the mirrored tenant row and holds its lock until commit: concurrent creates of one
    tenant queue here, so the count below is never read by two of them at once."""
    stmt = insert(TenantState).values(tenant_id=tenant_id, status=status, max_api_keys=max_api_keys)
    stmt = stmt.on_conflict_do_update(
        index_elements=[TenantState.tenant_id],
        set_={"status": status, "max_api_keys": max_api_keys, "updated_at": func.now()},
    )
    return (await session.execute(stmt.returning(TenantState))).scalar_one()


async def mirror_tenant(session: AsyncSession, tenant_id: str, status: str, max_api_keys: int | None) -> None:
    stmt = insert(TenantState).values(tenant_id=tenant_id, status=status, max_api_keys=max_api_keys)
    values: dict[str, Any] = {"status": status, "updated_at": func.now()}
    if max_api_keys is not None:
        values["max_api_keys"] = max_api_keys
    await session.execute(stmt.on_conflict_do_update(index_elements=[TenantState.tenant_id], set_=values))


async def count_valid(session: AsyncSession, tenant_id: str) -> int:
    query = select(func.count()).select_from(ApiKey).where(ApiKey.tenant_id == tenant_id, valid())
    return int(await session.scalar(query) or 0)


async def by_request_id(session: AsyncSession, tenant_id: str, request_id: str | None) -> ApiKey | None:
    if request_id is None:
        return None
    return await session.scalar(select(ApiKey).where(ApiKey.tenant_id == tenant_id, ApiKey.request_id == request_id))


async def add(session: AsyncSession, key: ApiKey) -> ApiKey:
    session.add(key)
    await session.flush()
    await session.refresh(key)
    return key


async def get(session: AsyncSession, tenant_id: str, key_id: str, *, lock: bool = False) -> ApiKey:
    query = select(ApiKey).where(ApiKey.id == key_id, ApiKey.tenant_id == tenant_id)
    key = await session.scalar(query.with_for_update() if lock else query)
    if key is None:
        raise NotFound("API key not found", reason="API_KEY_NOT_FOUND")
    return key


async def change(session: AsyncSession, tenant_id: str, key_id: str, **values: Any) -> ApiKey:
    """Updates one key of the tenant; another tenant's id is a missing id and changes nothing."""
    stmt = (
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.tenant_id == tenant_id)
        .values(**values)
        .returning(ApiKey)
        # populate_existing: the session may already hold this row (read under lock just before).
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    key = (await session.execute(stmt)).scalar_one_or_none()
    if key is None:
        raise NotFound("API key not found", reason="API_KEY_NOT_FOUND")
    return key


async def list_keys(
    session: AsyncSession, tenant_id: str, where: list[ColumnElement[bool]], page: paging.Page
) -> tuple[list[ApiKey], int]:
    """The page's rows (newest first, one more than the page when another follows) and the filtered total."""
    scope = [ApiKey.tenant_id == tenant_id, *where]
    total = await session.scalar(select(func.count()).select_from(ApiKey).where(*scope)) or 0
    query = page.apply(select(ApiKey).where(*scope), ApiKey.created_at, ApiKey.id)
    return list((await session.scalars(query)).all()), total


async def audit(session: AsyncSession, row: ApiKeyAudit) -> None:
    session.add(row)
    await session.flush()


async def notify(session: AsyncSession, what: str, ident: str) -> None:
    await session.execute(text("SELECT pg_notify(:c, :p)"), {"c": CHANNEL, "p": f"{what}:{ident}"})
