"""Request checks every service needs: bounded strings and numbers, page sizes, keyset page tokens."""

from __future__ import annotations

import base64
import unicodedata
from datetime import datetime
from typing import Any

from services.common.errors import InvalidArgument


def length(field: str, value: str, low: int, high: int) -> str:
    """The trimmed value when its length is within [low, high]; otherwise INVALID_ARGUMENT naming the field."""
    trimmed = value.strip()
    if "\x00" in trimmed:  # PostgreSQL text cannot hold NUL
        raise InvalidArgument(field, "must not contain NUL characters")
    if not low <= len(trimmed) <= high:
        raise InvalidArgument(field, f"must be {low}..{high} characters, got {len(trimmed)}")
    return trimmed


# Characters that hide or reorder what a name shows: controls (Cc), format characters (Cf: bidi overrides
# and isolates U+202A-E/U+2066-9, zero-width U+200B-D/U+2060/U+FEFF, soft hyphen...), surrogates and the
# line/paragraph separators.
_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def name(field: str, value: str, low: int = 1, high: int = 255) -> str:
    """A name as it is stored and compared: NFC-normalised (a composed and a decomposed "é" are one name),
    trimmed, `low`..`high` characters, with no character that hides or reorders text."""
    normal = unicodedata.normalize("NFC", value)
    hidden = next((c for c in normal if unicodedata.category(c) in _HIDDEN), None)
    if hidden is not None:
        raise InvalidArgument(field, f"must not contain control, bidi or invisible characters (U+{ord(hidden):04X})")
    return length(field, normal, low, high)


def enum_name(field: str, enum: Any, value: int, prefix: str) -> str:
    """The lower-case name of a defined, specified enum value without its prefix (PLAN_PRO → "pro"). Proto3
    enums are open: a number the enum does not define arrives intact (Envoy's transcoder passes numbers
    through), so it is refused here, naming the field."""
    try:
        full: str = enum.Name(value)
    except ValueError:
        raise InvalidArgument(field, f"{value} is not a valid {enum.DESCRIPTOR.name}") from None
    if value == 0:
        raise InvalidArgument(field, "is required")
    return full.removeprefix(prefix).lower()


def between(field: str, value: int, low: int, high: int) -> int:
    if not low <= value <= high:
        raise InvalidArgument(field, f"must be between {low} and {high}, got {value}")
    return value


def one_of(field: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise InvalidArgument(field, f"must be one of {', '.join(a for a in allowed if a)}, got {value!r}")
    return value


def page_size(field: str, value: int, default: int = 50, high: int = 100) -> int:
    return default if value == 0 else between(field, value, 1, high)


def encode_token(created_at: datetime, row_id: str) -> str:
    """Keyset cursor after (created_at, id) for lists ordered newest first."""
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{row_id}".encode()).decode()


def decode_token(token: str) -> tuple[datetime, str] | None:
    if not token:
        return None
    try:
        created_at, row_id = base64.urlsafe_b64decode(token.encode()).decode().split("|")
        return datetime.fromisoformat(created_at), row_id
    except ValueError as exc:  # bad base64, bad UTF-8, wrong shape, bad timestamp
        raise InvalidArgument("page_token", "unknown page token") from exc
