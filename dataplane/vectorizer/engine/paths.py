"""Payload paths as Qdrant reads them: ``a.b`` steps into objects only (an array at
``a`` has no ``b``), ``a[]`` into every element of an array, ``a[2]`` into one.

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

_PART = re.compile(r'([^\[\]".]+)((?:\[\d*\])*)')
_INDEX = re.compile(r"\[(\d*)\]")


def parse(key: str, field: str = "key") -> list[Step]:
    """The steps of ``key``; a ValidationError naming ``field`` if it is not a path."""
    steps: list[Step] = []
    for part in key.split(".") if key else [""]:
        match = _PART.fullmatch(part)
        if match is None:
            raise ValidationError(
                f"{key!r} is not a payload path (like a.b, a[].b or a[0].b)", field=field
            )
        steps.append(match.group(1))
        steps.extend(int(i) if i else None for i in _INDEX.findall(match.group(2)))
    return steps


@functools.lru_cache(maxsize=4096)
def lenient(key: str) -> Path:
    """``key``'s steps, or the whole key as one literal key where it is not a path (a
    filter on such a key reads the key of that name, as it always has)."""
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
