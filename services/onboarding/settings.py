from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ONBOARDING_", frozen=True)

    # Peers, "host:port"; empty = not deployed (its evidence is then unavailable, never "missing").
    account_addr: str = ""
    api_keys_addr: str = ""
    integrations_addr: str = ""
    # Deadline of each evidence or verify call; the predicate's latency is the slowest source.
    peer_timeout_seconds: float = 1.0
    # Cached key verdicts and tenant states live at most this long (revocation reaches the gate within it).
    cache_seconds: float = 1.0
    # Event consumers: reconnect backoff bounds.
    consumer_backoff_seconds: float = 0.2
    consumer_max_backoff_seconds: float = 5.0
    api_base_url: str = "https://api.agenticverz.com"
    docs_url: str = "https://docs.agenticverz.com/sdk"
