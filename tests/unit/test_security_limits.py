"""JSON nesting is measured before decoding; strings and escapes do not fool it."""

from __future__ import annotations

import random
import time
from typing import Any

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


def lexed_depth(body: bytes) -> int:
    """The depth a JSON lexer sees, byte by byte: brackets count outside strings; inside
    one a backslash escapes the next byte."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in body:
        char = chr(byte)
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def random_json(rnd: random.Random, depth: int = 0) -> Any:
    """Values nesting up to 6 deep whose strings are full of brackets, quotes and
    backslashes."""
    kind = rnd.randrange(4 if depth < 6 else 2)
    if kind == 0:
        return text(rnd)
    if kind == 1:
        return rnd.random()
    if kind == 2:
        return [random_json(rnd, depth + 1) for _ in range(rnd.randrange(4))]
    return {text(rnd): random_json(rnd, depth + 1) for _ in range(rnd.randrange(4))}


def text(rnd: random.Random) -> str:
    return "".join(rnd.choice('[]{}"\\\nab') for _ in range(rnd.randrange(8)))


def test_depth_matches_a_lexer_on_random_json() -> None:
    rnd = random.Random(5)
    for _ in range(3000):
        body = orjson.dumps(random_json(rnd))
        assert json_depth(body) == lexed_depth(body), body
