"""The legacy facades' query strings, parsed by the service: the gateway hands such an RPC's query over whole
(gateway/rules.py RAW_QUERY), because the transcoder would refuse an unknown or repeated parameter with its own
body before the service could name it. as_of is UNSUPPORTED_PARAM; an unknown parameter, a once-only one repeated
or a value of the wrong type is INVALID_QUERY naming it. All before any database access."""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from services.common.errors import InvalidArgument

M = TypeVar("M", bound=Message)
MAX_PARAMETERS = 100
_INTEGER = re.compile(r"-?[0-9]{1,12}")
_INTEGERS = (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT32)


def bad(field: str, description: str) -> InvalidArgument:
    return InvalidArgument(field, description, reason="INVALID_QUERY")


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


def refuse_as_of(params: dict[str, list[str]]) -> None:
    if "as_of" in params:
        raise InvalidArgument("as_of", "point-in-time reads are not supported", reason="UNSUPPORTED_PARAM")


def message(params: dict[str, list[str]], cls: type[M], excluded: Collection[str] = ()) -> M:
    """The request `cls` from the parameters: only its scalar fields not `excluded`, each singular one once,
    numbers and booleans in the transcoder's text forms."""
    request = cls()
    fields = cls.DESCRIPTOR.fields_by_name
    for name, values in params.items():
        field = fields.get(name)
        if field is None or name in excluded or field.message_type is not None:
            raise bad(name, "is not a parameter of this query")
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
