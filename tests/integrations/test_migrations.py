"""The integrations migrations: upgrade to head, nothing left for autogenerate, downgrade and upgrade again."""

import asyncio
from pathlib import Path

from alembic import command

from cli import stack
from services.common.migrations import config

INI = Path(stack.ROOT) / "services" / "integrations" / "alembic.ini"


async def test_upgrade_check_downgrade_upgrade(pg_base: str) -> None:
    name = "scratch_integrations_migrations"
    await stack._create_databases(pg_base, [name], True)
    cfg = config(INI, stack.database_url(pg_base, name))

    def cycle() -> None:
        command.upgrade(cfg, "head")
        command.check(cfg)  # raises when the models and the migrations disagree
        command.downgrade(cfg, "base")
        command.upgrade(cfg, "head")

    await asyncio.to_thread(cycle)
