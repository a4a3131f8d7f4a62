"""Pure request checks shared by every service: names (NFC, no hidden characters) and enum values."""

import unicodedata

import pytest

from aos.account.v1 import account_pb2
from services.common import validation
from services.common.errors import InvalidArgument

HIDDEN = [
    *(chr(c) for c in range(0x202A, 0x202F)),  # bidi embeddings and overrides (U+202E: the issue's)
    *(chr(c) for c in range(0x2066, 0x206A)),  # bidi isolates
    "\u200b",
    "\u200c",
    "\u200d",
    "\u2060",
    "\ufeff",  # zero-width characters
    "\x00",
    "\x07",
    "\n",
    "\t",
    "\x7f",
    "\x9b",  # C0, C1 and DEL controls
    "\u2028",
    "\u2029",  # line and paragraph separators
]


def test_composed_and_decomposed_names_are_the_same_name() -> None:
    nfd = unicodedata.normalize("NFD", "Café-prod")
    assert nfd != "Café-prod" and len(nfd) == len("Café-prod") + 1
    assert validation.name("name", nfd) == validation.name("name", "Café-prod") == "Café-prod"
    assert validation.name("name", "  Ünïcödé 名前 ") == "Ünïcödé 名前"


@pytest.mark.parametrize("hidden", HIDDEN)
def test_hidden_characters_are_refused_naming_the_field(hidden: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        validation.name("connector.name", f"prod{hidden}-db")
    assert caught.value.violations[0][0] == "connector.name"
    assert f"U+{ord(hidden):04X}" in caught.value.message


def test_name_length_counts_after_normalising() -> None:
    assert validation.name("name", unicodedata.normalize("NFD", "é" * 10), 1, 10) == "é" * 10
    for bad in ("", "   ", "x" * 11):
        with pytest.raises(InvalidArgument):
            validation.name("name", bad, 1, 10)


def test_enum_values_outside_the_enum_are_refused_naming_the_field() -> None:
    assert validation.enum_name("plan", account_pb2.Plan, account_pb2.PLAN_PRO, "PLAN_") == "pro"
    for value, message in ((99, "99 is not a valid Plan"), (-1, "-1 is not a valid Plan"), (0, "is required")):
        with pytest.raises(InvalidArgument) as caught:
            validation.enum_name("plan", account_pb2.Plan, value, "PLAN_")
        assert caught.value.violations == [("plan", message)]
