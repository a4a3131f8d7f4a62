"""Onboarding's migrations match its models and are reversible."""

import os
from pathlib import Path

from alembic import command

from cli import stack
from services.common.migrations import config

INI = Path(__file__).resolve().parents[2] / "services" / "onboarding" / "alembic.ini"


def test_upgrade_check_downgrade_upgrade(pg_base: str) -> None:
    url = stack.prepare_databases(pg_base, f"t{os.getpid()}_mig_", fresh=True)["onboarding"]
    cfg = config(INI, url)
    command.check(cfg)  # no drift between models and the migrated schema
    command.downgrade(cfg, "base")
    command.upgrade(cfg, "head")
    command.check(cfg)
