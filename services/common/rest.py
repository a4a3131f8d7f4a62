"""Legacy REST bodies the transcoder cannot print: a bare JSON array, or null for an unset field. The RPC's
response carries them as a google.api.HttpBody (its binding's response_body), which Envoy answers verbatim, and
builds them here from its typed answer."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from typing import Any

from google.api import httpbody_pb2
from google.protobuf import json_format
from google.protobuf.message import Message


def json_body(value: Any) -> httpbody_pb2.HttpBody:
    """A legacy body (dicts and lists, e.g. from pick()) as the HttpBody REST answers."""
    return httpbody_pb2.HttpBody(
        content_type="application/json", data=json.dumps(value, separators=(",", ":")).encode()
    )


def pick(message: Message, fields: Sequence[str] = (), nullable: Collection[str] = ()) -> dict[str, Any]:
    """The named fields (default: all) of a typed answer as the legacy API printed them: proto field names, an
    unset field with presence (a Timestamp, an optional scalar) null, a `nullable` field's zero value ("" or 0,
    which the typed answer uses for unset) null, int64 a JSON number, Timestamps in RFC 3339, a
    google.protobuf.Value as its JSON, nested messages alike."""
    shaped: dict[str, Any] = {}
    for name in fields or [f.name for f in message.DESCRIPTOR.fields]:
        field, value = message.DESCRIPTOR.fields_by_name[name], getattr(message, name)
        if field.is_repeated:
            shaped[name] = [_message(v) for v in value] if field.message_type else list(value)
        elif field.has_presence and not message.HasField(name):
            shaped[name] = None
        elif field.message_type is not None:
            shaped[name] = _message(value)
        else:
            shaped[name] = (value or None) if name in nullable else _number(value)
    return shaped


def _message(value: Message) -> Any:
    if value.DESCRIPTOR.file.package == "google.protobuf":  # Timestamp, Value, Struct: their own JSON forms
        return _number(json_format.MessageToDict(value))
    return pick(value)


def _number(value: Any) -> Any:
    """An integral float without its fraction, as the transcoder prints one (an offset in a Value, 25.0 %)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value
