from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MONITORING_", frozen=True)

    # account's EventLog, followed for tenant.* (the lifecycle block); empty: every tenant counts as active.
    account_addr: str = ""
