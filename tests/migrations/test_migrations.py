"""Per service: upgrade head → no drift between models and migrations → downgrade base → upgrade head."""

import asyncio
import os

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from cli import stack
from services.common.migrations import config
from services.common.settings import async_url


async def tables(url: str) -> set[str]:
    engine = create_async_engine(async_url(url))
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
            return set(rows.scalars()) - {"alembic_version"}
    finally:
        await engine.dispose()


@pytest.mark.parametrize("svc", stack.services())
async def test_upgrade_check_downgrade_upgrade(pg_base: str, svc: str) -> None:
    urls = await asyncio.to_thread(stack.prepare_databases, pg_base, f"mig{os.getpid()}_", True)
    cfg = config(stack.ROOT / "services" / svc / "alembic.ini", urls[svc])
    migrated = await tables(urls[svc])
    assert {"event", "event_sequence"} <= migrated
    await asyncio.to_thread(command.check, cfg)  # raises when the models drifted from the migrations
    await asyncio.to_thread(command.downgrade, cfg, "base")
    assert await tables(urls[svc]) == set()
    await asyncio.to_thread(command.upgrade, cfg, "head")
    assert await tables(urls[svc]) == migrated
