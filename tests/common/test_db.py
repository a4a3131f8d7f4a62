import asyncio

import pytest

from services.common import db
from services.common.settings import async_url


async def test_a_connection_the_server_closed_is_replaced_at_checkout(db_urls: dict[str, str]) -> None:
    engine, killer = (db.create_engine(async_url(db_urls["account"]), pool_size=1) for _ in range(2))
    reads = db.Reads(engine)
    try:
        async with reads() as reader:
            pid = await reader.value("SELECT pg_backend_pid()")
        async with db.Reads(killer)() as other:  # a backend of the same role may end another
            assert await other.value("SELECT pg_terminate_backend($1)", pid)
        await asyncio.sleep(0.3)  # asyncpg reads the server's goodbye and the end of the stream
        async with reads() as reader:  # no error: the pool replaced it without asking the server
            assert await reader.value("SELECT pg_backend_pid()") != pid
    finally:
        await engine.dispose()
        await killer.dispose()


async def test_a_row_reads_its_columns_as_attributes(db_urls: dict[str, str]) -> None:
    engine = db.create_engine(async_url(db_urls["account"]), pool_size=1)
    try:
        async with db.Reads(engine)() as reader:
            row = await reader.row("SELECT 1 AS one")
            assert row is not None and row.one == 1 and row["one"] == 1
            with pytest.raises(AttributeError, match="two"):
                _ = row.two
            assert [r.n for r in await reader.rows("SELECT generate_series(1, 2) AS n")] == [1, 2]
    finally:
        await engine.dispose()
