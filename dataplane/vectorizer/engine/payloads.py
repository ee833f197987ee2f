"""Payload paths: setting a payload under a key (Qdrant's ``set_payload`` with ``key``),
and the parts of payloads a read shows (``with_payload``'s include and exclude).

A key is a path: ``a.b`` steps into objects, ``a[2]`` into one element of an array and
``a[]`` into every element. The payload given is merged (top-level keys replaced) into
the object the path leads to; what is not an object there becomes one, and the path is
made as it goes, as Qdrant does: a missing key is created, an index past the end of an
array changes nothing, and ``[]`` over something that is not an array leaves an empty
array. Objects and arrays along the path are copied, never changed (a reader may hold
the old payload).
"""

from __future__ import annotations

from typing import Any

from vectorizer.engine import paths
from vectorizer.engine.filters import Payload
from vectorizer.engine.paths import Step


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


# A prefix tree of paths: each step maps to the tree below it, or to True where a path
# ends (everything under it is selected).
Tree = dict[Step, "Tree | bool"]


def selector_tree(keys: list[str], field: str) -> Tree:
    """The paths of a payload selector merged into one prefix tree."""
    tree: Tree = {}
    for i, key in enumerate(keys):
        *parents, last = paths.parse(key, f"{field}[{i}]")
        node: Tree | bool = tree
        for step in parents:
            if node is True:
                break  # a shorter path already selects everything below
            assert isinstance(node, dict)
            node = node.setdefault(step, {})
        else:
            if isinstance(node, dict):
                node[last] = True
    return tree


def included(value: Any, tree: Tree) -> Any:
    """What of ``value`` the paths of ``tree`` reach, as Qdrant shows an include
    selector: objects keep the keys on a path, arrays the elements under ``[]`` (an
    index such as ``a[0]`` reaches nothing), and a value where a path ends (or a
    scalar a path goes past) is kept whole."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            below = tree.get(key)
            if below is not None:
                out[key] = item if below is True else included(item, below)  # type: ignore[arg-type]
        return out
    if isinstance(value, list):
        below = tree.get(None)
        if below is None:
            return []
        return value if below is True else [included(item, below) for item in value]  # type: ignore[arg-type]
    return value


def excluded(value: Any, tree: Tree) -> Any:
    """``value`` less what the paths of ``tree`` reach (Qdrant's exclude selector)."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            below = tree.get(key)
            if below is None:
                out[key] = item
            elif below is not True:
                out[key] = excluded(item, below)  # type: ignore[arg-type]
        return out
    if isinstance(value, list):
        below = tree.get(None)
        if below is None:
            return value
        return [] if below is True else [excluded(item, below) for item in value]  # type: ignore[arg-type]
    return value
