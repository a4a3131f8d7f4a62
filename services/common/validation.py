"""Request checks every service needs: bounded strings and numbers, page sizes, keyset page tokens."""

from __future__ import annotations

import base64
from datetime import datetime

from services.common.errors import InvalidArgument


def length(field: str, value: str, low: int, high: int) -> str:
    """The trimmed value when its length is within [low, high]; otherwise INVALID_ARGUMENT naming the field."""
    trimmed = value.strip()
    if "\x00" in trimmed:  # PostgreSQL text cannot hold NUL
        raise InvalidArgument(field, "must not contain NUL characters")
    if not low <= len(trimmed) <= high:
        raise InvalidArgument(field, f"must be {low}..{high} characters, got {len(trimmed)}")
    return trimmed


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
