"""The golden-shape helper fails when a field is renamed, dropped, added or changes type."""

import pytest

from tests.e2e.golden import assert_shape, differences

SHAPE = {"id": str, "n": int, "ratio": float, "ok": bool, "gone": (str, None), "items": [{"k": str}]}
BODY = {"id": "a", "n": 1, "ratio": 1, "ok": True, "gone": None, "items": [{"k": "x"}]}


def test_a_matching_body_has_no_differences() -> None:
    assert differences(BODY, SHAPE) == []
    assert differences(BODY | {"items": []}, SHAPE) == []
    assert_shape(BODY | {"gone": "now"}, SHAPE)


def test_a_renamed_field_fails_naming_both_paths() -> None:
    renamed = {("count" if k == "n" else k): v for k, v in BODY.items()}
    assert differences(renamed, SHAPE) == ["$.n: missing", "$.count: unexpected"]
    with pytest.raises(AssertionError, match=r"\$\.n: missing"):
        assert_shape(renamed, SHAPE)


def test_types_are_strict() -> None:
    assert differences(BODY | {"n": True}, SHAPE) == ["$.n: expected int, got True"]
    assert differences(BODY | {"n": "1"}, SHAPE) == ["$.n: expected int, got '1'"]
    assert differences(BODY | {"gone": 3}, SHAPE) == ["$.gone: expected str | null, got 3"]
    assert differences(BODY | {"items": [{"k": 1}]}, SHAPE) == ["$.items[0].k: expected str, got 1"]
