"""The HNSW index (hnswlib) with our slot numbers as labels.

Labels equal storage slots. A deleted slot is marked deleted in the graph and later
re-used by adding a new vector under the same label, which hnswlib turns into an
un-delete plus an in-place update of that element.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import hnswlib
import numpy as np

from vectorizer.engine.config import HnswParams, Metric
from vectorizer.engine.validation import Matrix

_SPACE = {Metric.COSINE: "ip", Metric.DOT: "ip", Metric.EUCLIDEAN: "l2"}


class HnswIndex:
    def __init__(self, dim: int, metric: Metric, params: HnswParams, capacity: int) -> None:
        self.metric = metric
        self.params = params
        self._index = hnswlib.Index(space=_SPACE[metric], dim=dim)
        self._index.init_index(
            max_elements=capacity, M=params.m, ef_construction=params.ef_construction
        )
        self._index.set_ef(params.ef_search)

    @property
    def capacity(self) -> int:
        return int(self._index.get_max_elements())

    def resize(self, capacity: int) -> None:
        self._index.resize_index(capacity)

    def add(self, vectors: Matrix, slots: list[int]) -> None:
        # Batches use both cores; hnswlib releases the GIL while it builds.
        threads = 1 if len(slots) < 8 else -1
        self._index.add_items(vectors, np.asarray(slots, dtype=np.uint64), num_threads=threads)

    def delete(self, slot: int) -> None:
        self._index.mark_deleted(slot)

    def search(
        self, query: Matrix, k: int, ef: int | None, accept: Callable[[int], bool] | None
    ) -> list[tuple[int, float]] | None:
        """Top ``k`` as (slot, score), or None when the graph yields fewer than ``k``."""
        self._index.set_ef(max(ef or self.params.ef_search, k))
        try:
            labels, dists = self._index.knn_query(query, k=k, num_threads=1, filter=accept)
        except RuntimeError:
            return None
        return [
            (int(lbl), self._score(float(d))) for lbl, d in zip(labels[0], dists[0], strict=True)
        ]

    def search_many(
        self, queries: Matrix, k: int, ef: int | None
    ) -> list[list[tuple[int, float]]] | None:
        """Top ``k`` for each row of ``queries``; None when any query yields fewer than ``k``."""
        self._index.set_ef(max(ef or self.params.ef_search, k))
        threads = 1 if len(queries) < 4 else -1
        try:
            labels, dists = self._index.knn_query(queries, k=k, num_threads=threads)
        except RuntimeError:
            return None
        return [
            [(int(lbl), self._score(float(d))) for lbl, d in zip(row_l, row_d, strict=True)]
            for row_l, row_d in zip(labels, dists, strict=True)
        ]

    def _score(self, distance: float) -> float:
        if self.metric is Metric.EUCLIDEAN:
            return float(np.sqrt(max(distance, 0.0)))
        return 1.0 - distance

    def save(self, path: Path) -> None:
        self._index.save_index(str(path))

    @classmethod
    def load(
        cls, path: Path, dim: int, metric: Metric, params: HnswParams, capacity: int
    ) -> HnswIndex:
        self = cls.__new__(cls)
        self.metric = metric
        self.params = params
        self._index = hnswlib.Index(space=_SPACE[metric], dim=dim)
        self._index.load_index(str(path), max_elements=capacity)
        self._index.set_ef(params.ef_search)
        return self
