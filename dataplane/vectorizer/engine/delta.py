"""The delta buffer: new vectors of updated points that the HNSW graph does not hold yet.

Re-linking a point in an HNSW graph costs about as much as inserting it, and inserting
one point at a time costs several times the per-point price of a batch built on every
core. So an updated vector waits here, in a small contiguous matrix that every search
scores exactly and merges with the graph's hits, and joins the graph in batches (see
``HnswIndex.fold``). The buffer is bounded, so the exact part of a search stays a few
microseconds.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from vectorizer.engine.config import Metric
from vectorizer.engine.validation import Matrix

# Updated vectors held before they are folded into the graph in one batch. Scoring 256
# rows costs a search a few microseconds; a fold of 256 rows stays a short pause.
DELTA_CAPACITY = 256

Slots = npt.NDArray[np.int64]
Scores = npt.NDArray[np.float64]


class DeltaBuffer:
    def __init__(self, dim: int, capacity: int = DELTA_CAPACITY) -> None:
        self._vectors: Matrix = np.empty((capacity, dim), dtype=np.float32)
        self._slots: Slots = np.empty(capacity, dtype=np.int64)
        self._row: dict[int, int] = {}  # slot -> row

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
        if row is None:
            if self.full:
                raise OverflowError("the delta buffer is full; fold it first")
            row = len(self._row)
            self._row[slot] = row
            self._slots[row] = slot
        self._vectors[row] = vector.reshape(-1)

    def remove(self, slot: int) -> bool:
        """Forget ``slot``; False when it is not held here."""
        row = self._row.pop(slot, None)
        if row is None:
            return False
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
        return out

    def scores(self, queries: Matrix, metric: Metric) -> tuple[Slots, Scores]:
        """The held slots and their exact scores against each query, shape (queries, n).

        One query at a time: a product of many queries rounds differently (another BLAS
        routine), and a search answered in a batch must score as it would alone."""
        n = len(self)
        vectors, slots = self._vectors[:n], self._slots[:n]
        out = np.empty((queries.shape[0], n), dtype=np.float64)
        for i, q in enumerate(queries):
            if metric is not Metric.EUCLIDEAN:
                out[i] = vectors @ q
            else:  # differences, not expanded squares: exact near 0
                diff = vectors - q
                out[i] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
        return slots, out
