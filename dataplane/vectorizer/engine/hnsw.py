"""The HNSW index (hnswlib) with our slot numbers as labels, plus its delta buffer.

Labels equal storage slots. A deleted slot is marked deleted in the graph and later
re-used by adding a new vector under the same label, which hnswlib turns into an
un-delete plus an in-place update of that element.

Vectors can also be *staged*: held in a small delta buffer that every search scores
exactly and merges with the graph's hits, and folded into the graph in one batch when
the buffer fills, when the node is idle, and before a snapshot saves the graph. A
search therefore sees a staged vector at once, exactly as if it were in the graph.

Of a group of points with equal vectors only one is a graph node, the others its twins
(``twins.py``: many copies of one vector otherwise become an island that traps every
search); a search expands each node it finds into its group.

In a dot-product collection the graph and the buffer hold the vectors times a power of
two (``dotscale.py``: hnswlib's ``1 - <a, b>`` in float32 cannot tell small products
apart); everything else here sees them as stored.

A fold links its batch on the fold thread, in the background: updates go on staging
meanwhile (the delta buffer is a fresh one), so the graph work of updates is off their
path. hnswlib does not allow anything else while the graph changes, so every other use
of the graph first waits for a fold in progress to finish (``_graph``): a search never
runs beside a change, and a vector being folded is in the graph by the time any search
looks (it left the delta buffer when its fold began).
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import hnswlib
import numpy as np
import numpy.typing as npt

from vectorizer.engine.config import HnswParams, Metric
from vectorizer.engine.delta import DeltaBuffer
from vectorizer.engine.dotscale import Scale
from vectorizer.engine.files import check_written
from vectorizer.engine.twins import Twins
from vectorizer.engine.validation import Matrix

_SPACE = {Metric.COSINE: "ip", Metric.DOT: "ip", Metric.EUCLIDEAN: "l2"}

Hits = list[tuple[int, float]]  # (slot, score), best first
Labels = npt.NDArray[np.uint64]
Distances = npt.NDArray[np.float32]


_fold_thread: ThreadPoolExecutor | None = None


def _folder() -> ThreadPoolExecutor:
    """The one thread that links folded batches (folds of all collections take turns)."""
    global _fold_thread
    if _fold_thread is None:
        _fold_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hnsw-fold")
    return _fold_thread


class HnswIndex:
    def __init__(self, dim: int, metric: Metric, params: HnswParams, capacity: int) -> None:
        index = hnswlib.Index(space=_SPACE[metric], dim=dim)
        index.init_index(max_elements=capacity, M=params.m, ef_construction=params.ef_construction)
        self._attach(index, dim, metric, params)

    @classmethod
    def load(
        cls,
        path: Path,
        dim: int,
        metric: Metric,
        params: HnswParams,
        vectors: Matrix,
        slots: list[int],
    ) -> HnswIndex:
        """The graph saved at ``path``, for the points in ``slots`` (``vectors`` by slot,
        the capacity its length)."""
        index = hnswlib.Index(space=_SPACE[metric], dim=dim)
        index.load_index(str(path), max_elements=len(vectors))
        self = cls.__new__(cls)
        self._attach(index, dim, metric, params)
        for slot in slots if self._scale.active else ():  # (a dot graph's factor: dotscale.py)
            held = self._graph_row(slot)
            if held is not None and self._scale.adopt(held, vectors[slot]):
                break
        unlinked = self._twins.rebuild(vectors, slots, self._holds)
        self._linked = len(slots) - self._twins.count - len(unlinked)
        for slot in unlinked:
            self.stage(vectors[slot : slot + 1], slot)
        return self

    def _attach(self, index: hnswlib.Index, dim: int, metric: Metric, params: HnswParams) -> None:
        self.metric = metric
        self.params = params
        self._index = index
        index.set_ef(params.ef_search)
        self._ef = params.ef_search
        self._delta = DeltaBuffer(dim, _SPACE[metric])
        self._folding: Future[None] | None = None
        self._deferred: list[int] = []  # slots to mark deleted once the fold is done
        self._settling = threading.Lock()  # held while a finished fold's deletes apply
        self._twins = Twins(index.get_max_elements())
        self._linked = 0  # live graph nodes (once the fold in progress is done)
        self._scale = Scale(metric is Metric.DOT)  # the graph's and buffer's rows: scaled

    @property
    def staged(self) -> int:
        """How many vectors wait in the delta buffer."""
        return len(self._delta)

    def settle(self) -> None:
        """Wait for a fold in progress to finish linking its batch."""
        self._graph()

    def _graph(self) -> hnswlib.Index:
        """The graph, once no fold changes it: the only way to it but the fold itself.

        Any thread may wait here (a snapshot saves the graph from a worker thread). The
        first one past a finished fold applies the deletes deferred during it; the others
        wait for that, so nobody searches a graph that still holds retired slots."""
        folding = self._folding
        if folding is not None:
            with self._settling:
                if self._folding is folding:
                    self._finish_fold(folding)
        return self._index

    def _finish_fold(self, folding: Future[None]) -> None:
        try:
            folding.result()  # a failed fold raises here, in the next use of the graph
        finally:
            deferred, self._deferred = self._deferred, []
            for slot in deferred:
                # Missing only after a failed fold, which never linked it.
                with contextlib.suppress(RuntimeError):
                    self._index.mark_deleted(slot)
            self._folding = None

    def resize(self, capacity: int) -> None:
        self._graph().resize_index(capacity)
        self._twins.resize(capacity)

    def add(self, vectors: Matrix, slots: list[int]) -> None:
        graph = self._graph()
        held, slots = self._nodes_of(vectors, self._scale.data(vectors), slots)
        if slots:
            _link(graph, held, slots)

    def stage(self, vector: Matrix, slot: int) -> None:
        """Make ``vector`` (one row) searchable under ``slot`` now; it joins the graph at
        the next fold (at once when the buffer is full)."""
        if self._delta.full:
            self.fold()
        self._delta.add(self._scale.data(vector), slot)

    def fold(self) -> int:
        """Start linking every staged vector into the graph, in one batch on the fold
        thread; returns how many. The graph is busy until it is done (``settle``)."""
        if not len(self._delta):
            return 0
        graph = self._graph()  # one fold at a time
        held, slots = self._delta.drain()
        staged = len(slots)
        held, slots = self._nodes_of(self._scale.restore(held), held, slots)
        if slots:
            self._folding = _folder().submit(_link, graph, held, slots)
        return staged

    def _nodes_of(
        self, vectors: Matrix, held: Matrix, slots: list[int]
    ) -> tuple[Matrix, list[int]]:
        """The rows (and slots) of a batch to link, as the graph holds them (``held``,
        the same rows as ``vectors``), its twins kept aside; counted as linked. Called
        with the graph idle."""
        rows = self._twins.sort_out(vectors, slots, self._vector_of)
        if len(rows) < len(slots):
            held, slots = held[rows], [slots[r] for r in rows]
        self._linked += len(slots)
        return held, slots

    def _vector_of(self, slot: int) -> Matrix | None:
        """The vector of a graph node or a staged slot, as a (1, dim) row (a copy)."""
        held = self._delta.get(slot)
        if held is None:
            held = self._graph_row(slot)
        return None if held is None else self._scale.restore(held)

    def _graph_row(self, slot: int) -> Matrix | None:
        """A graph node's row as the graph holds it, or None (not a live node)."""
        try:
            row: Matrix = self._graph().get_items([slot], return_type="numpy")
        except RuntimeError:  # not in the graph, or deleted there
            return None
        return row

    def _holds(self, slot: int) -> bool:
        """Whether ``slot`` is a live node of the graph."""
        return self._vector_of(slot) is not None

    def delete(self, slot: int) -> None:
        node, heir = self._twins.forget(slot)
        if not node:
            return  # a twin: in neither the graph nor the buffer
        vector = self._vector_of(slot) if heir is not None else None  # (seldom: a group's)
        self._retire(slot)
        if vector is not None and heir is not None:
            self.stage(vector, heir)  # the twin in its place

    def _retire(self, slot: int) -> None:
        if self._delta.remove(slot):  # a staged slot is not in the graph (or is deleted)
            return
        self._linked -= 1
        if self._folding is not None and not self._folding.done():
            # An update retires its old slot: no need to wait for the fold. Every other
            # use of the graph waits for it, and marks these deleted first.
            self._deferred.append(slot)
            return
        self._graph().mark_deleted(slot)

    def search(
        self, query: Matrix, k: int, ef: int | None, accept: Callable[[int], bool] | None
    ) -> Hits | None:
        """Top ``k`` as (slot, score), or None when the graph yields fewer than ``k``."""
        twins = self._twins
        nodes = twins.any_of(accept) if twins and accept is not None else accept
        query, divisors = self._scale.queries(query)
        found = self._knn(query, k, ef, nodes, 1)
        if found is None:
            return None
        if len(self._delta):
            hits = self._merged(query, k, *found, nodes, divisors)[0]
        else:
            hits = self._hits(found[0][0], found[1][0], None if divisors is None else divisors[0])
        points = self._points([hits], k, accept)
        return None if points is None else points[0]

    def search_many(self, queries: Matrix, k: int, ef: int | None) -> list[Hits] | None:
        """Top ``k`` for each row of ``queries``; None when any query yields fewer than ``k``."""
        queries, divisors = self._scale.queries(queries)
        found = self._knn(queries, k, ef, None, 1 if len(queries) < 4 else -1)
        if found is None:
            return None
        if len(self._delta):
            many = self._merged(queries, k, *found, None, divisors)
        else:
            labels, dists = found
            many = [
                self._hits(labels[i], dists[i], None if divisors is None else divisors[i])
                for i in range(len(queries))
            ]
        return self._points(many, k, None)

    def _points(
        self, many: list[Hits], k: int, accept: Callable[[int], bool] | None
    ) -> list[Hits] | None:
        """Hits of graph nodes as hits of points: each group's twins after its node (see
        ``twins.py``); None when a query has fewer than ``k`` (its caller searches
        exactly then)."""
        if not self._twins:
            return many
        many = [self._twins.expand(hits, k, accept) for hits in many]
        return many if all(len(hits) == k for hits in many) else None

    def _knn(
        self,
        queries: Matrix,
        k: int,
        ef: int | None,
        accept: Callable[[int], bool] | None,
        threads: int,
    ) -> tuple[Labels, Distances] | None:
        graph = self._graph()
        if self._twins:  # (fewer nodes than points)
            k = min(k, self._linked)
            if k <= 0:
                return None
        want = max(ef or self.params.ef_search, k)
        if want != self._ef:
            graph.set_ef(want)
            self._ef = want
        try:
            found: tuple[Labels, Distances] = graph.knn_query(
                queries, k=k, num_threads=threads, filter=accept
            )
        except RuntimeError:
            return None
        return found

    def _hits(self, labels: Labels, dists: Distances, divisor: float | None = None) -> Hits:
        """One row of hnswlib's answer as (slot, score); a few Python floats are cheaper
        than another round of numpy calls. ``divisor``: the query's and the graph's
        factors (a dot product's, see dotscale.py)."""
        if self.metric is Metric.EUCLIDEAN:
            return [
                (s, math.sqrt(max(d, 0.0)))
                for s, d in zip(labels.tolist(), dists.tolist(), strict=True)
            ]
        if divisor:
            return [
                (s, (1.0 - d) / divisor)
                for s, d in zip(labels.tolist(), dists.tolist(), strict=True)
            ]
        return [(s, 1.0 - d) for s, d in zip(labels.tolist(), dists.tolist(), strict=True)]

    def _merged(
        self,
        queries: Matrix,
        k: int,
        labels: Labels,
        dists: Distances,
        accept: Callable[[int], bool] | None,
        divisors: list[float] | None,
    ) -> list[Hits]:
        """The graph's hits and the delta buffer's, best ``k`` of both for each query
        (``queries`` and ``divisors`` as ``Scale.queries`` gives them).

        No slot is in both: a staged slot is absent from the graph or deleted there."""
        # Only the buffer's own best k can make the cut (of those ``accept`` takes).
        staged, distances = self._delta.nearest(queries, k if accept is None else len(self._delta))
        better = self.metric.higher_is_better
        out = []
        for i in range(len(queries)):
            divisor = None if divisors is None else divisors[i]
            extra = self._hits(staged[i], distances[i], divisor)
            if accept is not None:
                extra = [hit for hit in extra if accept(hit[0])][:k]
            hits = self._hits(labels[i], dists[i], divisor) + extra
            hits.sort(key=_score, reverse=better)
            out.append(hits[:k])
        return out

    def save(self, path: Path) -> None:
        if len(self._delta):
            raise RuntimeError("fold the delta buffer before saving the graph")
        graph = self._graph()
        graph.save_index(str(path))
        check_written(path, graph.index_file_size())  # hnswlib does not report errors


def _link(graph: hnswlib.Index, vectors: Matrix, slots: list[int]) -> None:
    # Batches use both cores; hnswlib releases the GIL while it builds.
    threads = 1 if len(slots) < 8 else -1
    graph.add_items(vectors, np.asarray(slots, dtype=np.uint64), num_threads=threads)


def _score(hit: tuple[int, float]) -> float:
    return hit[1]
