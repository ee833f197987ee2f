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
apart); everything else here sees them as stored. The factor follows the vectors: when
their median norm has moved far from the one it was chosen for, the graph is built again
at another, in the background (``_start_rebuild``), while searches go on in the old
graph and changes go on into it as well, noted; the loop then takes the new graph up in
one step (``_adopt``), with the changes noted applied to it and the buffer's rows scaled
anew. A graph that holds nothing any more simply starts afresh at the next vectors'
factor. A snapshot saves whichever graph is in place: its rows carry its factor.

A fold links its batch on the fold thread, in the background: updates go on staging
meanwhile (the delta buffer is a fresh one), so the graph work of updates is off their
path. A large batch of new points (``add``) is linked in the background too, on the
link thread, so that the loop goes on serving everything else meanwhile (20,000 rows
of 64-d held it for 34-45 s on a loaded machine: health checks and replication links
timed out). hnswlib does not allow anything else while the graph changes, so every
other use of the graph first waits for a fold or link in progress to finish
(``_graph``): a search never runs beside a change, and a vector being linked is in the
graph by the time any search looks. The loop's own users wait for ``linking`` first,
without holding the loop (``Collection.graphs_settled``).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import math
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hnswlib
import numpy as np
import numpy.typing as npt

from vectorizer.engine.config import HnswParams, Metric
from vectorizer.engine.delta import DeltaBuffer
from vectorizer.engine.dotscale import Norms, Scale, drifted, overflowing
from vectorizer.engine.files import check_written
from vectorizer.engine.twins import Twins
from vectorizer.engine.validation import Matrix

log = logging.getLogger(__name__)

_SPACE = {Metric.COSINE: "ip", Metric.DOT: "ip", Metric.EUCLIDEAN: "l2"}

# Rows of the stored vectors counted (``Norms``) at a time when a graph is loaded.
_REBUILD_CHUNK = 4096

# A rebuild links this many floats' worth of rows (this / dim rows, at least
# ``_BUILD_ROWS_MIN``) between looks at whether it is still wanted: a stop waits for one
# such chunk at most (measured on one core, ef_construction 150: 512 rows of 32-d took
# 0.05-0.08 s in a graph of 20,000; 32 rows of 768-d some 0.02 s).
_BUILD_FLOATS = 16384
_BUILD_ROWS_MIN = 32

# A batch of new points of at least this many floats (rows x dimension) is linked on the
# link thread while the loop goes on (``add``); a smaller one at once, on the loop (1,000
# rows of 128-d took ~70 ms on an idle VM, 20,000 of 64-d up to 45 s on a loaded one).
LINK_AWAY_FLOATS = 65536

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


_link_thread: ThreadPoolExecutor | None = None


def _linker() -> ThreadPoolExecutor:
    """The one thread that links large batches of new points (``add``): not the fold
    thread, where one would hold up the folds of every other collection (and so their
    searches) for as long as it takes."""
    global _link_thread
    if _link_thread is None:
        _link_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hnsw-link")
    return _link_thread


_rebuild_jobs: queue.SimpleQueue[Callable[[], None]] | None = None
_rebuild_start = threading.Lock()


# Set at exit: every rebuild stops at its next chunk (``_stop_rebuilds``).
_exiting = threading.Event()
# Held by the rebuild thread while it does a job.
_working = threading.Lock()


def _in_background(work: Callable[[], Any]) -> Future[Any]:
    """``work`` done on the rebuild thread (rebuilds of all graphs take turns).

    It is a daemon, so that an exit never waits for a whole rebuild (it may take a
    minute; nothing is lost: the graph in place is the one saved); but a daemon still
    inside hnswlib when the interpreter finalizes aborts the process (SIGABRT,
    "terminate called without an active exception"). So the store waits for the
    rebuilds of its graphs to stop when it closes (``HnswIndex.close``), and at exit
    every rebuild is stopped and waited for (``_stop_rebuilds``): a chunk's time."""
    global _rebuild_jobs
    with _rebuild_start:
        if _rebuild_jobs is None:
            _rebuild_jobs = queue.SimpleQueue()
            threading.Thread(
                target=_serve, args=(_rebuild_jobs,), name="hnsw-rebuild", daemon=True
            ).start()
            atexit.register(_stop_rebuilds)
    done: Future[Any] = Future()

    def job() -> None:
        if done.set_running_or_notify_cancel():
            try:
                done.set_result(work())
            except BaseException as exc:  # (handed to whoever takes the result)
                done.set_exception(exc)

    _rebuild_jobs.put(job)
    return done


def _serve(jobs: queue.SimpleQueue[Callable[[], None]]) -> None:
    while True:
        job = jobs.get()
        with _working:
            job()


