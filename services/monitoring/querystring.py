"""The legacy facades' query strings, parsed here: the gateway hands a facade's query over whole (gateway/rules.py
RAW_QUERY), because the transcoder would refuse an unknown or repeated parameter with its own body before the
service could name it (MONITORING.md 0.3). as_of is UNSUPPORTED_PARAM; a missing, repeated or unknown topic, a
parameter the topic does not take, a once-only one repeated or a value of the wrong type is INVALID_QUERY naming
it. All before any database access."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from services.common.errors import InvalidArgument
from services.monitoring.queries import bad

M = TypeVar("M", bound=Message)
MAX_PARAMETERS = 100
# Paging of the legacy facades is limit/offset only; as_of is answered before any topic.
NOT_FACADE_PARAMETERS = ("page_size", "page_token", "as_of")
_INTEGER = re.compile(r"-?[0-9]{1,12}")
_INTEGERS = (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT32)


def parse(raw: str) -> dict[str, list[str]]:
    """Each parameter with its values in the order given (form encoding: + is a space)."""
    try:
        pairs = parse_qsl(raw, keep_blank_values=True, max_num_fields=MAX_PARAMETERS)
    except ValueError:
        raise bad("query", f"must have at most {MAX_PARAMETERS} parameters") from None
    params: dict[str, list[str]] = {}
    for name, value in pairs:
        params.setdefault(name, []).append(value)
    return params


def topic(params: dict[str, list[str]], topics: Sequence[str]) -> str:
    """Takes the topic out of `params`: required, once, one of `topics`."""
    if "as_of" in params:
        raise InvalidArgument("as_of", "point-in-time reads are not supported", reason="UNSUPPORTED_PARAM")
    values = params.pop("topic", [])
    if len(values) != 1:
        raise bad("topic", f"is required exactly once: one of {', '.join(topics)}")
    if values[0] not in topics:
        raise bad("topic", f"must be one of {', '.join(topics)}, got {values[0]!r}")
    return values[0]


def message(params: dict[str, list[str]], cls: type[M]) -> M:
    """The topic's own list request from the remaining parameters: only its scalar fields, each singular one
    once, numbers and booleans in the transcoder's text forms."""
    request = cls()
    fields = cls.DESCRIPTOR.fields_by_name
    for name, values in params.items():
        field = fields.get(name)
        if field is None or name in NOT_FACADE_PARAMETERS or field.message_type is not None:
            raise bad(name, "is not a parameter of this topic")
        if field.is_repeated:
            getattr(request, name).extend(_value(field, v) for v in values)
            continue
        if len(values) > 1:
            raise bad(name, "must be given once")
        try:
            setattr(request, name, _value(field, values[0]))
        except ValueError:  # an integer out of the field's range
            raise bad(name, f"is out of range, got {values[0]!r}") from None
    return request


def _value(field: Any, value: str) -> str | int | bool:
    if field.type in _INTEGERS:
        if not _INTEGER.fullmatch(value):
            raise bad(field.name, f"must be an integer, got {value!r}")
        return int(value)
    if field.type == FieldDescriptor.TYPE_BOOL:
        if value not in ("true", "false"):
            raise bad(field.name, f"must be true or false, got {value!r}")
        return value == "true"
    return value
