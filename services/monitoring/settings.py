from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MONITORING_", frozen=True)

    # account's EventLog, followed for tenant.* (the lifecycle block); empty: every tenant counts as active.
    account_addr: str = ""
    # integrations' CheckIntegrations: which integrations a tenant owns (ingest); empty: ingest answers
    # UNAVAILABLE.
    integrations_addr: str = ""
    # How long an owned integration is taken as owned without asking again (a deletion shows within it).
    owned_cache_seconds: float = 60.0