def _stop_rebuilds(timeout: float = 30.0) -> None:
    """At exit (before daemon threads are stopped where they stand): stop the rebuild in
    progress at its next chunk and wait for the rebuild thread to put hnswlib down."""
    _exiting.set()
    if _working.acquire(timeout=timeout):
        _working.release()


@dataclass
class _Rebuild:
    """A dot-product graph being built again at another factor, on the rebuild thread."""

    scale: Scale  # the factor the new graph holds its rows at
    done: Future[hnswlib.Index | None]  # None: cancelled
    cancelled: threading.Event
    # Slots linked into the old graph (True) or retired from it (False) since the new
    # one's rows were read from it: the last of each, to apply to the new graph.
    changed: dict[int, bool] = field(default_factory=dict)


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
        if self._norms is not None:  # (counted before anything is staged; looked at soon)
            for at in range(0, len(slots), _REBUILD_CHUNK):
                part = slots[at : at + _REBUILD_CHUNK]
                self._norms.add(vectors[part], part)
        unlinked = self._twins.rebuild(vectors, slots, self._holds)
        self._linked = len(slots) - self._twins.count - len(unlinked)
        for slot in unlinked:
            self.stage(vectors[slot : slot + 1], slot)
        self._look()  # (a graph saved at a factor far from its vectors: built again now)
        return self

    def _attach(self, index: hnswlib.Index, dim: int, metric: Metric, params: HnswParams) -> None:
        self.metric = metric
        self.params = params
        self._index = index
        index.set_ef(params.ef_search)
        self._ef = params.ef_search
        self._delta = DeltaBuffer(dim, _SPACE[metric])
        self._folding: Future[None] | None = None  # a fold's or a large batch's link
        self._linking: Future[None] | None = None  # the last large batch's link
        self._deferred: list[int] = []  # slots to mark deleted once the fold is done
        self._settling = threading.Lock()  # held while a finished fold's deletes apply
        self._twins = Twins(index.get_max_elements())
        self._linked = 0  # live graph nodes (once the fold in progress is done)
        self._scale = Scale(metric is Metric.DOT)  # the graph's and buffer's rows: scaled
        # A dot graph's: the norms of the vectors it stands for, and its rebuild at
        # another factor in progress (``dotscale.py``).
        self._norms = Norms(index.get_max_elements()) if self._scale.active else None
        self._rebuild: _Rebuild | None = None
        self.rebuilds = 0  # rebuilds started (at another factor)
        self._closed = False  # (no rebuild starts once closed)
        # Graphs put in place (rebuilt, or afresh) since this one was made or loaded: a
        # snapshot is due even with nothing logged since the last, which holds the old.
        self.generation = 0

    @property
    def rebuilding(self) -> bool:
        """Whether a dot-product graph is being built again: the one in place holds its
        rows at a factor far from its vectors' (its hits' scores and ranking are off:
        see ``Collection``)."""
        return self._rebuild is not None

    def close(self) -> Future[hnswlib.Index | None] | None:
        """Cancel a rebuild in progress and start no other (the graph's collection is
        gone, or its store closing); the rebuild's future, to wait for the rebuild
        thread to let go of it (a chunk's time). One that has finished is put in place."""
        self._closed = True
        self._adopt()
        return self._cancel_rebuild()

    @property
    def staged(self) -> int:
        """How many vectors wait in the delta buffer."""
        return len(self._delta)

    def settle(self) -> None:
        """Wait for a fold in progress to finish linking its batch (and, in a dot-product
        graph, for a rebuild in progress to finish and take the old graph's place)."""
        self._adopt(wait=True)
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
        if self._norms is not None:
            self._norms.resize(capacity)

    def add(self, vectors: Matrix, slots: list[int]) -> None:
        """Link new points into the graph: a large batch on the link thread, in the
        background (the graph is busy until it is done, see ``linking``)."""
        self._count(vectors, slots)
        graph = self._graph()
        held, slots = self._nodes_of(vectors, self._scale.data(vectors), slots)
        if slots:
            self._note(slots, True)
            if len(slots) * graph.dim >= LINK_AWAY_FLOATS:
                # (looked at by the next fold, once the graph is idle: a rebuild would
                # first wait for this link, holding the loop)
                self._folding = self._linking = _linker().submit(_link, graph, held, slots)
                return
            _link(graph, held, slots)
        self._look()

    def linking(self) -> Future[None] | None:
        """The link of a large batch in progress (``add``): until it is done, any use of
        the graph waits for it, holding the thread that uses it. (A fold, at most
        ``DELTA_CAPACITY`` rows, is a short wait: not counted here.)"""
        linking = self._linking
        return linking if linking is not None and not linking.done() else None

    def stage(self, vector: Matrix, slot: int) -> None:
        """Make ``vector`` (one row) searchable under ``slot`` now; it joins the graph at
        the next fold (at once when the buffer is full)."""
        if self._delta.full:
            self.fold(adopt=False)
        self._count(vector, [slot])
        self._delta.add(self._scale.data(vector), slot)

    def fold(self, *, adopt: bool = True, wait: bool = True) -> int:
        """Start linking every staged vector into the graph, in one batch on the fold
        thread; returns how many. The graph is busy until it is done (``settle``).

        ``adopt``: first put a finished rebuild's graph in place (``_adopt``). Only a
        fold does (the maintenance loop's, a snapshot's), never a write or a search: a
        write would then wait on the loop for the nodes linked meanwhile, which join the
        new graph on the link thread when many. ``wait``: False, when that leaves them
        being linked, the staged vectors wait for the next fold (0) rather than the
        loop for the link."""
        if adopt:
            linking = self._linking
            self._adopt()
            if not wait and self._linking is not linking:
                return 0
        self._look()  # (first: a rebuild reads the graph once no fold changes it)
        if not len(self._delta):
            return 0
        graph = self._graph()  # one fold at a time
        held, slots = self._delta.drain()
        staged = len(slots)
        held, slots = self._nodes_of(self._scale.restore(held), held, slots)
        if slots:
            self._note(slots, True)
            self._folding = _folder().submit(_link, graph, held, slots)
        return staged

    # ---- a dot-product graph's factor (dotscale.py) ------------------------------------

    def _count(self, vectors: Matrix, slots: list[int]) -> None:
        """Count the norms of vectors the graph or the buffer is to hold. When they hold
        nothing (every point deleted), they start afresh if these vectors are far from
        their factor."""
        norms = self._norms
        if norms is None:
            return
        if not norms.held and (
            self._rebuild is not None or drifted(self._scale, Norms.exponent_of(vectors))
        ):
            self._start_afresh()
        norms.add(vectors, slots)

    def _start_afresh(self) -> None:
        """An empty graph and buffer in place of ones that hold no live vector (its
        deleted nodes would still lead searches, at the old factor); the factor is chosen
        again from the next vectors."""
        graph = self._graph()  # (a fold in progress finishes first)
        self._cancel_rebuild()
        index = hnswlib.Index(space=_SPACE[self.metric], dim=graph.dim)
        index.init_index(
            max_elements=graph.get_max_elements(),
            M=self.params.m,
            ef_construction=self.params.ef_construction,
        )
        index.set_ef(self._ef)
        self._index = index
        self._delta = DeltaBuffer(graph.dim, _SPACE[self.metric])
        self._scale = Scale(active=True)
        self.generation += 1

    def _look(self) -> None:
        """Once enough has changed, see whether the median norm of the vectors (or their
        largest, see ``Norms.fitting``) has moved far from the factor's, and if so start
        building the graph again at one that fits it."""
        norms = self._norms
        if norms is None or self._rebuild is not None or self._closed:
            return
        if not norms.due and not overflowing(self._scale, norms.highest):
            return
        exponent = norms.fitting()
        norms.looked()
        if exponent is not None and drifted(self._scale, exponent):
            self._start_rebuild(Scale(active=True, exponent=exponent))

    def _start_rebuild(self, scale: Scale) -> None:
        """Read the graph's nodes and start linking them into a new graph at ``scale``'s
        factor on the rebuild thread. The old graph serves meanwhile; what changes in it
        is noted (``_note``) for ``_adopt``."""
        assert self._norms is not None
        graph = self._graph()  # (a fold in progress finishes first)
        staged = set(self._delta.slots())
        rows, slots = _nodes(graph, [s for s in self._norms.slots() if s not in staged])
        held = scale.data(self._scale.restore(rows))
        dim = graph.dim
        cancelled = threading.Event()
        space, params, capacity = _SPACE[self.metric], self.params, graph.get_max_elements()
        done = _in_background(lambda: _build(space, dim, params, capacity, held, slots, cancelled))
        self._rebuild = _Rebuild(scale, done, cancelled)
        self.rebuilds += 1
        log.info(
            "building a dot-product graph of %d nodes again (factor 2**%d for the vectors' "
            "norms, 2**%d so far)",
            len(slots),
            -scale.exponent,
            -self._scale.exponent,
        )

    def _note(self, slots: list[int], linked: bool) -> None:
        """Note slots linked into the graph or retired from it while a rebuild is in
        progress."""
        rebuild = self._rebuild
        if rebuild is not None:
            for slot in slots:
                rebuild.changed[slot] = linked

    def _cancel_rebuild(self) -> Future[hnswlib.Index | None] | None:
        rebuild, self._rebuild = self._rebuild, None
        if rebuild is None:
            return None
        rebuild.cancelled.set()
        rebuild.done.cancel()  # (one not begun never begins)
        return rebuild.done

    def _adopt(self, wait: bool = False) -> None:
        """Put a finished rebuild's graph in the old one's place (``wait``: wait for it
        to finish), with the changes noted meanwhile, and the buffer at its factor. Only
        on the loop (the thread of every change and search): all of it in one step, but
        for the nodes linked meanwhile, when they are many (see ``add``). Only at a fold
        (see ``fold``), a settle or a close: a search or a write would then wait for
        those on the loop (they wait for a link before they start, without holding it:
        ``Collection.graphs_settled``, ``Store._quiet``)."""
        rebuild = self._rebuild
        if rebuild is None or not (wait or rebuild.done.done()):
            return
        graph = self._graph()  # (a fold in progress finishes first)
        self._rebuild = None
        try:
            index = rebuild.done.result()
        except Exception:
            log.exception("building a dot-product graph again failed; the old one stays")
            return
        if index is None:  # (cancelled)
            return
        old, new = self._scale, rebuild.scale
        if index.get_max_elements() < graph.get_max_elements():
            index.resize_index(graph.get_max_elements())
        for slot, on in rebuild.changed.items():
            if not on:
                with contextlib.suppress(RuntimeError):  # (not linked into the new graph)
                    index.mark_deleted(slot)
        held, slots = self._delta.drain()
        delta = DeltaBuffer(graph.dim, _SPACE[self.metric])
        for row, slot in zip(new.data(old.restore(held)), slots, strict=True):
            delta.add(row[None], slot)
        index.set_ef(self._ef)
        self._index, self._scale, self._delta = index, new, delta
        self.generation += 1
        # The nodes linked into the old graph meanwhile join the new one: many (a large
        # batch written during the rebuild) on the link thread, like the batch itself.
        linked = [slot for slot, on in rebuild.changed.items() if on]
        relink = functools.partial(_relink, graph, old, index, new, linked)
        if len(linked) * graph.dim >= LINK_AWAY_FLOATS:
            self._folding = self._linking = _linker().submit(relink)
        else:
            relink()
        log.info("a dot-product graph built again is in place (factor 2**%d)", -new.exponent)

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
        if self._norms is not None:
            self._norms.remove(slot)
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
        self._note([slot], False)
        if self._folding is not None and not self._folding.done():
            # An update retires its old slot: no need to wait for the fold. Every other
            # use of the graph waits for it, and marks these deleted first.
            self._deferred.append(slot)
            return
        self._graph().mark_deleted(slot)

    def search(
        self, query: Matrix, k: int, ef: int | None, accept: Callable[[int], bool] | None
    ) -> Hits | None:
        """Top ``k`` as (slot, score), or None when the graph yields fewer than ``k``.
        (A search takes no rebuilt graph up: the next fold does, within a second, see
        ``fold``; it searches the old one, as during the rebuild.)"""
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


