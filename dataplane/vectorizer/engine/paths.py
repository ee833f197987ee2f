"""Payload paths as Qdrant reads them: ``a.b`` steps into objects only (an array at
``a`` has no ``b``), ``a[]`` into every element of an array, ``a[2]`` into one, and
``a."b.c"`` to the key ``b.c`` (a quoted key holds any characters but a quote and a
backslash).

One parser and one walker for filters, formulas, payload writes and projections.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import Any

from vectorizer.errors import ValidationError

Step = str | int | None  # a key, an array index, or every element ([])
Path = tuple[Step, ...]

# A key, bare (no dot, bracket or quote) or quoted (any characters but a quote or a
# backslash, as Qdrant's parser takes them: ``meta."user.name"``), then its indexes.
_PART = re.compile(r'(?:([^\[\]".]+)|"([^"\\]*)")((?:\[\d*\])*)')
_INDEX = re.compile(r"\[(\d*)\]")


def parse(key: str, field: str = "key") -> list[Step]:
    """The steps of ``key``; a ValidationError naming ``field`` if it is not a path."""
    steps: list[Step] = []
    at = 0
    while True:
        match = _PART.match(key, at)
        if match is None:
            raise _not_a_path(key, field)
        bare, quoted, indexes = match.groups()
        steps.append(bare if quoted is None else quoted)
        steps.extend(int(i) if i else None for i in _INDEX.findall(indexes))
        at = match.end()
        if at == len(key):
            return steps
        if key[at] != "." or at + 1 == len(key):
            raise _not_a_path(key, field)
        at += 1


def _not_a_path(key: str, field: str) -> ValidationError:
    return ValidationError(
        f'{key!r} is not a payload path (like a.b, a[].b, a[0].b or a."b.c")', field=field
    )


@functools.lru_cache(maxsize=4096)
def steps(key: str) -> Path:
    """``key``'s steps (cached: filters name the same few keys again and again). Keys of
    requests are checked with ``parse`` first; a payload index stored before they were
    may be under a key that is not a path, read as one literal key as it always was."""
    try:
        return tuple(parse(key))
    except ValidationError:
        return (key,)


def reach(node: Any, path: Path) -> Iterator[Any]:
    """Every value ``path`` reaches from ``node``; an array where it ends is one value."""
    if not path:
        yield node
        return
    step, rest = path[0], path[1:]
    if isinstance(step, str):
        if isinstance(node, dict) and step in node:
            yield from reach(node[step], rest)
    elif isinstance(node, list):
        if step is None:
            for item in node:
                yield from reach(item, rest)
        elif step < len(node):
            yield from reach(node[step], rest)
