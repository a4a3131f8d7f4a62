"""`python -m services.integrations` serves; `python -m services.integrations rotate-kek` re-wraps every
tenant data key under the active KEK (run it after deploying the new KEK beside the old ones)."""

import sys

import uvloop

from services.common import db
from services.common.server import configure_logging, run
from services.integrations import crypto, repository, server
from services.integrations.settings import Settings


async def rotate_kek(settings: Settings) -> None:
    configure_logging(settings.log_level)
    engine = db.create_engine(settings.database_url.get_secret_value())
    sessions, keyring = db.sessionmaker(engine), crypto.Keyring(settings.keks, settings.active_kek)
    count = 0
    # One short transaction per tenant: readers never wait long and the service keeps serving.
    while True:
        async with sessions.begin() as session:
            if not await repository.rewrap_next(session, keyring):
                break
        count += 1
    await engine.dispose()
    print(f"re-wrapped {count} data keys under KEK {settings.active_kek!r}")


if __name__ == "__main__":
    settings = Settings()  # type: ignore[call-arg]  # read once, here; database_url comes from the environment
    if sys.argv[1:] == ["rotate-kek"]:
        uvloop.run(rotate_kek(settings))
    else:
        uvloop.run(run("integrations", settings, server.build))  # type: ignore[arg-type]
