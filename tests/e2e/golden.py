"""Golden shapes: a JSON body compared with the shape a legacy client reads, key by key and type by type.

A shape is data:
  {key: spec, ...}   an object with exactly these keys (a missing or an extra key is a difference)
  str, int, float, bool   that JSON type (int is accepted for float; bool is never an int)
  dict               any object
  None               JSON null
  (spec, spec, ...)  any of the alternatives, e.g. (str, None) for a nullable string
  [spec]             an array whose every element matches spec (an empty array matches)
"""

from __future__ import annotations

from typing import Any


def differences(body: Any, shape: Any, path: str = "$") -> list[str]:
    """Every way `body` differs from `shape`, each naming its JSON path; [] when it matches."""
    if isinstance(shape, tuple):
        if any(not differences(body, alternative, path) for alternative in shape):
            return []
        return [f"{path}: {_kind(body)} is none of {', '.join(_name(a) for a in shape)}"]
    if isinstance(shape, dict):
        if not isinstance(body, dict):
            return [f"{path}: expected an object, got {_kind(body)}"]
        found = [f"{path}.{key}: missing" for key in shape if key not in body]
        found += [f"{path}.{key}: not in the shape" for key in body if key not in shape]
        for key, spec in shape.items():
            if key in body:
                found += differences(body[key], spec, f"{path}.{key}")
        return found
    if isinstance(shape, list):
        if not isinstance(body, list):
            return [f"{path}: expected an array, got {_kind(body)}"]
        return [d for i, item in enumerate(body) for d in differences(item, shape[0], f"{path}[{i}]")]
    return [] if _is(body, shape) else [f"{path}: expected {_name(shape)}, got {_kind(body)}"]


def assert_shape(body: Any, shape: Any) -> None:
    """Raises AssertionError listing every difference between `body` and `shape`."""
    found = differences(body, shape)
    assert not found, "the body differs from its golden shape:\n  " + "\n  ".join(found)


def _is(value: Any, spec: Any) -> bool:
    if spec is None:
        return value is None
    if isinstance(value, bool) or spec is bool:
        return isinstance(value, bool) and spec is bool
    if spec is float:
        return isinstance(value, int | float)
    return isinstance(value, spec)


def _name(spec: Any) -> str:
    if spec is None:
        return "null"
    if isinstance(spec, type):
        return {str: "string", int: "integer", float: "number", bool: "boolean", dict: "object"}[spec]
    return "array" if isinstance(spec, list) else "object" if isinstance(spec, dict) else repr(spec)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    kinds = {str: "string", int: "integer", float: "number", dict: "object", list: "array"}
    return next((name for t, name in kinds.items() if isinstance(value, t)), type(value).__name__)
