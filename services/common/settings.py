from pydantic import SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common import tls


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
    # This service's certificate, its private key and the CA it trusts (PEM files, reloaded when they change).
    # There is no plaintext mode: without them the service refuses to start (see identity).
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_ca_file: str = ""

    def identity(self, name: str) -> tls.Identity:
        """This service as `name` (its certificate must say spiffe://aos.local/<name>)."""
        missing = [field for field in ("tls_cert_file", "tls_key_file", "tls_ca_file") if not getattr(self, field)]
        if missing:
            prefix = str(self.model_config.get("env_prefix", ""))
            names = ", ".join(f"{prefix}{field}".upper() for field in missing)
            raise ValueError(f"{name} serves and calls only over mutual TLS: set {names}")
        return tls.Identity(name, self.tls_cert_file, self.tls_key_file, self.tls_ca_file)

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
