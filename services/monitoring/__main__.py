import uvloop

from services.common.server import run
from services.monitoring import server
from services.monitoring.settings import Settings

if __name__ == "__main__":
    # Settings are read once, here; database_url comes from the environment.
    uvloop.run(run("monitoring", Settings(), server.build))  # type: ignore[call-arg, arg-type]
