"""Configuration refuses what must never reach production: the dev KEK, unknown active KEKs, short keys."""

import base64

import pytest
from pydantic import ValidationError

from services.integrations.settings import DEV_KEK, Settings

URL = "postgresql://u@localhost/integrations"
PROD_KEK = base64.b64encode(b"p" * 32).decode()


def test_dev_defaults_allow_loopback_and_the_dev_kek() -> None:
    settings = Settings(database_url=URL)
    assert settings.dev and settings.loopback_allowed and settings.active_kek in settings.keks


def test_production_refuses_the_dev_kek_and_closes_loopback() -> None:
    with pytest.raises(ValidationError, match="dev KEK"):
        Settings(database_url=URL, environment="prod")
    prod = Settings(database_url=URL, environment="prod", keks={"p1": PROD_KEK}, active_kek="p1")
    assert not prod.loopback_allowed and not prod.dev
    with pytest.raises(ValidationError, match="dev KEK"):
        Settings(database_url=URL, environment="prod", keks={"p1": PROD_KEK, "old": DEV_KEK}, active_kek="p1")


@pytest.mark.parametrize(
    ("keks", "active"), [({"p1": PROD_KEK}, "p2"), ({"p1": base64.b64encode(b"short").decode()}, "p1")]
)
def test_bad_keyrings_are_refused(keks: dict[str, str], active: str) -> None:
    with pytest.raises(ValidationError):
        Settings(database_url=URL, keks=keks, active_kek=active)
