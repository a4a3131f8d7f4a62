"""Monitoring's legacy facades take a topic besides services.common.querystring's rules (MONITORING.md 0.3): a
missing, repeated or unknown topic, or a parameter the topic does not take, is INVALID_QUERY naming it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from google.protobuf.message import Message

from services.common import querystring
from services.common.querystring import bad, parse

__all__ = ["message", "parse", "topic"]

M = TypeVar("M", bound=Message)
# Paging of the legacy facades is limit/offset only; as_of is answered before any topic.
NOT_FACADE_PARAMETERS = ("page_size", "page_token", "as_of")


def topic(params: dict[str, list[str]], topics: Sequence[str]) -> str:
    """Takes the topic out of `params`: required, once, one of `topics`."""
    querystring.refuse_as_of(params)
    values = params.pop("topic", [])
    if len(values) != 1:
        raise bad("topic", f"is required exactly once: one of {', '.join(topics)}")
    if values[0] not in topics:
        raise bad("topic", f"must be one of {', '.join(topics)}, got {values[0]!r}")
    return values[0]


def message(params: dict[str, list[str]], cls: type[M]) -> M:
    """The topic's own list request from the remaining parameters (services.common.querystring.message)."""
    return querystring.message(params, cls, NOT_FACADE_PARAMETERS)
