"""Bounds on what a request may ask for: how deeply its JSON nests, and how many
searches and results one batch holds.

Decoders recurse per level, so a body of ``[[[[…]]]]`` costs stack and time out of all
proportion to its size; it is measured before anything decodes it. The scan runs at C
speed (regex and ``bytes.translate``; numpy for the running depth): strings are removed
first, so brackets inside them do not count.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np

from vectorizer.errors import JsonTooDeep, ValidationError

_ESCAPED = re.compile(rb"\\.", re.DOTALL)  # so that \" does not end a string
_STRING = re.compile(rb'"[^"]*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_OPEN = np.frombuffer(b"[{", dtype=np.uint8)


def json_depth(body: bytes) -> int:
    """How deeply arrays and objects nest in ``body`` (JSON assumed; 0 for scalars)."""
    if b"\\" in body:
        body = _ESCAPED.sub(b"", body)
    if b'"' in body:
        body = _STRING.sub(b"", body)
    brackets = np.frombuffer(body.translate(None, _NOT_BRACKETS), dtype=np.uint8)
    if brackets.size == 0:
        return 0
    steps = np.where(np.isin(brackets, _OPEN), 1, -1).astype(np.int32)
    return int(np.cumsum(steps).max())


def check_json_depth(body: bytes, limit: int) -> None:
    if body.count(b"[") + body.count(b"{") <= limit:
        return  # cannot nest deeper than it has openers
    depth = json_depth(body)
    if depth > limit:
        raise JsonTooDeep(f"JSON nests {depth} levels deep; at most {limit} allowed", field="body")


def check_batch(
    sizes: Iterable[int], max_searches: int, max_results: int, max_limit: int, field: str
) -> None:
    """A batch of searches holds at most ``max_searches`` searches asking for at most
    ``max_results`` results in all (each search's limit plus offset, as far as
    ``max_limit`` allows: a search over it fails on its own): one request's work and
    answer stay bounded, however small its body."""
    sizes = list(sizes)
    if len(sizes) > max_searches:
        raise ValidationError(
            f"a batch holds at most {max_searches} searches, got {len(sizes)}", field=field
        )
    total = sum(min(max(size, 0), max_limit) for size in sizes)
    if total > max_results:
        raise ValidationError(
            f"the searches of a batch may ask for at most {max_results} results in all (the "
            f"sum of their limits and offsets), got {total}",
            field=field,
        )
