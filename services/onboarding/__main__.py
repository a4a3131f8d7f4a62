import uvloop

from services.common.server import run
from services.onboarding import server
from services.onboarding.settings import Settings

if __name__ == "__main__":
    # Settings are read once, here; database_url comes from the environment.
    uvloop.run(run("onboarding", Settings(), server.build))  # type: ignore[call-arg, arg-type]
