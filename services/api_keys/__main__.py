import uvloop

from services.api_keys import server
from services.api_keys.settings import Settings
from services.common.server import run

if __name__ == "__main__":
    # Settings are read once, here; database_url comes from the environment.
    uvloop.run(run("api_keys", Settings(), server.build))  # type: ignore[call-arg, arg-type]
