"""JSON nesting is measured before decoding; strings and escapes do not fool it."""

from __future__ import annotations

import time

import orjson
import pytest

from vectorizer.errors import JsonTooDeep
from vectorizer.security.limits import check_json_depth, json_depth


@pytest.mark.parametrize(
    ("body", "depth"),
    [
        (b"1", 0),
        (b'"[[[["', 0),
        (b"[]", 1),
        (b'{"a": [1, {"b": []}]}', 4),
        (b'{"a": "]]]]", "b": [[["\\"[[[["]]]}', 4),
        (b'["\\\\", [["x"]]]', 3),
        (b'{"k": "\\u005b"}', 1),
    ],
)
def test_depth(body: bytes, depth: int) -> None:
    assert json_depth(body) == depth


def test_limit() -> None:
    check_json_depth(b"[" * 64 + b"]" * 64, 64)
    with pytest.raises(JsonTooDeep) as err:
        check_json_depth(b"[" * 65 + b"]" * 65, 64)
    assert err.value.code == "json_too_deep" and err.value.status == 400
    with pytest.raises(JsonTooDeep):
        check_json_depth(b"[" * 100_000, 64)  # unbalanced, not even JSON


def test_a_big_flat_body_is_cheap() -> None:
    body = orjson.dumps({"vectors": [{"id": i, "vector": [0.5] * 128} for i in range(20_000)]})
    started = time.perf_counter()
    check_json_depth(body, 64)
    assert json_depth(body) == 4
    assert time.perf_counter() - started < 2.0, len(body)
