"""The golden-shape helper itself, without a network: a renamed or a dropped field fails, as does a type."""

import pytest

from tests.e2e.golden import assert_shape, differences

KEY = {"id": str, "name": str, "last_used_at": (str, None), "total_requests": int}
BODY = {"id": "k1", "name": "ci", "last_used_at": None, "total_requests": 0}


def test_a_matching_body_has_no_differences() -> None:
    assert differences(BODY, KEY) == []
    assert differences([BODY, {**BODY, "last_used_at": "2026-01-01T00:00:00Z"}], [KEY]) == []
    assert differences([], [KEY]) == []
    assert differences({"n": 1, "meta": {"a": [1]}}, {"n": float, "meta": dict}) == []  # int is a number


def test_a_renamed_field_fails_naming_both_paths() -> None:
    renamed = {"key_id": "k1", **{k: v for k, v in BODY.items() if k != "id"}}
    assert differences([renamed], [KEY]) == ["$[0].id: missing", "$[0].key_id: not in the shape"]
    with pytest.raises(AssertionError, match=r"\$\[0\]\.id: missing"):
        assert_shape([renamed], [KEY])


def test_a_dropped_field_fails() -> None:
    dropped = {k: v for k, v in BODY.items() if k != "last_used_at"}  # what proto3 JSON does to an unset field
    assert differences({"keys": [dropped]}, {"keys": [KEY]}) == ["$.keys[0].last_used_at: missing"]


@pytest.mark.parametrize(
    ("value", "spec", "difference"),
    [
        (None, str, "$: expected string, got null"),
        ("0", int, "$: expected integer, got string"),
        (True, int, "$: expected integer, got boolean"),  # bool is not int
        (0, bool, "$: expected boolean, got integer"),
        (1.5, int, "$: expected integer, got number"),
        ({}, [str], "$: expected an array, got object"),
        ([1], {"a": int}, "$: expected an object, got array"),
        (0, (str, None), "$: integer is none of string, null"),
        (["a", 2], [str], "$[1]: expected string, got integer"),
    ],
)
def test_a_wrong_type_fails(value: object, spec: object, difference: str) -> None:
    assert differences(value, spec) == [difference]
