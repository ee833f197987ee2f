"""The delta buffer: new vectors of updated points that the HNSW graph does not hold yet.

Re-linking a point in an HNSW graph costs about as much as inserting it, and inserting
one point at a time costs several times the per-point price of a batch built on every
core. So an updated vector waits here, in a small contiguous matrix that every search
scores exactly and merges with the graph's hits, and joins the graph in batches (see
``HnswIndex.fold``). The buffer is bounded, so the exact part of a search stays a few
microseconds.

It is scored by hnswlib's brute-force index in the graph's space: the very distance
code the graph uses, so a vector scores the same to the last bit before and after it
is folded, and whether its search was answered alone or in a batch. That index is only
ever added to (its ``delete_vector`` corrupts it when its last row goes, in hnswlib
0.8): a removed slot stays in it, passed over, until ``_PASSED_MAX`` are, and it is
built again from the rows held (~60 us for 256 rows).
"""

from __future__ import annotations

import hnswlib
import numpy as np
import numpy.typing as npt

from vectorizer.engine.validation import Matrix

# Updated vectors held before they are folded into the graph in one batch. Scoring 256
# rows costs a search a few microseconds; a fold of 256 rows stays a short pause.
DELTA_CAPACITY = 256

# Removed slots passed over in the brute-force index before it is built again: a search
# asks it for k more rows per such slot. (Built again at once, a point updated over and
# over cost each search after it ~50 us more.)
_PASSED_MAX = 16

Slots = npt.NDArray[np.int64]
Labels = npt.NDArray[np.uint64]
Distances = npt.NDArray[np.float32]


class DeltaBuffer:
    def __init__(self, dim: int, space: str, capacity: int = DELTA_CAPACITY) -> None:
        """``space``: the graph's hnswlib space ("ip" or "l2")."""
        self._vectors: Matrix = np.empty((capacity, dim), dtype=np.float32)
        self._slots: Slots = np.empty(capacity, dtype=np.int64)
        self._row: dict[int, int] = {}  # slot -> row
        self._space = space
        self._scorer: hnswlib.BFIndex | None = None  # None: to build from the rows held
        self._scored = 0  # rows in the scorer: the slots held and those passed over
        self._passed: set[int] = set()  # slots removed since, still in the scorer

    def _scorer_now(self) -> hnswlib.BFIndex:
        scorer = self._scorer
        if scorer is None:
            n = len(self)
            scorer = self._scorer = hnswlib.BFIndex(space=self._space, dim=self._vectors.shape[1])
            scorer.init_index(max_elements=len(self._slots) + _PASSED_MAX)
            if n:
                scorer.add_items(self._vectors[:n], self._slots[:n])
            self._scored, self._passed = n, set()
        return scorer

    def __len__(self) -> int:
        return len(self._row)

    def __contains__(self, slot: int) -> bool:
        return slot in self._row

    @property
    def full(self) -> bool:
        return len(self._row) >= len(self._slots)

    def slots(self) -> list[int]:
        held: list[int] = self._slots[: len(self)].tolist()
        return held

    def get(self, slot: int) -> Matrix | None:
        """The vector held for ``slot`` as a (1, dim) row (a copy), or None."""
        row = self._row.get(slot)
        return None if row is None else self._vectors[row : row + 1].copy()

    def add(self, vector: Matrix, slot: int) -> None:
        """Hold ``vector`` (one row) for ``slot``; the caller folds the buffer when full."""
        row = self._row.get(slot)
        scored = row is not None or slot in self._passed  # (its row replaced in place)
        if row is None:
            if self.full:
                raise OverflowError("the delta buffer is full; fold it first")
            row = len(self._row)
            self._row[slot] = row
            self._slots[row] = slot
        self._vectors[row] = vector.reshape(-1)
        scorer = self._scorer
        if scorer is None:
            return
        if not scored:
            if self._scored == scorer.get_max_elements():
                self._scorer = None  # full of removed rows: built again when next used
                return
            self._scored += 1
        self._passed.discard(slot)
        scorer.add_items(self._vectors[row : row + 1], [slot])

    def remove(self, slot: int) -> bool:
        """Forget ``slot``; False when it is not held here."""
        row = self._row.pop(slot, None)
        if row is None:
            return False
        if self._scorer is not None:
            self._passed.add(slot)
            if len(self._passed) > _PASSED_MAX:
                self._scorer = None  # built again when next used
        last = len(self._row)  # the old last row, now one past the end
        if row != last:
            moved = int(self._slots[last])
            self._vectors[row] = self._vectors[last]
            self._slots[row] = moved
            self._row[moved] = row
        return True

    def drain(self) -> tuple[Matrix, list[int]]:
        """Every held vector and its slot; the buffer is empty afterwards."""
        n = len(self)
        out = self._vectors[:n].copy(), self._slots[:n].tolist()
        self._row.clear()
        self._scorer = None
        return out

    def nearest(self, queries: Matrix, k: int) -> tuple[Labels, Distances]:
        """The ``k`` held slots (at most all) nearest each query, nearest first, as
        hnswlib's graph answers: slots and distances, shape (queries, k). Not called
        when empty. (One thread: a few hundred rows take microseconds, a thread pool's
        start-up ten times as long.)"""
        scorer = self._scorer_now()
        k = min(k, len(self))
        passed = self._passed
        found: tuple[Labels, Distances] = scorer.knn_query(
            queries, k=min(k + len(passed), self._scored), num_threads=1
        )
        if not passed:
            return found
        # Each row holds at least k slots still held (at most len(passed) passed over).
        labels, distances = found[0].tolist(), found[1].tolist()
        kept = [[j for j, slot in enumerate(row) if slot not in passed][:k] for row in labels]
        return (
            np.array(
                [[row[j] for j in js] for row, js in zip(labels, kept, strict=True)], np.uint64
            ),
            np.array(
                [[row[j] for j in js] for row, js in zip(distances, kept, strict=True)], np.float32
            ),
        )
