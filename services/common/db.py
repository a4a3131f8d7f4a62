from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from sqlalchemy import MetaData, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.util import greenlet_spawn

# Stable constraint names, so that Alembic autogenerate and downgrades can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def metadata() -> MetaData:
    return MetaData(naming_convention=NAMING_CONVENTION)


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=pool_size)
    event.listen(engine.sync_engine.pool, "checkout", _drop_closed)
    return engine


def _drop_closed(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """A connection the server closed (a restart, a terminated backend) is known as closed to asyncpg
    without asking the server: the pool replaces it with a new one before handing it out, so a service
    recovers by itself once PostgreSQL is back. pool_pre_ping did the same with a round trip per checkout.
    A connection that dies while in use fails that one RPC with UNAVAILABLE (the interceptor's mapping)."""
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("closed by the server")


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


class Row(asyncpg.Record):  # type: ignore[misc]
    """A row of a read, whose columns are also attributes (as an ORM object's), so that one response builder
    serves both."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class Reader:
    """A pooled connection for reads of one statement each: asyncpg's own, outside any transaction (no
    BEGIN/ROLLBACK round trips), each statement prepared once per connection by asyncpg's statement cache.
    The ORM session costs several times the CPU of such a read; writes keep it."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    async def rows(self, sql: str, *args: Any) -> list[Row]:
        rows: list[Row] = await self._connection.fetch(sql, *args, record_class=Row)
        return rows

    async def row(self, sql: str, *args: Any) -> Row | None:
        row: Row | None = await self._connection.fetchrow(sql, *args, record_class=Row)
        return row

    async def value(self, sql: str, *args: Any) -> Any:
        return await self._connection.fetchval(sql, *args)


class Reads:
    """`async with reads() as reader:` borrows a connection of the engine's pool for reads (see Reader)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @contextlib.asynccontextmanager
    async def __call__(self) -> AsyncIterator[Reader]:
        borrowed = await self._engine.raw_connection()
        try:
            yield Reader(borrowed.driver_connection)
        finally:
            await greenlet_spawn(borrowed.close)
