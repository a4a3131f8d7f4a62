import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from services.common.migrations import run
from services.monitoring.models import Base

target_metadata = Base.metadata


def _migrate(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


asyncio.run(run(context.config, "MONITORING_DATABASE_URL", _migrate))
