from __future__ import annotations

from typing import Any

from sqlalchemy import and_, func, or_, select, text, true, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from services.api_keys.models import ApiKey, ApiKeyAudit, TenantState
from services.common import db, paging
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
    """One INSERT: the server defaults (created_at, total_requests) come back by its RETURNING."""
    session.add(key)
    await session.flush()
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


def _sql(where: list[ColumnElement[bool]]) -> str:
    """A filter as SQL text, so that the reads below share by_status's one definition of each status."""
    return str(and_(true(), *where).compile(compile_kwargs={"literal_binds": True}))


_KEY = ", ".join(c.name for c in ApiKey.__table__.columns if c.name != "key_hash")
# The list of each status filter; UNREVOKED is the legacy tenant list's default.
UNREVOKED = "unrevoked"
_LISTS = {
    status: paging.newest_first("api_key", _KEY, f"tenant_id = $5 AND {_sql(where)}")
    for status, where in [
        *((s, by_status(s)) for s in (None, "active", "expired", "revoked", "disabled")),
        (UNREVOKED, [ApiKey.status != "revoked"]),
    ]
}


async def list_keys(
    reader: db.Reader, tenant_id: str, status: str | None, page: paging.Page
) -> tuple[list[db.Row], int]:
    """The page's rows (newest first, one more than the page when another follows) and the total of the
    tenant's keys with `status` (as customers see it; None: all)."""
    return await paging.read(reader, _LISTS[status], page, tenant_id)


async def key(reader: db.Reader, tenant_id: str, key_id: str) -> db.Row:
    found = await reader.row(f"SELECT {_KEY} FROM api_key WHERE id = $1 AND tenant_id = $2", key_id, tenant_id)
    if found is None:
        raise NotFound("API key not found", reason="API_KEY_NOT_FOUND")
    return found


async def audit(session: AsyncSession, row: ApiKeyAudit) -> None:
    session.add(row)
    await session.flush()


async def notify(session: AsyncSession, what: str, ident: str) -> None:
    await session.execute(text("SELECT pg_notify(:c, :p)"), {"c": CHANNEL, "p": f"{what}:{ident}"})


_VALID_KEYS = f"SELECT count(*) FROM api_key WHERE tenant_id = $1 AND {_sql([valid()])}"


async def valid_keys(reader: db.Reader, tenant_id: str) -> int:
    return int(await reader.value(_VALID_KEYS, tenant_id))
