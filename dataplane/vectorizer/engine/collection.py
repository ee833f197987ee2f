"""One collection: vectors in slots, ids, payloads, and the index over them; a point's
named vectors (further dense ones, sparse ones) sit in its slot too.

Mutations here are deterministic and only ever called by the store, in log order,
from a single thread; so a reader (on the same thread) sees a write entirely or not
at all, and replaying the log rebuilds the same state.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import dataclasses
import itertools
import math
import random
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Literal, NamedTuple, cast

import msgspec
import numpy as np
import numpy.typing as npt
import orjson

from vectorizer.engine import (
    exact,
    field_index,
    grouping,
    ordering,
    paths,
    payloads,
    scoring,
    twins,
)
from vectorizer.engine.config import CollectionConfig, IndexKind, Metric, VectorConfig
from vectorizer.engine.field_index import (
    BYTES_PER_VALUE,
    Narrowed,
    PayloadIndex,
    Schema,
    entries_per_point,
)
from vectorizer.engine.files import load_json, save_array, write_json_arrays
from vectorizer.engine.filters import Payload, Predicate, bind, lookup_of
from vectorizer.engine.grouping import FacetValue
from vectorizer.engine.hnsw import HnswIndex
from vectorizer.engine.named import DenseField, MultiField, MultiVector
from vectorizer.engine.ordering import OrderValue
from vectorizer.engine.sparse import SparseIndex, SparseParams, SparseVector
from vectorizer.engine.validation import Matrix, PointId, id_order
from vectorizer.errors import ValidationError
from vectorizer.observability import tracing

INITIAL_CAPACITY = 1024
# Below this many live points a search is exact: cheaper than the graph and always right.
EXACT_BELOW = 2048
# How a write treats points that exist and those that do not (Qdrant's update_mode).
WriteMode = Literal["upsert", "insert_only", "update_only"]
WRITE_MODES: tuple[WriteMode, ...] = ("upsert", "insert_only", "update_only")
# A filter estimated to match at most this many points is answered exactly over its matches,
# so a selective filter still gets the true top-k.
EXACT_FILTER_MAX = 20_000
_SAMPLE = 256
_SAMPLE_ROUND = 32
_sampler = np.random.default_rng()
# A broader filter first takes the matches among the nearest k / share * POST_FILTER_MARGIN
# points of a walk without it (at most POST_FILTER_MAX): a predicate call per visited node
# (the filtered walk) costs more than the walk. Too few matches there: the filtered walk.
POST_FILTER_MARGIN = 3
POST_FILTER_MAX = 1000
# Fewer matches than 1 / ANTI_CORRELATED of the filter's share among those nearest points:
# the filter and the query are anti-correlated, and the search is exact (see _on_graph).
ANTI_CORRELATED = 3
# While a dot-product graph is built again at another factor (``dotscale.py``), the one in
# place holds its rows at a factor known to be far from theirs: its scores are off, and
# its ranking can be no better than chance (norms 2**-20 off: recall@10 0.0x). Searches
# are exact then where the vectors searched are at most this many floats (130,000 x 32;
# 22,000 x 32 took 6 ms a query, recall@10 1.0, where the old graph's hits scored again
# had 0.03), and the graph's hits are scored again exactly otherwise (k dot products).
# Neither happens but in that window, seconds to a minute.
EXACT_WHILE_REBUILT = 1 << 22
# A point's named vectors, by name (those it has): sparse vectors, (1, dim) rows of named
# dense vectors, and multivectors.
NamedRows = dict[str, SparseVector | Matrix | MultiVector]
# A named dense vector's field: one row a point, or a multivector's
Field = DenseField | MultiField
# Per point beside its floats: the id, its dict entry, list slots and bookkeeping.
POINT_OVERHEAD = 200


def memory_for(config: CollectionConfig, points: int) -> int:
    """Roughly the heap ``points`` points of a collection take: each dense vector in its
    slot array, and in its graph a copy of it with its links (2·m on level 0), label
    and entry in the table of equal vectors (named vectors counted as if every point had
    them)."""
    per_point = POINT_OVERHEAD + BYTES_PER_VALUE * len(config.payload_indexes)
    for vector in (config.main, *config.named_vectors.values()):
        per_point += _vector_bytes(vector) if vector.dimension else 0
    return points * per_point


def _vector_bytes(config: VectorConfig) -> int:
    floats = 4 * config.dimension
    if config.multivector:  # (one row counted: a point's rows are counted as they come)
        return floats
    if config.index is IndexKind.HNSW:
        return 2 * floats + 8 * config.hnsw.m + 12 + twins.BYTES_PER_NODE
    return floats


# msgspec structs: a search builds one per hit, each a single C call, and they encode
# straight to the native API's JSON ({"id", "score"?, "payload", "vector" when asked}).
# Untracked by the garbage collector (gc=False): they hold JSON data, never themselves,
# so they cannot be part of a cycle, and hundreds per batch no longer set off collections.
class Point(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    id: PointId
    payload: Payload | None
    vector: list[float] | None = None


class ScoredPoint(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    id: PointId
    score: float
    payload: Payload | None
    vector: list[float] | None = None


class _Space(NamedTuple):
    """A dense vector as searched: the collection's own, or a named one (a tuple: made
    for every search)."""

    vectors: Matrix  # by slot
    metric: Metric
    graph: HnswIndex | None
    size: int  # how many points have it
    present: npt.NDArray[np.bool_] | None  # by slot, for a named one (None: every point)


_NO_SPAN = contextlib.nullcontext()


def _within(
    hits: list[tuple[int, float]], threshold: float | None, metric: Metric
) -> list[tuple[int, float]]:
    """``hits`` that score at least ``threshold`` (at most, for distances)."""
    if threshold is None:
        return hits
    better = metric.higher_is_better
    return [(s, x) for s, x in hits if (x >= threshold if better else x <= threshold)]


def _rescored(
    space: _Space, query: Matrix, hits: list[tuple[int, float]]
) -> list[tuple[int, float]]:
    """``hits`` of a graph being built again, scored exactly from the stored vectors and
    ordered by those scores (``EXACT_WHILE_REBUILT``)."""
    if not hits:
        return hits
    slots = np.fromiter((s for s, _ in hits), np.int64, len(hits))
    scores = exact.scores(space.vectors[slots], query, space.metric).tolist()
    rescored = list(zip(slots.tolist(), scores, strict=True))
    rescored.sort(key=lambda hit: hit[1], reverse=space.metric.higher_is_better)
    return rescored


def _span(name: str, attributes: dict[str, Any]) -> AbstractContextManager[object]:
    """A tracing span around a search, or nothing when no tracer provider is installed
    (even the API's no-op span costs a search several microseconds)."""
    if not tracing.installed():
        return _NO_SPAN
    return tracing.tracer.start_as_current_span(name, attributes=attributes)


class Collection:
    def __init__(
        self, name: str, config: CollectionConfig, capacity: int = INITIAL_CAPACITY
    ) -> None:
        self.name = name
        self.config = config
        dim = config.dimension
        self._vectors: Matrix = np.zeros((capacity, dim), dtype=np.float32)
        self._alive: npt.NDArray[np.bool_] = np.zeros(capacity, dtype=bool)
        self._ids: list[PointId | None] = [None] * capacity
        self._payloads: list[Payload | None] = [None] * capacity
        self._id_slots: dict[PointId, int] = {}
        self._free: list[int] = []
        self._high = 0  # slots below this have been used at least once
        self._sorted_keys: list[tuple[int, int | str]] | None = None
        self._fields = PayloadIndex()
        for key, schema in config.payload_indexes.items():
            self._fields.create(key, schema, ())
        self._sparse = {n: SparseIndex(p) for n, p in config.sparse_vectors.items()}
        self._named = {n: _field(c, capacity) for n, c in config.named_vectors.items()}
        self._has = self._has_named  # (one object: filters bound to it are cached by it)
        self._index: HnswIndex | None = None
        if config.index is IndexKind.HNSW and config.has_own:
            self._index = HnswIndex(dim, config.metric, config.hnsw, capacity)

    # ---- reads -------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._id_slots)

    def __contains__(self, pid: PointId) -> bool:
        return pid in self._id_slots

    @property
    def floats_per_point(self) -> int:
        """The components of a point's dense vectors, when every one is shown."""
        return self.config.dimension + sum(v.dimension for v in self.config.named_vectors.values())

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            **self.config.to_dict(),
            "vector_count": len(self),
            "capacity": self._capacity,
        }

    def payloads_sample(self, n: int = 1000) -> list[Payload | None]:
        """The payloads of up to ``n`` points."""
        payloads = self._payloads
        return [payloads[s] for s in itertools.islice(self._id_slots.values(), n)]

    def payload_schema(self) -> dict[str, dict[str, Any]]:
        """Each indexed payload key's index type and the points with a value there."""
        return self._fields.schema()

    def memory_to_add(self, points: int) -> int:
        """Roughly the memory ``points`` more points take (as if all were new). Freed
        slots are resident already, so points that fill them cost only their ids; the
        rest take fresh slots, and if those run out the growth copies the slot arrays
        while the old ones are still held."""
        reused = min(points, len(self._free))
        fresh = points - reused
        grows = fresh > self._capacity - self._high
        copy = 0
        if grows:
            copy = self._vectors.nbytes + sum(
                f.vectors.nbytes for f in self._named.values() if isinstance(f, DenseField)
            )
        return memory_for(self.config, fresh) + reused * POINT_OVERHEAD + copy

    def memory_for_payloads(
        self, given: list[Payload | None], key: str | None = None, points: int = 1
    ) -> int:
        """Roughly the heap payloads take once stored: ``given``, one per point, or (a
        ``set_payload``, at path ``key``) one merged into ``points`` points, whose text
        indexes each take its tokens (the payload's values are shared)."""
        heap = payloads.heap_bytes(orjson.dumps(given))
        texts = self._fields.texts
        if texts:
            tokens = sum(field_index.text_entries(texts, p, key) for p in given)
            heap += tokens * points * BYTES_PER_VALUE
        return heap

    def memory_to_add_vector(self, params: VectorConfig | SparseParams) -> int:
        """Roughly the memory another named vector takes when added: a dense one's slot
        array and graph, sized as the collection's (a sparse one: nothing yet)."""
        if isinstance(params, SparseParams) or params.multivector:
            return 0  # (its rows come with the points)
        return self._capacity * _vector_bytes(params)

    def get(self, pid: PointId, *, with_vector: bool = True) -> Point | None:
        slot = self._id_slots.get(pid)
        if slot is None:
            return None
        return self._point(slot, True, with_vector)

    def conditional(
        self,
        ids: list[PointId],
        payloads: list[Payload | None] | None,
        condition: Predicate | None,
        mode: WriteMode,
    ) -> list[int]:
        """Positions of the points a conditional write changes, in order, as Qdrant
        decides them one after another: an existing point only when ``condition``
        accepts its payload (as the batch has left it so far) and ``mode`` is not
        ``insert_only``, a new one unless ``mode`` is ``update_only``. ``payloads`` are
        what the write gives each point (None: it keeps its own)."""
        accepts = self._bound(condition)
        now: dict[PointId, Payload | None] = {}  # points this write has given payloads
        kept = []
        for i, pid in enumerate(ids):
            current = None
            if pid in now or pid in self._id_slots:
                current = now[pid] if pid in now else self._payloads[self._id_slots[pid]]
                if mode == "insert_only" or (accepts is not None and not accepts(pid, current)):
                    continue
            elif mode == "update_only":
                continue
            kept.append(i)
            now[pid] = payloads[i] if payloads is not None else current
        return kept

    def _bound(self, predicate: Predicate | None) -> Predicate | None:
        """``predicate`` with its full-text matches read as this collection's text
        indexes tokenize (``filters.bind``): every public read binds what it is given."""
        return None if predicate is None else bind(predicate, self._fields.texts, self._has)

    def count(self, predicate: Predicate | None = None) -> int:
        predicate = self._bound(predicate)
        if predicate is None:
            return len(self)
        narrowed = self._narrowed(predicate)
        if narrowed is not None and narrowed[1]:  # the indexes answered it exactly
            return len(narrowed[0])
        return sum(1 for _ in self._matching(predicate, narrowed))

    def ids_matching(self, predicate: Predicate) -> list[PointId]:
        return [pid for pid, _ in self._matching(bind(predicate, self._fields.texts, self._has))]

    def _matching(
        self, predicate: Predicate, narrowed: Narrowed | None = None
    ) -> Iterator[tuple[PointId, int]]:
        """(id, slot) of every live point the predicate accepts; only the points the
        payload indexes name (``_narrowed``) are read when they narrow the filter."""
        payloads = self._payloads
        if narrowed is None:
            narrowed = self._narrowed(predicate)
        if narrowed is None:
            return ((pid, s) for pid, s in self._id_slots.items() if predicate(pid, payloads[s]))
        slots, exactly = narrowed
        ids = cast(list[PointId], self._ids)  # the indexes name live slots
        if exactly:
            return ((ids[s], s) for s in slots)
        return ((ids[s], s) for s in slots if predicate(ids[s], payloads[s]))

    def _narrowed(self, predicate: Predicate) -> Narrowed | None:
        """The live slots holding every point the filter can accept, from the payload
        indexes (and ids), and whether they are exactly those; None when they cannot say."""
        lookup = lookup_of(predicate)
        return None if lookup is None else self._fields.candidates(lookup, self._id_slots)

    def _entries(self, predicate: Predicate | None) -> Iterator[tuple[PointId, int]]:
        """(id, slot) of every live point, or of those the predicate accepts."""
        return iter(self._id_slots.items()) if predicate is None else self._matching(predicate)

    def facet(
        self, key: str, limit: int, predicate: Predicate | None = None
    ) -> list[tuple[FacetValue, int]]:
        """The most frequent values at payload ``key`` with their numbers of points."""
        predicate = self._bound(predicate)
        index = self._fields.fields.get(key)
        counts = None if index is None or predicate is not None else index.facet_counts()
        if counts is not None:  # counted as the index kept them
            return grouping.top_facets(counts, limit)
        payloads = self._payloads
        return grouping.facet((payloads[s] for _, s in self._entries(predicate)), key, limit)

    def ordered(
        self,
        key: str,
        limit: int,
        predicate: Predicate | None = None,
        *,
        descending: bool = False,
        start: OrderValue | None = None,
        datetimes: bool | None = None,
        with_payload: bool = True,
        with_vector: bool = False,
    ) -> list[tuple[Point, OrderValue]]:
        """Points in the order of the numbers at payload ``key`` (see ``ordering``), or
        of its datetimes: when ``datetimes`` says so, or (None) when the key has a
        datetime index, or has no index and the points hold no numbers there but
        datetime strings (listed by those, rather than not at all)."""
        predicate = self._bound(predicate)
        index = self._fields.fields.get(key)
        guess = datetimes is None and index is None
        if datetimes is None:
            datetimes = index is not None and index.schema == "datetime"
        walk = None if index is None else index.in_order(descending, start, datetimes)
        if walk is not None:
            picked = self._walked(walk, limit, predicate, descending)
        else:
            payloads = self._payloads

            def listed(
                by_datetimes: bool, start: OrderValue | None = start, limit: int = limit
            ) -> list[tuple[PointId, OrderValue]]:
                return ordering.ordered(
                    ((pid, payloads[s]) for pid, s in self._entries(predicate)),
                    key,
                    descending=descending,
                    start=start,
                    limit=limit,
                    datetimes=by_datetimes,
                )

            picked = listed(datetimes)
            # (none listed from ``start`` on: past the numbers, or no numbers at all, the
            # points holding datetimes, as the listing's first page said, in microseconds)
            if not picked and guess and (start is None or not listed(False, None, 1)):
                picked = listed(True)
        slots = self._id_slots
        return [(self._point(slots[pid], with_payload, with_vector), v) for pid, v in picked]

    def _walked(
        self,
        walk: Iterator[tuple[OrderValue, set[int]]],
        limit: int,
        predicate: Predicate | None,
        descending: bool,
    ) -> list[tuple[PointId, OrderValue]]:
        """The first ``limit`` matching (id, number) of an index's numbers in order; equal
        numbers go by id. Reads only as far as the listing goes."""
        ids, payloads = cast(list[PointId], self._ids), self._payloads
        narrowed = None if predicate is None else self._narrowed(predicate)
        picked: list[tuple[PointId, OrderValue]] = []
        for value, slots in walk:
            for s in sorted(slots, key=lambda s: id_order(ids[s]), reverse=descending):
                if predicate is not None:
                    if narrowed is not None and s not in narrowed[0]:
                        continue
                    if (narrowed is None or not narrowed[1]) and not predicate(ids[s], payloads[s]):
                        continue
                picked.append((ids[s], value))
                if len(picked) == limit:
                    return picked
        return picked

    def sample(
        self,
        limit: int,
        predicate: Predicate | None = None,
        *,
        with_payload: bool = True,
        with_vector: bool = False,
    ) -> list[Point]:
        """Up to ``limit`` points drawn at random (without repeats) from those that match."""
        predicate = self._bound(predicate)
        slots = [slot for _, slot in self._entries(predicate)]
        picked = random.sample(slots, min(limit, len(slots)))
        return [self._point(slot, with_payload, with_vector) for slot in picked]

    def scroll(
        self,
        limit: int,
        offset: PointId | None = None,
        predicate: Predicate | None = None,
        *,
        with_payload: bool = True,
        with_vector: bool = False,
    ) -> tuple[list[Point], PointId | None]:
        """Points in id order (integers first) from ``offset`` on, and the next offset."""
        predicate = self._bound(predicate)
        narrowed = None if predicate is None else self._narrowed(predicate)
        if narrowed is None or 2 * len(narrowed[0]) > len(self):
            keys = self._keys_in_order()
        else:  # sorting the few points the indexes name beats reading every payload
            keys = sorted(id_order(self._ids[s]) for s in narrowed[0])  # type: ignore[arg-type]
            if narrowed[1]:
                predicate = None  # and they are exactly the matches
        start = 0 if offset is None else bisect.bisect_left(keys, id_order(offset))
        out: list[Point] = []
        for key in keys[start:]:
            pid = key[1]
            slot = self._id_slots[pid]
            if predicate is not None and not predicate(pid, self._payloads[slot]):
                continue
            if len(out) == limit:
                return out, pid
            out.append(self._point(slot, with_payload, with_vector))
        return out, None

    def search(
        self,
        query: Matrix,
        limit: int,
        *,
        offset: int = 0,
        predicate: Predicate | None = None,
        ef: int | None = None,
        exact_search: bool = False,
        threshold: float | None = None,
        with_payload: bool = True,
        with_vector: bool = False,
        using: str = "",
    ) -> list[ScoredPoint]:
        """Best matches for a prepared ``query`` (1, dim), best first, by the dense
        vector ``using`` ("": the collection's own; else a named one)."""
        predicate = self._bound(predicate)
        space = self._space(using)
        k = min(limit + offset, space.size)
        if k <= 0:
            return []
        with _span("search", {"vectorizer.k": k, "vectorizer.filtered": predicate is not None}):
            hits = self._search_slots(space, query, k, predicate, ef, exact_search)
            return self._finish(hits, offset, threshold, with_payload, with_vector, space.metric)

    def search_many(
        self,
        queries: Matrix,
        limit: int,
        *,
        offset: int = 0,
        ef: int | None = None,
        exact_search: bool = False,
        threshold: float | None = None,
        with_payload: bool = True,
        with_vector: bool = False,
        using: str = "",
    ) -> list[list[ScoredPoint]]:
        """Unfiltered searches sharing their parameters, answered together: one pass over
        the graph for all of them, with the same results as one ``search`` each."""
        space = self._space(using)
        k = min(limit + offset, space.size)
        if k <= 0:
            return [[] for _ in range(len(queries))]
        index = self._graph_for(space, exact_search)
        with _span("search", {"vectorizer.queries": len(queries)}):
            many = index.search_many(queries, k, ef) if index else None
            if many is not None and index and index.rebuilding:
                many = [_rescored(space, queries[i : i + 1], h) for i, h in enumerate(many)]
        if many is None:
            many = [
                self._search_slots(space, queries[i : i + 1], k, None, ef, exact_search)
                for i in range(len(queries))
            ]
        metric = space.metric
        return [
            self._finish(hits, offset, threshold, with_payload, with_vector, metric)
            for hits in many
        ]

    @staticmethod
    def _graph_for(space: _Space, exact_search: bool) -> HnswIndex | None:
        """The graph to search ``space`` in, or None: exactly (see ``EXACT_BELOW`` and
        ``EXACT_WHILE_REBUILT``)."""
        index = space.graph
        if index is None or exact_search or space.size <= EXACT_BELOW:
            return None
        if index.rebuilding and space.size * space.vectors.shape[1] <= EXACT_WHILE_REBUILT:
            return None
        return index

    def _space(self, using: str) -> _Space:
        if self._is_own(using, "using"):
            return _Space(self._vectors, self.config.metric, self._index, len(self), None)
        named = self._named.get(using)
        if named is None:  # (removed since the search was checked: a batch waited a turn)
            raise self._no_dense(using, "using")
        if isinstance(named, MultiField):
            raise ValidationError(
                f"{using!r} is a multivector: query it with a list of vectors", field="using"
            )
        return _Space(named.vectors, named.config.metric, named.index, len(named), named.present)

    def dense_config(self, name: str, field: str) -> VectorConfig:
        """The config of the dense vector ``name`` ("": the collection's own, or its
        unnamed multivector)."""
        if self._is_own(name, field):
            return self.config.main
        named = self._named.get(name)
        if named is None:
            raise self._no_dense(name, field)
        return named.config

    def _no_dense(self, name: str, field: str) -> ValidationError:
        return ValidationError(
            f"collection {self.name!r} has no dense vector named {name!r} "
            f"({self.config.vector_names()})",
            field=field,
        )

    def _is_own(self, name: str, field: str) -> bool:
        """Whether ``name`` is the collection's own dense vector (``""``, refused where it
        has none; but ``""`` is a named vector where it is an unnamed multivector)."""
        if name or "" in self._named:
            return False
        self.require_own(field)
        return True

    def require_own(self, field: str) -> None:
        """Refuse a use of the collection's own dense vector when it has none."""
        if not self.config.has_own:
            raise ValidationError(
                f"collection {self.name!r} has no dense vector of its own "
                f"({self.config.vector_names()}): name the vector",
                field=field,
            )

    def has_sparse(self, name: str, field: str) -> str:
        """``name``, if the collection has sparse vectors of that name."""
        if name not in self._sparse:
            raise ValidationError(
                f"collection {self.name!r} has no sparse vector named {name!r} "
                f"({self.config.vector_names()})",
                field=field,
            )
        return name

    def is_sparse(self, name: str) -> bool:
        return name in self._sparse

    def is_dense(self, name: str) -> bool:
        return (not name and self.config.has_own) or name in self._named

    def is_multi(self, name: str) -> bool:
        return isinstance(self._named.get(name), MultiField)

    def check_named(self, name: str, field: str) -> str:
        """``name``, if the collection has a named vector (sparse or dense) of that name."""
        if name in self._sparse:
            return name
        self.dense_config(name, field)
        return name

    def search_sparse(
        self,
        name: str,
        query: SparseVector,
        limit: int,
        *,
        offset: int = 0,
        predicate: Predicate | None = None,
        threshold: float | None = None,
        with_payload: bool = True,
        with_vector: bool = False,
    ) -> list[ScoredPoint]:
        """The best points by the dot product of their sparse vector ``name`` with
        ``query`` (see ``engine.sparse``): only points sharing an index with it."""
        predicate = self._bound(predicate)
        slots, scores = self._sparse[name].scores(query)
        if threshold is not None:
            keep = scores >= threshold
            slots, scores = slots[keep], scores[keep]
        k = limit + offset
        if predicate is None:
            hits = exact.best(slots, scores, k)
        else:
            hits = self._best_matching(slots, scores, k, predicate)
        return self._finish(hits[offset:], 0, None, with_payload, with_vector)

    def search_multi(
        self,
        name: str,
        query: Matrix,
        limit: int,
        *,
        offset: int = 0,
        predicate: Predicate | None = None,
        threshold: float | None = None,
        with_payload: bool = True,
        with_vector: bool = False,
    ) -> list[ScoredPoint]:
        """The best points by MaxSim of their multivector ``name`` with ``query`` (its
        rows prepared as the vector's metric wants them), from an exact scan of the
        matching points that have one."""
        predicate = self._bound(predicate)
        field = self._named[name]
        assert isinstance(field, MultiField)
        space = _Space(self._vectors, field.config.metric, None, len(field), field.present)
        slots = self._matching_slots(space, predicate, None)
        hits = exact.best(slots, field.scores(query, slots), limit + offset)
        if threshold is not None:
            hits = [(s, x) for s, x in hits if x >= threshold]
        return self._finish(hits[offset:], 0, None, with_payload, with_vector)

    def _best_matching(
        self,
        slots: exact.Slots,
        scores: exact.Scores,
        k: int,
        predicate: Predicate,
        higher_is_better: bool = True,
    ) -> list[tuple[int, float]]:
        """The ``k`` best of ``slots`` that ``predicate`` accepts, reading the payloads of
        the best first, in order, until ``k`` pass: the best 4k (at least 256) ranked,
        then eight times as many of the rest while too few pass, until what is left is
        mostly unread: then every payload left is read and its matches ranked. Each
        payload is read at most once, and none past the k-th match in score order."""
        ids, payloads = cast(list[PointId], self._ids), self._payloads  # (live slots)
        key = -scores if higher_is_better else scores
        hits: list[tuple[int, float]] = []
        take = max(4 * k, 256)
        while 2 * take < slots.size:
            part = np.argpartition(key, take - 1)[:take]
            part = part[np.argsort(key[part], kind="stable")]
            for slot, score in zip(slots[part].tolist(), scores[part].tolist(), strict=True):
                if predicate(ids[slot], payloads[slot]):
                    hits.append((slot, score))
                    if len(hits) == k:
                        return hits
            rest = np.ones(slots.size, dtype=bool)
            rest[part] = False
            slots, scores, key = slots[rest], scores[rest], key[rest]
            take *= 8
        keep = np.fromiter(
            (predicate(ids[slot], payloads[slot]) for slot in slots.tolist()), bool, slots.size
        )
        return hits + exact.best(slots[keep], scores[keep], k - len(hits), higher_is_better)

    def by_score(
        self,
        score: Callable[[Matrix], exact.Scores],
        limit: int,
        *,
        offset: int = 0,
        predicate: Predicate | None = None,
        threshold: float | None = None,
        with_payload: bool = True,
        with_vector: bool = False,
        using: str = "",
    ) -> list[ScoredPoint]:
        """The best points by ``score`` (of rows of the dense vector ``using``; higher is
        better whatever the metric: see ``scoring``), from an exact scan of the matching
        points."""
        predicate = self._bound(predicate)
        space = self._space(using)
        slots = self._matching_slots(space, predicate, None)
        hits = exact.best(slots, exact.chunked(space.vectors, slots, score), limit + offset)
        if threshold is not None:
            hits = [(s, x) for s, x in hits if x >= threshold]
        return self._finish(hits[offset:], 0, None, with_payload, with_vector)

    def diverse(
        self,
        query: Matrix,
        limit: int,
        candidates: int,
        diversity: float,
        *,
        offset: int = 0,
        predicate: Predicate | None = None,
        ef: int | None = None,
        exact_search: bool = False,
        threshold: float | None = None,
        with_payload: bool = True,
        with_vector: bool = False,
        using: str = "",
    ) -> list[ScoredPoint]:
        """Maximal marginal relevance (``scoring.mmr``) among the ``candidates`` nearest
        points (those within ``threshold``) by the dense vector ``using``; each keeps its
        nearness score."""
        predicate = self._bound(predicate)
        space = self._space(using)
        k = min(candidates, space.size)
        if k <= 0:
            return []
        found = self._search_slots(space, query, k, predicate, ef, exact_search)
        hits = _within(found, threshold, space.metric)
        rows = space.vectors[np.asarray([s for s, _ in hits], dtype=np.int64)]
        relevance = scoring.similarities(rows, query, space.metric)[:, 0]
        order = scoring.mmr(rows, relevance, limit + offset, diversity, space.metric)
        picked = [hits[i] for i in order[offset:]]
        return self._finish(picked, 0, None, with_payload, with_vector, space.metric)

    def _finish(
        self,
        hits: list[tuple[int, float]],
        offset: int,
        threshold: float | None,
        with_payload: bool,
        with_vector: bool,
        metric: Metric | None = None,
    ) -> list[ScoredPoint]:
        """Hits as points; ``threshold`` is taken as ``metric`` scores (by default the
        collection's own vector's)."""
        if threshold is not None:
            hits = _within(hits, threshold, metric or self.config.metric)
        if offset:
            hits = hits[offset:]
        # Hits are live slots: their ids are set.
        ids, payloads, vectors = cast(list[PointId], self._ids), self._payloads, self._vectors
        # The hottest lines of a search after the graph walk: one per hit.
        if with_vector and self.config.has_own:
            return [
                ScoredPoint(ids[s], x, payloads[s] if with_payload else None, vectors[s].tolist())
                for s, x in hits
            ]
        if with_payload:
            return [ScoredPoint(ids[s], x, payloads[s]) for s, x in hits]
        return [ScoredPoint(ids[s], x, None) for s, x in hits]

    def _search_slots(
        self,
        space: _Space,
        query: Matrix,
        k: int,
        predicate: Predicate | None,
        ef: int | None,
        exact_search: bool,
    ) -> list[tuple[int, float]]:
        index = self._graph_for(space, exact_search)
        if predicate is None:
            hits = index.search(query, k, ef, None) if index else None
            if hits is not None:
                return _rescored(space, query, hits) if index and index.rebuilding else hits
            return self._exact(space, query, self._matching_slots(space, None, None), k)
        # Few enough points named by the payload indexes: exactly over those. (Counted
        # before they are gathered: gathering a broad filter's costs more than it saves.)
        narrowed = None
        lookup = lookup_of(predicate)
        if lookup is not None:
            bound = self._fields.estimate(lookup, self._id_slots)
            if bound is not None and bound <= EXACT_FILTER_MAX:
                narrowed = self._fields.candidates(lookup, self._id_slots)
        if narrowed is None and index:
            hits = self._on_graph(space, index, query, k, predicate, ef)
            if hits is not None:
                return _rescored(space, query, hits) if index.rebuilding else hits
        # Every candidate (those the indexes name, or every point) scored, no payload
        # read; then the payloads of the best read first until k pass: the same top k as
        # scoring the matches of a scan of every candidate's payload.
        if narrowed is None:
            slots, exactly = self._live_slots(), False
        else:
            slots = np.fromiter(sorted(narrowed[0]), np.int64, len(narrowed[0]))
            exactly = narrowed[1]
        if space.present is not None:
            slots = slots[space.present[slots]]
        if exactly:
            return self._exact(space, query, slots, k)
        scores = exact.scores_of(space.vectors, slots, query, space.metric)
        return self._best_matching(slots, scores, k, predicate, space.metric.higher_is_better)

    def _on_graph(
        self,
        space: _Space,
        index: HnswIndex,
        query: Matrix,
        k: int,
        predicate: Predicate,
        ef: int | None,
    ) -> list[tuple[int, float]] | None:
        """The top ``k`` that ``predicate`` accepts, from the graph, if it is estimated to
        accept more than ``EXACT_FILTER_MAX`` points: the matches among the nearest
        k / share * ``POST_FILTER_MARGIN`` points (at most ``POST_FILTER_MAX``) of a walk
        without it (with that much more ``ef``), or, too few matching there, a walk with
        it. None (exactly, then) for a narrower filter, for one that matches far fewer
        of those nearest points than its share, or when the graph yields fewer than
        ``k``."""
        matches = self._estimated_matches(predicate)
        if matches <= EXACT_FILTER_MAX:
            return None
        ids, payloads = cast(list[PointId], self._ids), self._payloads

        def accept(slot: int) -> bool:
            return predicate(ids[slot], payloads[slot])

        wider = min(math.ceil(k * len(self) / matches * POST_FILTER_MARGIN), POST_FILTER_MAX)
        wide_ef = (ef or index.params.ef_search) + wider
        nearest = index.search(query, min(wider, space.size), wide_ef, None) or []
        kept = [hit for hit in nearest if accept(hit[0])]
        if len(kept) >= k:
            return kept[:k]
        if len(kept) * ANTI_CORRELATED < len(nearest) * matches / len(self):
            # Far fewer matches near the query than the filter's share (the matches lie
            # away from it, in other clusters): the filtered walk fills its candidates
            # with the first matches it meets and stops (recall@10 0.2-0.9 measured on
            # clustered data, whatever ef). Exactly instead.
            return None
        return index.search(query, k, ef, accept)

    def _exact(
        self, space: _Space, query: Matrix, slots: exact.Slots, k: int
    ) -> list[tuple[int, float]]:
        return exact.top_k(space.vectors, slots, query, space.metric, k)

    def _live_slots(self) -> exact.Slots:
        return np.flatnonzero(self._alive[: self._high]).astype(np.int64)

    def _matching_slots(
        self, space: _Space, predicate: Predicate | None, narrowed: Narrowed | None
    ) -> exact.Slots:
        """The slots of the points ``predicate`` accepts (None: every point) that have
        the vector ``space``."""
        if predicate is None:
            slots = self._live_slots()
        else:
            matching = (s for _, s in self._matching(predicate, narrowed))
            slots = np.asarray(sorted(matching), dtype=np.int64)
        if space.present is not None:
            slots = slots[space.present[slots]]
        return slots

    def _estimated_matches(self, predicate: Predicate) -> float:
        """How many points ``predicate`` accepts, from a random sample of up to
        ``_SAMPLE`` of them, drawn in rounds: the sampling stops once the count is plainly
        over ``EXACT_FILTER_MAX`` (two standard deviations of the hits under it), so a
        broad filter reads ~32 payloads rather than 256. Slots are drawn at random and
        the free ones passed over, unless most are free (then from the live ones' list)."""
        live = len(self)
        if live == 0:
            return 0.0
        pool = None if 2 * live >= self._high else self._live_slots()
        ids, payloads = self._ids, self._payloads
        hits = drawn = 0
        while drawn < min(_SAMPLE, live):
            want = min(_SAMPLE_ROUND, _SAMPLE - drawn)
            if pool is None:  # (at least half of the draws are live)
                slots = _sampler.integers(0, self._high, 2 * want)
                slots = slots[self._alive[slots]][:want]
            else:
                slots = _sampler.choice(pool, want)
            for slot in slots.tolist():
                hits += predicate(ids[slot], payloads[slot])
            drawn += len(slots)
            if drawn and (hits - 2 * math.sqrt(hits)) / drawn * live > EXACT_FILTER_MAX:
                break
        return hits / max(drawn, 1) * live

    def _point(self, slot: int, with_payload: bool, with_vector: bool) -> Point:
        pid = self._ids[slot]
        assert pid is not None
        return Point(
            pid,
            self._payloads[slot] if with_payload else None,
            self._vectors[slot].tolist() if with_vector and self.config.has_own else None,
        )

    def _keys_in_order(self) -> list[tuple[int, int | str]]:
        if self._sorted_keys is None:
            self._sorted_keys = sorted(id_order(pid) for pid in self._id_slots)
        return self._sorted_keys

    # ---- mutations (store only, in log order) --------------------------------------------

    def upsert(
        self,
        ids: list[PointId],
        vectors: Matrix,
        payloads: list[Payload | None],
        named: list[NamedRows] | None = None,
    ) -> None:
        """Insert or replace points (with their named vectors: those not given are gone);
        a replaced point moves to a new slot in one step."""
        last = {pid: i for i, pid in enumerate(ids)}
        if len(last) != len(ids):  # the same id twice in one batch: the last one wins
            keep = sorted(last.values())
            ids, vectors, payloads = (
                [ids[i] for i in keep],
                vectors[keep],
                [payloads[i] for i in keep],
            )
            if named is not None:
                named = [named[i] for i in keep]
        self._place(ids, vectors, payloads, named=named)

    def update(self, pid: PointId, vector: Matrix | None, payload: Payload | None) -> None:
        """Replace the vector and/or payload of an existing point, atomically."""
        slot = self._id_slots[pid]
        new_payload = self._payloads[slot] if payload is None else payload
        if vector is None:
            self._store_payload(slot, new_payload)
        else:
            self._place([pid], vector, [new_payload], stage=True, overlay=True)

    def update_vectors(
        self, ids: list[PointId], vectors: Matrix | None, named: list[NamedRows] | None = None
    ) -> None:
        """Replace the vectors of existing points, keeping their payloads, in one step:
        their own dense vectors when ``vectors`` are given, and the named ones ``named``
        names (the others kept)."""
        if vectors is None and not self.config.has_own and self._graphs:
            vectors = np.zeros((len(ids), 0), dtype=np.float32)  # (moved: see ``_place``)
        if vectors is not None:
            payloads = [self._payloads[self._id_slots[pid]] for pid in ids]
            self._place(ids, vectors, payloads, stage=True, named=named, overlay=True)
            return
        slots = [self._id_slots[pid] for pid in ids]
        self._put_named(slots, named or [{} for _ in slots], only_given=True)

    def delete_vectors(self, ids: Iterable[PointId], names: Iterable[str]) -> None:
        """Remove the named vectors (sparse or dense) of the points (a point may lack
        them)."""
        fields = [self._named_field(n) for n in names]
        for pid in ids:
            slot = self._id_slots[pid]
            for field in fields:
                field.remove(slot)

    def _named_field(self, name: str) -> SparseIndex | Field:
        """The named vector ``name`` (sparse or dense; an empty one is still there)."""
        sparse = self._sparse.get(name)
        return sparse if sparse is not None else self._named[name]

    def _put_named(self, slots: list[int], rows: list[NamedRows], only_given: bool) -> None:
        """Give each of ``slots`` its named vectors ``rows``: those not given are gone,
        or (``only_given``) kept."""
        for name, index in self._sparse.items():
            for slot, got in zip(slots, rows, strict=True):
                if name in got:
                    index.put(slot, cast(SparseVector, got[name]))
                elif not only_given:
                    index.remove(slot)
        for name, field in self._named.items():
            pairs = zip(slots, rows, strict=True)
            given = [(slot, got[name]) for slot, got in pairs if name in got]
            to = [slot for slot, _ in given]
            if isinstance(field, MultiField):
                field.put(to, [cast(MultiVector, v) for _, v in given])
            elif given:
                field.put(to, np.concatenate([cast(Matrix, row) for _, row in given]))
            if not only_given:
                for slot, got in zip(slots, rows, strict=True):
                    if name not in got:
                        field.remove(slot)

    def _place(
        self,
        ids: list[PointId],
        vectors: Matrix,
        payloads: list[Payload | None],
        *,
        stage: bool = False,
        named: list[NamedRows] | None = None,
        overlay: bool = False,
    ) -> None:
        """Put points in slots. ``named``: their named vectors (None: none), replacing
        those they had, or (``overlay``) over them (None: theirs kept); a point's named
        vectors move with it to a new slot (relinked in their graphs)."""
        # With a graph, a new vector for an existing id goes to a fresh slot and the old
        # slot is retired: inserting a node costs a fraction of hnswlib's
        # in-place re-linking (a named vector's graph too: 1,000 points written again,
        # 37 ms moved against 205 ms in place). Without a graph, overwriting in place is
        # cheapest. ``stage`` puts the new vectors in the index's delta buffer (searched
        # exactly, folded into the graph in batches) instead of linking each into the
        # graph now.
        graph = self._graphs
        old = [self._id_slots.get(pid) for pid in ids]
        has_named = bool(self._sparse or self._named)
        named_rows = self._named_rows(old, named, overlay) if has_named else None
        slots = [o if o is not None and not graph else self._take_slot() for o in old]
        if graph:
            # The old slots go first, with every graph idle: a retired node's twin takes
            # its place reading the node's row from the graph, which would wait (on the
            # loop) for the link of a large batch started below.
            for o in old:
                if o is not None:
                    self._retire(o)
        self._vectors[slots] = vectors
        if self._index is not None:
            if stage:
                for row, slot in enumerate(slots):
                    self._index.stage(vectors[row : row + 1], slot)
            else:
                self._index.add(vectors, slots)
        fields = self._fields if self._fields else None
        for slot, pid, payload in zip(slots, ids, payloads, strict=True):
            if fields is not None:
                fields.remove(slot, self._payloads[slot])  # (a slot overwritten in place)
                fields.add(slot, payload)
            self._ids[slot] = pid
            self._payloads[slot] = payload
            self._alive[slot] = True
            self._id_slots[pid] = slot
        if named_rows is not None:
            self._put_named(slots, named_rows, only_given=False)
        if any(o is None for o in old):
            self._sorted_keys = None

    @property
    def _graphs(self) -> bool:
        """Whether a graph holds the points' vectors (its own, or a named vector's)."""
        if self._index is not None:
            return True
        return any(isinstance(f, DenseField) and f.index is not None for f in self._named.values())

    def _named_rows(
        self, old: list[int | None], given: list[NamedRows] | None, overlay: bool
    ) -> list[NamedRows]:
        """What named vectors each point placed has: ``given``, or (``overlay``) those
        it had (in its ``old`` slot) with ``given`` over them."""
        if not overlay:
            return given if given is not None else [{} for _ in old]
        had = [self.named_of_slot(o) if o is not None else {} for o in old]
        if given is None:
            return had
        return [{**h, **g} for h, g in zip(had, given, strict=True)]

    def _has_named(self, name: str) -> Callable[[PointId], bool]:
        """Whether a point has the named vector ``name`` (none has one it lacks; every
        point has the collection's own, ``""``, if it has one)."""
        if not name and self.config.has_own:
            return lambda _pid: True
        field = self._named_field(name) if name in self._sparse or name in self._named else None
        if field is None:
            return lambda _pid: False
        id_slots = self._id_slots
        return lambda pid: (slot := id_slots.get(pid)) is not None and slot in field

    def named_of_slot(self, slot: int) -> NamedRows:
        out: NamedRows = {}
        for name, index in self._sparse.items():
            vec = index.get(slot)
            if vec is not None:
                out[name] = vec
        for name, field in self._named.items():
            row = field.get(slot)
            if row is not None:
                out[name] = row
        return out

    def named_vector(self, pid: PointId, name: str) -> SparseVector | Matrix | MultiVector | None:
        """Point ``pid``'s named vector ``name`` (None: it has none; the point exists)."""
        return self._named_field(name).get(self._id_slots[pid])

    def named_of(self, pid: PointId) -> NamedRows:
        """The named vectors point ``pid`` has, by name (none for a missing point): sparse
        vectors, and dense ones as (1, dim) rows."""
        slot = self._id_slots.get(pid)
        return {} if slot is None else self.named_of_slot(slot)

    def fold(self, *, wait: bool = True) -> int:
        """Start linking the staged vectors into the graphs (see ``HnswIndex.fold``);
        returns how many. Like any mutation it runs on the store's thread."""
        return sum(index.fold(wait=wait) for index in self._indexes())

    def settle(self) -> None:
        """Wait until a fold in progress has linked its batch."""
        for index in self._indexes():
            index.settle()

    def linking(self) -> Future[None] | None:
        """A large batch's link in progress in one of the graphs (see
        ``HnswIndex.linking``), if any."""
        for index in self._indexes():
            if (busy := index.linking()) is not None:
                return busy
        return None

    async def graphs_settled(self) -> None:
        """Wait, without holding the loop, until no large batch is being linked into a
        graph of this collection: what the loop does with a graph (a search, a write)
        would otherwise wait for it holding the loop. A failed link is raised by the
        graph's next use, not here."""
        while (busy := self.linking()) is not None:
            await asyncio.wait([asyncio.wrap_future(busy)])

    @property
    def staged(self) -> int:
        return sum(index.staged for index in self._indexes())

    @property
    def graphs_put(self) -> int:
        """Graphs put in place since this collection was made or loaded (a dot-product
        graph built again: see ``HnswIndex.generation``); a snapshot taken since saved
        them when this is unchanged."""
        return sum(index.generation for index in self._indexes())

    def close(self) -> list[Future[Any]]:
        """Cancel the graphs' rebuilds in progress (the collection is deleted, replaced,
        or its store closing); those to wait for (``HnswIndex.close``)."""
        return [f for f in (index.close() for index in self._indexes()) if f is not None]

    def _indexes(self) -> list[HnswIndex]:
        """Every graph: the own vector's and the named dense vectors'. (Updates stage
        only the own vector's; a named graph stages the twin that takes the place of a
        deleted node, see ``twins.py``.)"""
        named = [f.index for f in self._named.values() if isinstance(f, DenseField)]
        return [i for i in (self._index, *named) if i is not None]

    def set_payload(
        self,
        ids: Iterable[PointId],
        payload: Payload,
        overwrite: bool,
        key: str | None = None,
        nulls_remove: bool = True,
    ) -> None:
        """Merge ``payload`` into the points' payloads (under ``key``, a path, when given;
        a null removing its key unless ``nulls_remove`` is off, as for records logged
        before that rule), or replace them with it (``overwrite``)."""
        steps = None if key is None else paths.parse(key)
        for pid in ids:
            slot = self._id_slots[pid]
            old = self._payloads[slot]
            if steps is not None:
                self._store_payload(slot, payloads.merged_at(old, steps, payload, nulls_remove))
            elif overwrite:
                self._store_payload(slot, dict(payload))
            else:
                self._store_payload(slot, payloads.merged(old, payload, nulls_remove))

    def delete_payload(
        self, ids: Iterable[PointId], keys: list[str], json_paths: bool = True
    ) -> None:
        """Remove ``keys`` from the payloads: payload paths (``a.b``, ``a[].b``,
        ``"a.b"``), or, for records logged before paths (``json_paths`` off), keys
        split at their dots."""
        steps: list[list[paths.Step]] = [
            paths.parse(key) if json_paths else list(key.split(".")) for key in keys
        ]
        for pid in ids:
            slot = self._id_slots[pid]
            old = self._payloads[slot]
            new = old
            for path in steps:
                new = payloads.removed_at(new, path) if new is not None else None
            if new is not old:
                self._store_payload(slot, new)

    def _store_payload(self, slot: int, payload: Payload | None) -> None:
        """Give a live point a new payload, and the indexes its values."""
        if self._fields:
            self._fields.remove(slot, self._payloads[slot])
            self._fields.add(slot, payload)
        self._payloads[slot] = payload

    def index_entries(self, key: str, schema: Schema, sample: int = 1000) -> int:
        """About how many entries an index of ``schema`` on ``key`` would hold here,
        from a random sample of the points (a text index holds each point's tokens)."""
        slots = list(self._id_slots.values())
        picked = random.sample(slots, min(sample, len(slots)))
        per_point = entries_per_point(key, schema, (self._payloads[s] for s in picked))
        return round(per_point * len(slots))

    def create_field_index(self, key: str, schema: Schema) -> None:
        """Index the values at payload ``key`` (replacing an index of another type)."""
        indexes = {**self.config.payload_indexes, key: schema}
        self.config = dataclasses.replace(self.config, payload_indexes=indexes)
        payloads = self._payloads
        self._fields.create(key, schema, ((s, payloads[s]) for s in self._id_slots.values()))

    def add_vector(self, name: str, params: VectorConfig | SparseParams) -> None:
        """Give the collection another named vector (dense or sparse), which no point has
        yet."""
        if isinstance(params, SparseParams):
            sparse_vectors = {**self.config.sparse_vectors, name: params}
            self.config = dataclasses.replace(self.config, sparse_vectors=sparse_vectors)
            self._sparse[name] = SparseIndex(params)
        else:
            named_vectors = {**self.config.named_vectors, name: params}
            self.config = dataclasses.replace(self.config, named_vectors=named_vectors)
            self._named[name] = _field(params, self._capacity)
        self._has = self._has_named  # (a new object: filters bound before bind again)

    def drop_vector(self, name: str) -> None:
        """Remove a named vector (dense or sparse) from the collection and its points."""
        if name in self._sparse:
            del self._sparse[name]
            sparse_vectors = {k: v for k, v in self.config.sparse_vectors.items() if k != name}
            self.config = dataclasses.replace(self.config, sparse_vectors=sparse_vectors)
        else:
            del self._named[name]
            named_vectors = {k: v for k, v in self.config.named_vectors.items() if k != name}
            self.config = dataclasses.replace(self.config, named_vectors=named_vectors)
        self._has = self._has_named

    def drop_field_index(self, key: str) -> None:
        indexes = {k: v for k, v in self.config.payload_indexes.items() if k != key}
        self.config = dataclasses.replace(self.config, payload_indexes=indexes)
        self._fields.drop(key)

    def delete(self, ids: Iterable[PointId]) -> int:
        deleted = 0
        for pid in ids:
            slot = self._id_slots.pop(pid, None)
            if slot is not None:
                self._retire(slot)
                deleted += 1
        if deleted:
            self._sorted_keys = None
        return deleted

    def _retire(self, slot: int) -> None:
        if self._index is not None:
            self._index.delete(slot)
        if self._fields:
            self._fields.remove(slot, self._payloads[slot])
        for index in self._sparse.values():
            index.remove(slot)
        for field in self._named.values():
            field.remove(slot)
        self._alive[slot] = False
        self._ids[slot] = None
        self._payloads[slot] = None
        self._free.append(slot)

    def _take_slot(self) -> int:
        """A never-used slot while capacity lasts, then a freed one, then grow.

        Re-using a freed slot makes hnswlib re-link a deleted node in place, which costs
        several fresh insertions; so freed slots wait until capacity runs out.
        """
        if self._high == self._capacity and not self._free:
            self._grow(self._capacity * 2)
        if self._high < self._capacity:
            self._high += 1
            return self._high - 1
        return self._free.pop()

    @property
    def _capacity(self) -> int:
        return int(self._vectors.shape[0])

    def _grow(self, capacity: int) -> None:
        old = self._capacity
        vectors = np.zeros((capacity, self.config.dimension), dtype=np.float32)
        vectors[:old] = self._vectors
        alive = np.zeros(capacity, dtype=bool)
        alive[:old] = self._alive
        self._vectors, self._alive = vectors, alive
        self._ids.extend([None] * (capacity - old))
        self._payloads.extend([None] * (capacity - old))
        if self._index is not None:
            self._index.resize(capacity)
        for field in self._named.values():
            field.resize(capacity)

    # ---- snapshots ------------------------------------------------------------------------

    def export(self, directory: Path) -> dict[str, Any]:
        """Write the collection's files into ``directory``; returns what the manifest records."""
        high = self._high
        save_array(directory / "vectors.npy", self._vectors[:high])
        save_array(directory / "alive.npy", self._alive[:high])
        arrays: dict[str, Any] = {"ids": self._ids[:high], "payloads": self._payloads[:high]}
        for name, index in self._sparse.items():
            column: list[Any] = [None] * high
            for slot, vec in index.items():
                column[slot] = vec.to_record()
            arrays[f"sparse:{name}"] = column
        write_json_arrays(directory / "points.json", arrays)
        if self._index is not None:
            self._index.save(directory / "hnsw.bin")
        for n, named in enumerate(self._named.values()):
            named.export(directory, named_prefix(n), high)
        return {
            "name": self.name,
            "config": self.config.to_dict(),
            "count": len(self),
            "slots": high,
            "index_values": self._fields.values(),
        }

    @classmethod
    def restore(cls, directory: Path, name: str, config: CollectionConfig) -> Collection:
        # Mapped, not read: the files' bytes stay page cache while they are copied in.
        vectors = np.load(directory / "vectors.npy", mmap_mode="r", allow_pickle=False)
        alive = np.load(directory / "alive.npy", allow_pickle=False)
        points = load_json(directory / "points.json")
        high = int(vectors.shape[0])
        capacity = max(INITIAL_CAPACITY, 1 << max(high - 1, 0).bit_length())
        self = cls.__new__(cls)
        self.name, self.config = name, config
        self._vectors = np.zeros((capacity, config.dimension), dtype=np.float32)
        self._vectors[:high] = vectors
        self._alive = np.zeros(capacity, dtype=bool)
        self._alive[:high] = alive
        self._ids = list(points["ids"]) + [None] * (capacity - high)
        self._payloads = list(points["payloads"]) + [None] * (capacity - high)
        self._id_slots = {pid: s for s, pid in enumerate(self._ids[:high]) if pid is not None}
        self._free = [s for s in range(high - 1, -1, -1) if self._ids[s] is None]
        self._high = high
        self._sorted_keys = None
        self._fields = PayloadIndex()
        for key, schema in config.payload_indexes.items():
            payloads = self._payloads
            self._fields.create(key, schema, ((s, payloads[s]) for s in self._id_slots.values()))
        self._sparse = {}
        self._has = self._has_named
        for name, params in config.sparse_vectors.items():
            index = self._sparse[name] = SparseIndex(params)
            for slot, raw in enumerate(points.get(f"sparse:{name}") or ()):
                if raw is not None and self._ids[slot] is not None:
                    index.put(slot, SparseVector.from_record(raw))
        self._named = {
            name: (MultiField if named.multivector else DenseField).restore(
                directory, named_prefix(n), named, capacity, self._alive
            )
            for n, (name, named) in enumerate(config.named_vectors.items())
        }
        self._index = None
        if config.index is IndexKind.HNSW and config.has_own:
            self._index = HnswIndex.load(
                directory / "hnsw.bin",
                config.dimension,
                config.metric,
                config.hnsw,
                self._vectors,
                sorted(self._id_slots.values()),
            )
        return self


def _field(config: VectorConfig, capacity: int) -> Field:
    return MultiField(config, capacity) if config.multivector else DenseField(config, capacity)


def named_prefix(n: int) -> str:
    """How the files of a collection's ``n``-th named dense vector begin (numbered, not
    named: a vector's name may be ``..``)."""
    return f"named-{n}"
