"""Legacy REST bodies the transcoder cannot print: a bare JSON array, or null for an unset field. The RPC's
response carries them as a google.api.HttpBody (its binding's response_body), which Envoy answers verbatim."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from typing import Any

from google.api import httpbody_pb2
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message


def json_body(value: Message | Sequence[Message] | dict[str, Any]) -> httpbody_pb2.HttpBody:
    """`value` as JSON: one message, a list of them (a bare array), or a dict already in the legacy shape."""
    if isinstance(value, Message):
        shaped: Any = to_json(value)
    elif isinstance(value, dict):
        shaped = value
    else:
        shaped = [to_json(m) for m in value]
    data = json.dumps(shaped, separators=(",", ":")).encode()
    return httpbody_pb2.HttpBody(content_type="application/json", data=data)


def to_json(message: Message) -> dict[str, Any]:
    """A message as the transcoder prints one (proto field names in declaration order, every scalar with its
    default, int64 as a string, Timestamps in RFC 3339, an integral number without a fraction), except that a
    google.protobuf.Value set to null prints null: the one way to say null in proto3 JSON."""
    out: dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        if field.message_type is None:
            out[field.name] = [_scalar(field, v) for v in value] if field.is_repeated else _scalar(field, value)
        elif field.is_repeated:
            out[field.name] = [_message(v) for v in value]
        elif message.HasField(field.name):
            out[field.name] = _message(value)
    return out


def pick(message: Message, fields: Sequence[str], nullable: Collection[str] = ()) -> dict[str, Any]:
    """The named fields of a typed answer as the legacy API printed them: an unset message field (a Timestamp)
    null, a `nullable` field's zero value ("" or 0, which the typed answer uses for unset) null, int64 a JSON
    number, repeated scalars an array."""
    shaped: dict[str, Any] = {}
    for name in fields:
        field, value = message.DESCRIPTOR.fields_by_name[name], getattr(message, name)
        if field.is_repeated:
            shaped[name] = list(value)
        elif field.message_type is not None:
            shaped[name] = _message(value) if message.HasField(name) else None
        else:
            shaped[name] = (value or None) if name in nullable else _number(value)
    return shaped


def _scalar(field: Any, value: Any) -> Any:
    if field.type in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64):
        return str(value)
    return _number(value)


def _message(value: Message) -> Any:
    if value.DESCRIPTOR.file.package == "google.protobuf":  # Timestamp, Value, Struct: their own JSON forms
        return _number(json_format.MessageToDict(value))
    return to_json(value)


def _number(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value
