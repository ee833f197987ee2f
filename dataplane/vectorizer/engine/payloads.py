"""Setting a payload under a key (Qdrant's ``set_payload`` with ``key``).

A key is a path: ``a.b`` steps into objects, ``a[2]`` into one element of an array and
``a[]`` into every element. The payload given is merged (top-level keys replaced) into
the object the path leads to; what is not an object there becomes one, and the path is
made as it goes, as Qdrant does: a missing key is created, an index past the end of an
array changes nothing, and ``[]`` over something that is not an array leaves an empty
array. Objects and arrays along the path are copied, never changed (a reader may hold
the old payload).
"""

from __future__ import annotations

import re
from typing import Any

from vectorizer.engine.filters import Payload
from vectorizer.errors import ValidationError

Step = str | int | None  # a key, an array index, or every element ([])

_PART = re.compile(r'([^\[\]".]+)((?:\[\d*\])*)')
_INDEX = re.compile(r"\[(\d*)\]")


def parse_key(key: str, field: str = "key") -> list[Step]:
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


def merged_at(node: Any, steps: list[Step], payload: Payload) -> Any:
    """``node`` with ``payload`` merged in where ``steps`` lead."""
    if not steps:
        merged = dict(node) if isinstance(node, dict) else {}
        merged.update(payload)
        return merged
    head, rest = steps[0], steps[1:]
    if isinstance(head, str):
        obj = dict(node) if isinstance(node, dict) else {}
        obj[head] = merged_at(obj.get(head), rest, payload)
        return obj
    items = list(node) if isinstance(node, list) else []
    if head is None:
        return [merged_at(item, rest, payload) for item in items]
    if head < len(items):
        items[head] = merged_at(items[head], rest, payload)
    return items
