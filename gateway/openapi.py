"""An OpenAPI 3.1 document of every REST binding, derived from the same descriptor set Envoy transcodes with.

It describes what the transcoder really does: proto field names, int64 as strings, enums by name,
Timestamps as RFC 3339 strings, unknown query parameters refused, errors as google.rpc.Status JSON.
"""

from __future__ import annotations

import re
from typing import Any

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2

from aos.gate.v1 import gate_pb2
from gateway.rules import RAW_QUERY

F = descriptor_pb2.FieldDescriptorProto
_SCALARS: dict[int, dict[str, Any]] = {
    F.TYPE_STRING: {"type": "string"},
    F.TYPE_BOOL: {"type": "boolean"},
    F.TYPE_INT32: {"type": "integer", "format": "int32"},
    F.TYPE_SINT32: {"type": "integer", "format": "int32"},
    F.TYPE_UINT32: {"type": "integer", "format": "int64", "minimum": 0},
    F.TYPE_INT64: {"type": "string", "format": "int64"},  # proto3 JSON prints 64-bit integers as strings
    F.TYPE_UINT64: {"type": "string", "format": "uint64"},
    F.TYPE_DOUBLE: {"type": "number"},
    F.TYPE_FLOAT: {"type": "number"},
    F.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
}
_WELL_KNOWN: dict[str, dict[str, Any]] = {
    ".google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    ".google.protobuf.Duration": {"type": "string"},
    ".google.protobuf.Struct": {"type": "object"},
    ".google.protobuf.Value": {},
    ".google.protobuf.Any": {"type": "object", "properties": {"@type": {"type": "string"}}},
}
# Service errors are google.rpc.Status; the edge's own refusals keep the legacy {"error", "message", ...} body.
ERROR = {"anyOf": [{"$ref": "#/components/schemas/google.rpc.Status"}, {"$ref": "#/components/schemas/EdgeError"}]}
EDGE_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string"},
        "message": {"type": "string"},
        "current_state": {"type": "string"},
        "required_state": {"type": "string"},
        "endpoint": {"type": "string"},
    },
}


