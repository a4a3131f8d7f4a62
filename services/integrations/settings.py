import base64

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings

# A well-known key for local development only: the validator refuses it in any other environment.
DEV_KEK_ID = "dev"
DEV_KEK = SecretStr(base64.b64encode(b"aos-dev-only-key-encryption-key!").decode())


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="INTEGRATIONS_", frozen=True)

    # "dev" allows the dev KEK and outbound checks to loopback.
    environment: str = "dev"
    # Environment variables a tenant may name as `credential_ref: env://NAME` (env: a JSON list). Empty by
    # default: a tenant must never choose which of this process's variables is sent to its URL.
    env_credential_allowlist: frozenset[str] = frozenset()
    # Key-encryption keys by id (env: JSON object of id → base64 32 bytes). Keep retired KEKs here until
    # `rotate-kek` has re-wrapped every data key under active_kek.
    keks: dict[str, SecretStr] = Field(default_factory=lambda: {DEV_KEK_ID: DEV_KEK})
    active_kek: str = DEV_KEK_ID
    # Outbound checks (:test) refuse private, link-local and metadata addresses; loopback only when
    # allowed (default: in dev only).
    allow_loopback: bool | None = None
    allow_private_networks: bool = False
    probe_timeout_seconds: float = 2.0
    # Told right after a change that may alter activation evidence (best effort; see common.notify).
    onboarding_addr: str = ""
    # Usage for the limits route (GetIntegrationUsage); without it the route answers UNAVAILABLE.
    monitoring_addr: str = ""

    @property
    def dev(self) -> bool:
        return self.environment == "dev"

    @property
    def loopback_allowed(self) -> bool:
        return self.dev if self.allow_loopback is None else self.allow_loopback

    @model_validator(mode="after")
    def _keys(self) -> "Settings":
        if self.active_kek not in self.keks:
            raise ValueError(f"active_kek {self.active_kek!r} is not among keks")
        for kek_id, key in self.keks.items():
            if len(base64.b64decode(key.get_secret_value(), validate=True)) != 32:
                raise ValueError(f"KEK {kek_id!r} must be base64 of 32 bytes")
            if not self.dev and key.get_secret_value() == DEV_KEK.get_secret_value():
                raise ValueError("the dev KEK is refused outside environment=dev")
        return self
