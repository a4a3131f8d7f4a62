"""What every service's Alembic env.py shares: where the URL comes from and the async engine."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from alembic.config import Config
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from services.common.settings import async_url


def config(ini: Path, url: str) -> Config:
    """An Alembic config for a service's alembic.ini, bound to one database URL."""
    cfg = Config(str(ini))
    cfg.attributes["url"] = url
    return cfg


async def run(cfg: Config, env_var: str, migrate: Callable[[Connection], None]) -> None:
    url = cfg.attributes.get("url") or os.environ.get(env_var)
    if not url:
        raise SystemExit(f"set {env_var} (or pass a URL) to run migrations")
    engine = create_async_engine(async_url(url), poolclass=pool.NullPool)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(migrate)
    finally:
        await engine.dispose()
