"""Payload writes at paths, as Qdrant makes them, and the parts of payloads a read shows
(``with_payload``'s include and exclude).

A key is a path: ``a.b`` steps into objects, ``a[2]`` into one element of an array and
``a[]`` into every element. ``set_payload`` merges the payload given (top-level keys
replaced, a null removing its key) into the object the path leads to; what is not an
object there becomes one, and the path is made as it goes: a missing key is created, an
index past the end of an array changes nothing, and ``[]`` over something that is not an
array leaves an empty array. ``delete_payload`` removes a key where a path ends, or
empties the array where it ends in ``[]``; a path ending in an index removes nothing
(it would not be idempotent). Objects and arrays along a path are copied, never changed
(a reader may hold the old payload).
"""

from __future__ import annotations

from typing import Any

from vectorizer.engine import paths
from vectorizer.engine.filters import Payload
from vectorizer.engine.paths import Step
from vectorizer.errors import ValidationError

# The deepest a stored payload may nest (objects and arrays, the payload itself one):
# the log, snapshots and answers write payloads with orjson, which refuses more than
# 254 levels (a payload nested deeper made every snapshot of the node fail, and every
# answer that showed it), and a write is applied recursively. Bodies are held to
# ``max_json_depth`` (at most this); a key's steps nest a payload further.
MAX_DEPTH = 200


def heap_bytes(encoded: bytes) -> int:
    """Roughly the heap the JSON ``encoded`` takes decoded (as stored payloads are held):
    its text, an object's table (~180 bytes), an array's (~70) and a slot and small
    object per element (~40; keys repeat, and are shared). Against tracemalloc: 1.0-1.8x
    what flat, nested, text-heavy and number-heavy payloads take (more for booleans and
    nulls, which are shared, and take little)."""
    elements = encoded.count(b",") + encoded.count(b"{") + encoded.count(b"[")
    return len(encoded) + 180 * encoded.count(b"{") + 70 * encoded.count(b"[") + 40 * elements


def depth(value: Any) -> int:
    """How deep ``value`` nests objects and arrays (0: a scalar, 1: a flat object)."""
    deepest, level = 0, [value]
    while level:
        containers = [v for v in level if isinstance(v, dict | list)]
        if not containers:
            break
        deepest += 1
        level = [item for c in containers for item in (c.values() if isinstance(c, dict) else c)]
    return deepest


def check_key_depth(steps: list[Step], payload: Payload, field: str = "key") -> None:
    """Refuse a payload that ``steps`` would nest deeper than ``MAX_DEPTH``."""
    nests = 1 + len(steps) + depth(payload)  # (the point's payload, the path, what is set)
    if nests > MAX_DEPTH:
        raise ValidationError(
            f"the key would nest the payload {nests} levels deep; a payload nests at most "
            f"{MAX_DEPTH}",
            field=field,
        )


def merged(node: Any, payload: Payload, nulls_remove: bool = True) -> Payload:
    """A copy of ``node`` (an object, or a fresh one) with ``payload``'s keys set, a null
    removing its key (Qdrant's merge). ``nulls_remove`` off keeps nulls as values, as
    records logged before this rule are replayed."""
    out = dict(node) if isinstance(node, dict) else {}
    if not nulls_remove:
        out.update(payload)
        return out
    for key, value in payload.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def merged_at(node: Any, steps: list[Step], payload: Payload, nulls_remove: bool = True) -> Any:
    """``node`` with ``payload`` merged in where ``steps`` lead."""
    if not steps:
        return merged(node, payload, nulls_remove)
    head, rest = steps[0], steps[1:]
    if isinstance(head, str):
        obj = dict(node) if isinstance(node, dict) else {}
        obj[head] = merged_at(obj.get(head), rest, payload, nulls_remove)
        return obj
    items = list(node) if isinstance(node, list) else []
    if head is None:
        return [merged_at(item, rest, payload, nulls_remove) for item in items]
    if head < len(items):
        items[head] = merged_at(items[head], rest, payload, nulls_remove)
    return items


def removed_at(node: Any, steps: list[Step]) -> Any:
    """``node`` less what ``steps`` (one or more) lead to, as Qdrant's delete_payload
    removes a path; ``node`` itself where the path reaches nothing."""
    head, rest = steps[0], steps[1:]
    if isinstance(head, str):
        if not isinstance(node, dict) or head not in node:
            return node
        out = dict(node)
        if rest:
            out[head] = removed_at(node[head], rest)
        else:
            del out[head]
        return out
    if not isinstance(node, list):
        return node
    if not rest:
        return [] if head is None else node  # an index is not removed: not idempotent
    if head is None:
        return [removed_at(item, rest) for item in node]
    if head >= len(node):
        return node
    items = list(node)
    items[head] = removed_at(node[head], rest)
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
