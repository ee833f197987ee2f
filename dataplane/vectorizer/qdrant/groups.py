"""Grouped queries and facets: Qdrant's request bodies into engine arguments.

``query/groups`` (and the legacy ``search/groups`` and ``recommend/groups``) answers the
best ``limit`` groups of points that share a value at ``group_by`` (strings and
integers; a point with an array there is in a group for each value), each with its best
``group_size`` hits, groups ordered by their best hit. ``with_lookup`` adds, to each
group, the point of another collection whose id is the group's value. ``facet`` counts
the points per value at a key; our counts are always exact (``exact`` is accepted
either way).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Protocol

from vectorizer.engine.filters import payload_key
from vectorizer.engine.validation import collection_name
from vectorizer.errors import ValidationError
from vectorizer.qdrant.models import (
    DEFAULT_LIMIT,
    PayloadSelector,
    Search,
    canonical_filter,
    in_range,
    no_shard_key,
    payload_selector,
    query_search,
    recommend_search,
    vector_search,
    with_vector,
)
from vectorizer.qdrant.schemas import (
    FacetRequest,
    QueryGroupsRequest,
    RecommendGroupsRequest,
    SearchGroupsRequest,
)

DEFAULT_GROUP_SIZE = 3


@dataclass(frozen=True)
class Lookup:
    collection: str
    payload: PayloadSelector
    with_vector: bool


@dataclass(frozen=True)
class QueryGroups:
    search: Search  # its limit is set for each round of hits
    group_by: str
    group_size: int
    limit: int
    lookup: Lookup | None

    def hits(self, k: int) -> Search:
        """The search for the best ``k`` hits, with whole payloads (grouping reads them)
        and no vectors (only the hits shown get theirs)."""
        return dataclasses.replace(
            self.search, limit=k, payload=PayloadSelector(True), with_vector=False
        )


class _Grouping(Protocol):
    """The grouping fields every grouped request has."""

    @property
    def group_by(self) -> str: ...
    @property
    def group_size(self) -> int | None: ...
    @property
    def limit(self) -> int | None: ...
    @property
    def with_lookup(self) -> Any: ...


def query_groups(body: QueryGroupsRequest, max_limit: int, max_hits: int) -> QueryGroups:
    return _grouped(body, query_search(body, 1, 0, max_limit), max_limit, max_hits)


def search_groups(body: SearchGroupsRequest, max_limit: int, max_hits: int) -> QueryGroups:
    """The legacy ``search/groups`` form."""
    return _grouped(body, vector_search(body, 1, 0, max_limit), max_limit, max_hits)


def recommend_groups(body: RecommendGroupsRequest, max_limit: int, max_hits: int) -> QueryGroups:
    """The legacy ``recommend/groups`` form."""
    return _grouped(body, recommend_search(body, 1, 0, max_limit), max_limit, max_hits)


def _grouped(body: _Grouping, search: Search, max_limit: int, max_hits: int) -> QueryGroups:
    """``max_hits`` bounds both ``limit`` x ``group_size`` and the hits looked through."""
    group_size = DEFAULT_GROUP_SIZE if body.group_size is None else body.group_size
    limit = DEFAULT_LIMIT if body.limit is None else body.limit
    in_range(group_size, "group_size", 1, max_limit)
    in_range(limit, "limit", 1, max_limit)
    if limit * group_size > max_hits:
        raise ValidationError(f"limit x group_size may be at most {max_hits}", field="group_size")
    return QueryGroups(
        search=_prefetching_more(search, group_size, max_hits),
        group_by=payload_key(body.group_by, "group_by"),
        group_size=group_size,
        limit=limit,
        lookup=None if body.with_lookup is None else _lookup(body.with_lookup),
    )


def _prefetching_more(search: Search, group_size: int, max_hits: int) -> Search:
    """``search`` with every prefetch under it asking for ``group_size`` times as many
    points, as Qdrant does for grouped queries (each group wants that many hits), at
    most ``max_hits`` (nor fewer than it asked)."""
    if not search.prefetch:
        return search
    return dataclasses.replace(
        search,
        prefetch=tuple(
            _prefetching_more(
                dataclasses.replace(p, limit=max(p.limit, min(p.limit * group_size, max_hits))),
                group_size,
                max_hits,
            )
            for p in search.prefetch
        ),
    )


def _lookup(raw: Any) -> Lookup:
    """``with_lookup``: a collection's name (payloads, no vectors, as in Qdrant) or
    ``{collection, with_payload, with_vectors}``."""
    if isinstance(raw, str):
        return Lookup(collection_name(raw, "with_lookup"), PayloadSelector(True), False)
    if not isinstance(raw, dict):
        raise ValidationError("with_lookup is a collection name or an object", field="with_lookup")
    unknown = set(raw) - {"collection", "with_payload", "with_vectors"}
    if unknown:
        raise ValidationError("unknown field", field=f"with_lookup.{sorted(unknown)[0]}")
    return Lookup(
        collection_name(raw.get("collection"), "with_lookup.collection"),
        payload_selector(raw.get("with_payload"), True, "with_lookup.with_payload"),
        with_vector(raw.get("with_vectors"), False, "with_lookup.with_vectors"),
    )


@dataclass(frozen=True)
class Facet:
    key: str
    limit: int
    filter: dict[str, Any] | None


def facet(body: FacetRequest, max_limit: int) -> Facet:
    no_shard_key(body.shard_key)
    limit = DEFAULT_LIMIT if body.limit is None else body.limit
    return Facet(
        key=payload_key(body.key, "key"),
        limit=in_range(limit, "limit", 1, max_limit),
        filter=canonical_filter(body.filter),
    )
