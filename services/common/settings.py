from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Settings every service has; each service subclasses it with its own env_prefix."""

    model_config = SettingsConfigDict(frozen=True)

    database_url: SecretStr
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 0
    # Prometheus /metrics over HTTP on grpc_host; 0 = not served.
    metrics_port: int = 0
    # OTLP/gRPC collector ("host:port") for traces; empty = no tracing (see common.tracing).
    otlp_endpoint: str = ""
    log_level: str = "INFO"
    grace_seconds: float = 5.0

    @field_validator("database_url")
    @classmethod
    def _asyncpg(cls, value: SecretStr) -> SecretStr:
        return SecretStr(async_url(value.get_secret_value()))


def async_url(url: str) -> str:
    """postgresql://… → postgresql+asyncpg://… (the driver every service uses)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url