def _relink(
    graph: hnswlib.Index, scale: Scale, into: hnswlib.Index, at: Scale, slots: list[int]
) -> None:
    """Link into ``into`` (whose rows are at ``at``'s factor) the nodes ``slots`` of
    ``graph`` (at ``scale``'s), those that are nodes there."""
    rows, nodes = _nodes(graph, slots)
    if nodes:
        _link(into, at.data(scale.restore(rows)), nodes)


def _nodes(graph: hnswlib.Index, slots: list[int]) -> tuple[Matrix, list[int]]:
    """The rows of those of ``slots`` that are live nodes of ``graph`` (the others are
    twins, or were in a fold that failed), and their slots. One at a time: hnswlib's
    batch read took twice as long a row, and fails as a whole."""
    rows, nodes = [], []
    for slot in slots:
        try:
            rows.append(graph.get_items([slot], return_type="numpy"))
        except RuntimeError:
            continue
        nodes.append(slot)
    if not rows:
        return np.empty((0, graph.dim), np.float32), nodes
    return np.vstack(rows), nodes


def _build(
    space: str,
    dim: int,
    params: HnswParams,
    capacity: int,
    rows: Matrix,
    slots: list[int],
    cancelled: threading.Event,
) -> hnswlib.Index | None:
    """A new graph of ``rows`` (labelled ``slots``), None once ``cancelled``. One thread:
    the loop and the fold thread keep the other core."""
    index = hnswlib.Index(space=space, dim=dim)
    index.init_index(max_elements=capacity, M=params.m, ef_construction=params.ef_construction)
    labels = np.asarray(slots, dtype=np.uint64)
    chunk = max(_BUILD_ROWS_MIN, _BUILD_FLOATS // dim)
    for at in range(0, len(slots), chunk):
        if cancelled.is_set() or _exiting.is_set():
            return None
        part = slice(at, at + chunk)
        index.add_items(rows[part], labels[part], num_threads=1)
    return index


def _score(hit: tuple[int, float]) -> float:
    return hit[1]
