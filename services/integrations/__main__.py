"""`python -m services.integrations` serves; `python -m services.integrations rotate-kek` re-wraps every
tenant data key under the active KEK (run it after deploying the new KEK beside the old ones)."""

import sys

import uvloop

from services.common import db, tracing
from services.common.server import configure_logging, serve
from services.integrations import crypto, repository, server
from services.integrations.settings import Settings


async def main() -> None:
    settings = Settings()  # type: ignore[call-arg]  # database_url comes from the environment
    configure_logging(settings.log_level)
    engine = db.create_engine(settings.database_url.get_secret_value())
    if sys.argv[1:] == ["rotate-kek"]:
        keyring = crypto.Keyring(settings.keks, settings.active_kek)
        count = await repository.rewrap_all(db.sessionmaker(engine), keyring)
        await engine.dispose()
        print(f"re-wrapped {count} data keys under KEK {settings.active_kek!r}")
        return
    stop_tracing = tracing.configure("integrations", settings.otlp_endpoint)
    await serve(server.build(settings, engine), settings.grpc_host, settings.grpc_port, settings.grace_seconds)
    if stop_tracing:
        stop_tracing()


if __name__ == "__main__":
    uvloop.run(main())
