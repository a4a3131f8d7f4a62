"""Golden shapes: a JSON body compared with the spec's shape, key by key and type by type (issue 14).

Minimal stand-in for helper "legacy"'s module of the same interface (the lead keeps legacy's on merge).
Shape language: a dict {key: spec} is an object with exactly those keys; a spec is a Python type (str, int,
float — int also accepted —, bool, dict for any object), None for null, a tuple of alternatives, a
one-element list [spec] for an array whose every element matches, or a nested dict. bool is not int."""

from __future__ import annotations

from typing import Any


def _type_ok(value: Any, spec: type) -> bool:
    if spec is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if spec is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, spec)


def _name(spec: Any) -> str:
    if spec is None:
        return "null"
    if isinstance(spec, type):
        return spec.__name__
    if isinstance(spec, tuple):
        return " | ".join(_name(s) for s in spec)
    return "array" if isinstance(spec, list) else "object"


def differences(body: Any, shape: Any, path: str = "$") -> list[str]:
    """Every difference between `body` and `shape`, each naming its JSON path; [] when the body matches."""
    if isinstance(shape, tuple):
        if any(not differences(body, alternative, path) for alternative in shape):
            return []
        return [f"{path}: expected {_name(shape)}, got {body!r}"]
    if shape is None:
        return [] if body is None else [f"{path}: expected null, got {body!r}"]
    if isinstance(shape, dict):
        if not isinstance(body, dict):
            return [f"{path}: expected object, got {body!r}"]
        found = [f"{path}.{key}: missing" for key in shape if key not in body]
        found += [f"{path}.{key}: unexpected" for key in body if key not in shape]
        for key, spec in shape.items():
            if key in body:
                found += differences(body[key], spec, f"{path}.{key}")
        return found
    if isinstance(shape, list):
        if not isinstance(body, list):
            return [f"{path}: expected array, got {body!r}"]
        return [d for i, item in enumerate(body) for d in differences(item, shape[0], f"{path}[{i}]")]
    return [] if _type_ok(body, shape) else [f"{path}: expected {_name(shape)}, got {body!r}"]


def assert_shape(body: Any, shape: Any) -> None:
    found = differences(body, shape)
    if found:
        raise AssertionError("body differs from its golden shape:\n  " + "\n  ".join(found))