class _Index:
    def __init__(self, fds: descriptor_pb2.FileDescriptorSet) -> None:
        self.messages: dict[str, descriptor_pb2.DescriptorProto] = {}
        self.enums: dict[str, descriptor_pb2.EnumDescriptorProto] = {}
        for file in fds.file:
            for message in file.message_type:
                self._add(f".{file.package}", message)
            for enum in file.enum_type:
                self.enums[f".{file.package}.{enum.name}"] = enum
        self.used: set[str] = set()

    def _add(self, scope: str, message: descriptor_pb2.DescriptorProto) -> None:
        name = f"{scope}.{message.name}"
        self.messages[name] = message
        for nested in message.nested_type:
            self._add(name, nested)
        for enum in message.enum_type:
            self.enums[f"{name}.{enum.name}"] = enum

    def field(self, field: descriptor_pb2.FieldDescriptorProto) -> dict[str, Any]:
        entry = self.messages.get(field.type_name)
        if entry is not None and entry.options.map_entry:
            return {"type": "object", "additionalProperties": self.field(entry.field[1])}
        schema = self._single(field)
        return {"type": "array", "items": schema} if field.label == F.LABEL_REPEATED else schema

    def _single(self, field: descriptor_pb2.FieldDescriptorProto) -> dict[str, Any]:
        if field.type == F.TYPE_ENUM:
            names = [v.name for v in self.enums[field.type_name].value]
            return {"type": "string", "enum": names}
        if field.type == F.TYPE_MESSAGE:
            if field.type_name in _WELL_KNOWN:
                return dict(_WELL_KNOWN[field.type_name])
            self.used.add(field.type_name)
            return {"$ref": f"#/components/schemas/{field.type_name.lstrip('.')}"}
        return dict(_SCALARS[field.type])

    def schema(self, name: str, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
        message = self.messages[name]
        props = {f.name: self.field(f) for f in message.field if f.name not in skip}
        return {"type": "object", "properties": props, "additionalProperties": False}

    def components(self) -> dict[str, Any]:
        done: dict[str, Any] = {}
        while pending := self.used - done.keys():
            for name in sorted(pending):
                done[name] = self.schema(name)
        return {name.lstrip("."): schema for name, schema in sorted(done.items())}


def _bindings(rule: http_pb2.HttpRule) -> list[http_pb2.HttpRule]:
    return [rule, *rule.additional_bindings]


def _verb(rule: http_pb2.HttpRule) -> tuple[str, str]:
    kind = rule.WhichOneof("pattern")
    assert kind is not None and kind != "custom", "custom HTTP patterns are not used"
    return kind, getattr(rule, kind)


def _operation(
    index: _Index,
    service: str,
    method: descriptor_pb2.MethodDescriptorProto,
    rule: http_pb2.HttpRule,
    verb: str,
    path: str,
) -> dict[str, Any]:
    params = re.findall(r"{([^}=]+)", path)
    request = index.messages[method.input_type]
    op: dict[str, Any] = {
        "operationId": f"{method.name}_{verb}_{re.sub(r'[^A-Za-z0-9]+', '_', path).strip('_')}",
        "tags": [service.split(".")[1]],
    }
    op["parameters"] = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in params]
    if rule.body == "*":
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": index.schema(method.input_type, frozenset(params))}},
        }
    elif any(f.name == RAW_QUERY for f in request.field):
        # The service parses the whole query itself (rules.RAW_QUERY): free-form parameters, as the RPC says.
        free = {"type": "object", "additionalProperties": {"type": "string"}}
        op["parameters"] += [{"name": "query", "in": "query", "style": "form", "explode": True, "schema": free}]
    else:
        op["parameters"] += [
            {"name": f.name, "in": "query", "required": False, "schema": index.field(f)}
            for f in request.field
            if f.name not in params and f.type != F.TYPE_MESSAGE
        ]
    # 201 when the service made the resource (services.common.server.created); a create that finds its
    # idempotent original, or a trace stored before (first write wins), answers 200 with the same body.
    made = verb == "post" and method.name.startswith(("Create", "Store"))
    if rule.response_body:  # a google.api.HttpBody the service rendered (a legacy body; its comment names it)
        out = {}
    else:
        index.used.add(method.output_type)
        out = {"$ref": f"#/components/schemas/{method.output_type.lstrip('.')}"}
    op["responses"] = {
        code: {"description": "OK", "content": {"application/json": {"schema": out}}}
        for code in (("201", "200") if made else ("200",))
    } | {"default": {"description": "error", "content": {"application/json": {"schema": ERROR}}}}
    return op


def document(descriptor_set: bytes, title: str = "AOS control plane") -> dict[str, Any]:
    fds = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set)
    index = _Index(fds)
    paths: dict[str, dict[str, Any]] = {}
    for file in fds.file:
        for service in file.service if file.package.startswith("aos.") else ():
            for method in service.method:
                if not method.options.HasExtension(annotations_pb2.http):
                    continue
                assert method.options.Extensions[gate_pb2.rule].audience != gate_pb2.AUDIENCE_INTERNAL
                for rule in _bindings(method.options.Extensions[annotations_pb2.http]):
                    verb, path = _verb(rule)
                    path = re.sub(r"{([^}=]+)=[^}]*}", r"{\1}", path)
                    op = _operation(index, f"{file.package}.{service.name}", method, rule, verb, path)
                    paths.setdefault(path, {})[verb] = op
    index.used.add(".google.rpc.Status")
    bearer = {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    api_key = {"type": "apiKey", "in": "header", "name": "X-AOS-Key"}
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1.0.0"},
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": index.components() | {"EdgeError": EDGE_ERROR},
            "securitySchemes": {"bearer": bearer, "apiKey": api_key},
        },
        "security": [{"bearer": []}, {"apiKey": []}],
    }
