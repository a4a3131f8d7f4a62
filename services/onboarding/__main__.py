import uvloop

from services.common import db, tracing
from services.common.server import configure_logging, serve
from services.onboarding import server
from services.onboarding.settings import Settings


async def main() -> None:
    settings = Settings()  # type: ignore[call-arg]  # database_url comes from the environment
    configure_logging(settings.log_level)
    stop_tracing = tracing.configure("onboarding", settings.otlp_endpoint)
    svc = server.build(settings, db.create_engine(settings.database_url.get_secret_value()))
    await serve(svc, settings.grpc_host, settings.grpc_port, settings.grace_seconds)
    if stop_tracing:
        stop_tracing()


if __name__ == "__main__":
    uvloop.run(main())
