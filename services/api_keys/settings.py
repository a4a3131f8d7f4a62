from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="API_KEYS_", frozen=True)

    account_addr: str = ""
    onboarding_addr: str = ""
    # Verify's in-process cache; revocations reach it through LISTEN/NOTIFY, not through a TTL.
    cache_size: int = 10_000
    # How often batched last_used_at/total_requests are written.
    usage_flush_seconds: float = 1.0
    # Connections of the lean asyncpg pool the verify miss path uses.
    verify_pool_size: int = 8
