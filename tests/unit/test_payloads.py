"""Setting a payload under a key, as Qdrant's set_payload with ``key`` does."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from vectorizer.engine.paths import parse as parse_key
from vectorizer.engine.payloads import MAX_DEPTH, check_key_depth, depth, merged_at
from vectorizer.errors import ValidationError


def test_parse_key() -> None:
    assert parse_key("a") == ["a"]
    assert parse_key("a.b_c-d") == ["a", "b_c-d"]
    assert parse_key("a[].b[2][]") == ["a", None, "b", 2, None]
    assert parse_key('a."b.c"[0]') == ["a", "b.c", 0]
    for bad in ("", "a.", ".a", "a[x]", "a[", "[0]", 'a."b', 'a."b"c', 'a."b\\c"', "a]"):
        with pytest.raises(ValidationError) as exc:
            parse_key(bad, "body.key")
        assert exc.value.field == "body.key"


@pytest.mark.parametrize(
    ("before", "key", "after"),
    [
        # objects are made along the way; top-level keys of the payload replace
        (None, "a.b", {"a": {"b": {"x": 1}}}),
        ({"a": {"b": {"x": 0, "y": 2}}, "z": 3}, "a.b", {"a": {"b": {"x": 1, "y": 2}}, "z": 3}),
        # what is not an object where an object is needed becomes one
        ({"a": 5}, "a", {"a": {"x": 1}}),
        ({"a": [1, 2]}, "a.b", {"a": {"b": {"x": 1}}}),
        # every element, one element, an element past the end (nothing)
        ({"a": [{"k": 1}, 7]}, "a[]", {"a": [{"k": 1, "x": 1}, {"x": 1}]}),
        ({"a": [{"k": 1}, {"k": 2}]}, "a[1]", {"a": [{"k": 1}, {"k": 2, "x": 1}]}),
        ({"a": [{"k": 1}]}, "a[3]", {"a": [{"k": 1}]}),
        ({"a": [{"b": [{}]}]}, "a[].b[]", {"a": [{"b": [{"x": 1}]}]}),
        # [] or [n] over something that is not an array leaves an empty array
        ({"a": {"k": 1}}, "a[]", {"a": []}),
        ({}, "a[0]", {"a": []}),
    ],
)
def test_merged_at(before: Any, key: str, after: Any) -> None:
    kept = copy.deepcopy(before)
    assert merged_at(before, parse_key(key), {"x": 1}) == after
    assert before == kept  # copied on the way, never changed in place


def test_depth_counts_objects_and_arrays() -> None:
    assert [depth(v) for v in (1, "x", None, {}, [], {"a": 1}, [[1]], {"a": [{"b": {}}]})] == [
        0,
        0,
        0,
        1,
        1,
        1,
        2,
        4,
    ]
    deep: Any = {}
    for _ in range(5000):  # (counted without recursion)
        deep = {"a": deep}
    assert depth(deep) == 5001


def test_a_key_may_not_nest_a_payload_past_the_deepest_stored() -> None:
    check_key_depth(["a"] * (MAX_DEPTH - 2), {"x": 1})
    with pytest.raises(ValidationError) as refused:
        check_key_depth(["a"] * (MAX_DEPTH - 2), {"x": {"y": 1}})
    assert refused.value.field == "key"
