"""Reads that gather points by the values at a payload key, with Qdrant's semantics:
facet counts (how many points have each value) and search groups (the best hits of the
best groups).

Pure functions over payloads and hits; the collection supplies them.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from vectorizer.engine.filters import Payload, values_at

FacetValue = str | int | bool
GroupId = str | int

# Qdrant orders facet values of equal count by kind (keyword, integer, bool), then value.
_KEYWORD, _INTEGER, _BOOL = 0, 1, 2


def _facet_keys(payload: Payload | None, key: str) -> set[tuple[int, Any]]:
    """The distinct facetable values at ``key`` (strings, integers, booleans), ranked."""
    out: set[tuple[int, Any]] = set()
    for value in values_at(payload, key):
        if isinstance(value, bool):
            out.add((_BOOL, value))
        elif isinstance(value, int):
            out.add((_INTEGER, value))
        elif isinstance(value, str):
            out.add((_KEYWORD, value))
    return out


def facet(payloads: Iterable[Payload | None], key: str, limit: int) -> list[tuple[FacetValue, int]]:
    """The ``limit`` most frequent values at ``key`` with the number of points that have
    each (a point counts once per distinct value), most frequent first, ties by value."""
    counts: Counter[tuple[int, Any]] = Counter()
    for payload in payloads:
        counts.update(_facet_keys(payload, key))
    top = heapq.nsmallest(limit, counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [(value, n) for (_, value), n in top]


def group_ids(payload: Payload | None, key: str) -> list[GroupId]:
    """The groups a point belongs to: each distinct string or integer at ``key``."""
    seen: dict[tuple[bool, GroupId], None] = {}
    for value in values_at(payload, key):
        if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
            seen[(isinstance(value, str), value)] = None
    return [value for _, value in seen]


H = TypeVar("H")


@dataclass
class Group(Generic[H]):
    id: GroupId
    hits: list[H] = field(default_factory=list)


def gather(
    hits: Iterable[H],
    payload_of: Callable[[H], Payload | None],
    key: str,
    group_size: int,
    limit: int,
) -> tuple[list[Group[H]], bool]:
    """The first ``limit`` groups met in ``hits`` (best first), each with up to
    ``group_size`` of its hits, and whether that is final: ``limit`` groups, all full.

    With hits in score order, a group met earlier has a better best hit, so the groups are
    right whenever ``limit`` of them were met; a group that is not full may have more hits
    further down the list."""
    groups: dict[tuple[bool, GroupId], Group[H]] = {}
    for hit in hits:
        for gid in group_ids(payload_of(hit), key):
            gkey = (isinstance(gid, str), gid)
            group = groups.get(gkey)
            if group is None:
                if len(groups) == limit:
                    continue
                group = groups[gkey] = Group(gid)
            if len(group.hits) < group_size:
                group.hits.append(hit)
    chosen = list(groups.values())
    final = len(chosen) == limit and all(len(g.hits) == group_size for g in chosen)
    return chosen, final


def search_groups(
    search: Callable[[int], list[H]],
    payload_of: Callable[[H], Payload | None],
    key: str,
    group_size: int,
    limit: int,
    most: int,
) -> list[Group[H]]:
    """Groups from ``search(k)`` (the best ``k`` hits, in order), asking for more hits until
    the groups are final, the search runs out of hits, or ``k`` would pass ``most``."""
    k = min(most, max(limit * group_size * 2, 64))
    while True:
        hits = search(k)
        groups, final = gather(hits, payload_of, key, group_size, limit)
        if final or len(hits) < k or k >= most:
            return groups
        k = min(most, k * 4)
