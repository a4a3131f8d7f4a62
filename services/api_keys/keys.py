"""Key material and the rules that need no I/O: format, checksum, hash, scopes, validity (SPEC 0.11, 0.12)."""

from __future__ import annotations

import hashlib
import re
import secrets
import zlib
from datetime import datetime
from typing import NamedTuple

PREFIX = "aos_"
RANDOM_CHARS = 40  # 40 base62 characters ≈ 238 bits of entropy
CHECKSUM_CHARS = 6  # 62**6 > 2**32: any CRC32 fits
DISPLAY_CHARS = 12
MAX_PRESENTED = 200  # anything longer is not a key; refuse before hashing 10 kB
DEFAULT_SCOPES = ("run:*", "read:*")
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

_NEW = re.compile(rf"{PREFIX}[0-9A-Za-z]{{{RANDOM_CHARS},}}")
# Legacy keys are 32 random bytes in unpadded URL-safe base64: 43 characters, the last of which carries
# only 4 bits (its two low bits are zero), so it is one of these 16.
_LEGACY = re.compile(rf"{PREFIX}[A-Za-z0-9_-]{{42}}[AEIMQUYcgkosw048]")


class Issued(NamedTuple):
    secret: str
    digest: str
    prefix: str


def _base62(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        value, rest = divmod(value, 62)
        chars.append(BASE62[rest])
    return "".join(reversed(chars))


def checksum(body: str) -> str:
    """6 base62 characters of the CRC32 of everything before them."""
    return _base62(zlib.crc32(body.encode()), CHECKSUM_CHARS)


def issue() -> Issued:
    body = PREFIX + "".join(secrets.choice(BASE62) for _ in range(RANDOM_CHARS))
    secret = body + checksum(body)
    return Issued(secret, digest(secret), secret[:DISPLAY_CHARS])


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def well_formed(presented: str) -> bool:
    """True only for a key that could exist: a new-format key with a valid checksum, or a legacy key.
    Everything else (truncated, wrong checksum, oversized, non-ASCII) is refused without any lookup."""
    if len(presented) > MAX_PRESENTED or not presented.isascii():
        return False
    if _LEGACY.fullmatch(presented):
        return True
    if not _NEW.fullmatch(presented):
        return False
    body, given = presented[:-CHECKSUM_CHARS], presented[-CHECKSUM_CHARS:]
    return len(body) - len(PREFIX) >= RANDOM_CHARS and secrets.compare_digest(checksum(body), given)


def status(stored: str, expires_at: datetime | None, now: datetime) -> str:
    """The status a customer sees: a lapsed active key is EXPIRED although nothing rewrote its row."""
    if stored == "active" and expires_at is not None and expires_at <= now:
        return "expired"
    return stored


SCOPE = re.compile(r"[a-z][a-z0-9_-]{0,49}:(\*|[a-z][a-z0-9_-]{0,49})|\*")
