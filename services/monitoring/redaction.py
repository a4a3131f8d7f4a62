"""Redaction of stored free text (MONITORING.md 6.3): e-mails, key-like tokens and card numbers become markers,
values under secret-sounding keys become [REDACTED], recursively through JSON values."""

from __future__ import annotations

import re
from typing import Any

# A match starts only where a run of local-part characters starts (the lookbehind): without it every
# position inside a long run would rescan the rest of it, quadratic time on a 2 MiB trace.
EMAIL = re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
SECRET = re.compile(r"aos_[A-Za-z0-9_-]{20,}|sk-[A-Za-z0-9_-]{16,}|AKIA[A-Z0-9]{16}|Bearer\s+[A-Za-z0-9._~+/=-]{16,}")
# 13-19 digits, single spaces or dashes allowed between them; only runs passing Luhn are cards.
CARD = re.compile(r"(?<!\d)\d(?:[ -]?\d){12,18}(?!\d)")
SECRET_KEYS = frozenset({"password", "secret", "token", "api_key", "authorization"})


# Each digit doubled, less 9 when above 9 (Luhn's second, fourth... digits from the right).
_DOUBLED = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


def luhn(digits: str) -> bool:
    # Slices and a table, not a loop per digit: a 2 MiB trace of digit runs makes ~10^5 calls.
    total = sum(map(int, digits[-1::-2])) + sum(_DOUBLED[int(c)] for c in digits[-2::-2])
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    found = match.group()
    return "[REDACTED_CARD]" if luhn(found.replace(" ", "").replace("-", "")) else found


def text(value: str) -> str:
    value = SECRET.sub("[REDACTED_SECRET]", value)
    if "@" in value:  # most text holds none: skip the scan
        value = EMAIL.sub("[REDACTED_EMAIL]", value)
    return CARD.sub(_card, value)


def value(data: Any) -> Any:
    """A JSON value with every string redacted and every value under a secret-sounding key replaced."""
    if isinstance(data, str):
        return text(data)
    if isinstance(data, list):
        return [value(item) for item in data]
    if isinstance(data, dict):
        return {k: "[REDACTED]" if k.lower() in SECRET_KEYS else value(v) for k, v in data.items()}
    return data
