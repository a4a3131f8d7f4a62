import uvloop

from services.account import server
from services.account.settings import Settings
from services.common.server import run

if __name__ == "__main__":
    # Settings are read once, here; database_url comes from the environment.
    uvloop.run(run("account", Settings(), server.build))  # type: ignore[call-arg, arg-type]
