from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings


def _idp(name: str, default: object) -> object:
    """A claim setting of the identity provider: AOS_IDP_<NAME>, the variables Envoy's config reads too."""
    return Field(default, validation_alias=AliasChoices(f"AOS_IDP_{name.upper()}", name))


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ONBOARDING_", frozen=True, populate_by_name=True)

    # Peers, "host:port"; empty = not deployed (its evidence is then unavailable, never "missing").
    account_addr: str = ""
    api_keys_addr: str = ""
    integrations_addr: str = ""
    # Deadline of each evidence or verify call; the predicate's latency is the slowest source.
    peer_timeout_seconds: float = 1.0
    # Cached key verdicts, memberships and tenant states live at most this long (revocation and role changes
    # reach the gate within it).
    cache_seconds: float = 1.0
    # Refused keys are remembered this long (a repeated wrong key costs api_keys nothing).
    negative_cache_seconds: float = 1.0
    # Failed key verifications per client address (an IPv6 /64) and per key prefix: a burst, then this rate;
    # beyond it, keys no cache vouches for answer 429 with Retry-After.
    key_failures_burst: int = 20
    key_failures_per_second: float = 1.0
    # Event consumers: reconnect backoff bounds.
    consumer_backoff_seconds: float = 0.2
    consumer_max_backoff_seconds: float = 5.0
    # The production veil (SPEC 2, scenario 16): a call without valid credentials is answered the plain 404 of an
    # unknown path, so it learns no route exists. AOS_VEIL, off in dev, on in the prod overlay.
    veil: bool = Field(False, validation_alias=AliasChoices("AOS_VEIL", "veil"))
    api_base_url: str = "https://api.agenticverz.com"
    docs_url: str = "https://docs.agenticverz.com/sdk"
    # The identity provider's claim names (AOS_IDP_*; Envoy has verified the token before the gate reads it).
    org_claim: str = _idp("org_claim", "org_id")  # type: ignore[assignment]
    email_claim: str = _idp("email_claim", "email")  # type: ignore[assignment]
    email_verified_claim: str = _idp("email_verified_claim", "email_verified")  # type: ignore[assignment]
    operator_claim: str = _idp("operator_claim", "groups")  # type: ignore[assignment]
    operator_value: str = _idp("operator_value", "aos-operators")  # type: ignore[assignment]
    max_lifetime_seconds: int = _idp("max_lifetime_seconds", 86_400)  # type: ignore[assignment]
