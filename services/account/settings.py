from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ACCOUNT_", frozen=True)

    # Told right after a project is created or archived (best effort; see common.notify).
    onboarding_addr: str = ""
    # The peers counting a tenant's usage (/tenant/usage, /tenant/quota/*); empty = not deployed (UNAVAILABLE).
    api_keys_addr: str = ""
    monitoring_addr: str = ""
    # Tenants one human may create in 24 hours (counted in the database, so concurrent signups cannot pass it).
    signups_per_day: int = 5
