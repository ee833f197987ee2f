"""Reads that gather points by the values at a payload key, with Qdrant's semantics:
facet counts (how many points have each value) and search groups (the best hits of the
best groups).

Pure functions over payloads and hits; the collection supplies them.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from vectorizer.engine import paths
from vectorizer.engine.filters import Payload, values_at

FacetValue = str | int | bool
GroupId = str | int

# Qdrant orders facet values of equal count by kind (keyword, integer, bool), then value.
_KEYWORD, _INTEGER, _BOOL = 0, 1, 2


FacetKey = tuple[int, Any]  # a facet value ranked by its kind


def facet_key(value: Any) -> FacetKey | None:
    """``value`` ranked for facets, or None when it is not a string, integer or bool."""
    if isinstance(value, bool):
        return (_BOOL, value)
    if isinstance(value, int):
        return (_INTEGER, value)
    if isinstance(value, str):
        return (_KEYWORD, value)
    return None


def _facet_keys(payload: Payload | None, key: str) -> set[FacetKey]:
    """The distinct facetable values at ``key`` (strings, integers, booleans), ranked."""
    return {k for value in values_at(payload, key) if (k := facet_key(value)) is not None}


def facet(payloads: Iterable[Payload | None], key: str, limit: int) -> list[tuple[FacetValue, int]]:
    """The ``limit`` most frequent values at ``key`` with the number of points that have
    each (a point counts once per distinct value), most frequent first, ties by value."""
    counts: Counter[FacetKey] = Counter()
    for payload in payloads:
        counts.update(_facet_keys(payload, key))
    return top_facets(counts, limit)


def top_facets(counts: Mapping[FacetKey, int], limit: int) -> list[tuple[FacetValue, int]]:
    """The ``limit`` largest counts, most first, ties by kind then value."""
    top = heapq.nsmallest(limit, counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [(value, n) for (_, value), n in top]


def group_ids(payload: Payload | None, key: str) -> list[GroupId]:
    """The groups a point belongs to: each distinct string or integer at ``key``; none
    when any value there is something else (a float, a bool, null, an object, a nested
    array), as Qdrant's ``GroupsAggregator::add_point`` refuses the whole point."""
    seen: dict[tuple[bool, GroupId], None] = {}
    for reached in paths.reach(payload, paths.steps(key)):
        for value in reached if isinstance(reached, list) else (reached,):
            if not isinstance(value, str | int) or isinstance(value, bool):
                return []
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
