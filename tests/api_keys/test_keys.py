"""The key format, checksum and validity rules, without I/O (SPEC 0.11)."""

import re
import secrets
from datetime import UTC, datetime, timedelta

import pytest

from services.api_keys import keys


def test_issued_keys_have_the_spec_format_and_only_their_hash_is_kept() -> None:
    issued = keys.issue()
    assert re.fullmatch(r"aos_[0-9A-Za-z]{46}", issued.secret)
    assert issued.secret[-6:] == keys.checksum(issued.secret[:-6])
    assert issued.prefix == issued.secret[:12]
    assert issued.digest == keys.digest(issued.secret) and len(issued.digest) == 64
    assert issued.secret not in issued.digest
    assert keys.well_formed(issued.secret)


def test_issued_keys_are_unique() -> None:
    assert len({keys.issue().secret for _ in range(1000)}) == 1000


def test_legacy_keys_are_accepted() -> None:
    legacy = "aos_" + secrets.token_urlsafe(32)
    assert len(legacy) == 47 and keys.well_formed(legacy)


def _flip(secret: str) -> str:
    last = secret[-1]
    return secret[:-1] + ("A" if last != "A" else "B")


@pytest.mark.parametrize(
    "presented",
    [
        "",
        "aos_",
        "not-a-key",
        keys.issue().secret[:-1],  # truncated
        _flip(keys.issue().secret),  # wrong checksum
        keys.issue().secret[:20] + "é" + keys.issue().secret[21:],  # non-ASCII
        "aos_" + "A" * 10_000,  # 10 kB
        "AOS_" + keys.issue().secret[4:],
        "aos_" + secrets.token_urlsafe(32) + "x",  # legacy length + 1
    ],
)
def test_malformed_keys_are_refused_before_any_lookup(presented: str) -> None:
    assert not keys.well_formed(presented)


def test_a_lapsed_active_key_reads_as_expired() -> None:
    now = datetime.now(UTC)
    assert keys.status("active", now - timedelta(seconds=1), now) == "expired"
    assert keys.status("active", now + timedelta(days=1), now) == "active"
    assert keys.status("revoked", now - timedelta(days=1), now) == "revoked"
    assert keys.status("disabled", None, now) == "disabled"


@pytest.mark.parametrize(
    ("scope", "ok"), [("keys:read", True), ("run:*", True), ("*", True), ("Keys", False), ("", False)]
)
def test_scope_syntax(scope: str, ok: bool) -> None:
    assert bool(keys.SCOPE.fullmatch(scope)) is ok


def test_a_legacy_key_must_end_in_a_4_bit_character() -> None:
    legacy = "aos_" + secrets.token_urlsafe(32)
    assert all(keys.well_formed(legacy[:-1] + c) for c in "AEIMQUYcgkosw048")
    assert not keys.well_formed(legacy[:-1] + "B")
