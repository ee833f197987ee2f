"""Exact (brute-force) scoring with numpy: the exact index and the ground truth for HNSW."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from vectorizer.engine.config import Metric
from vectorizer.engine.validation import Matrix

Slots = npt.NDArray[np.int64]
Scores = npt.NDArray[np.float32]


def scores(vectors: Matrix, query: Matrix, metric: Metric) -> Scores:
    """Score of ``query`` (1, dim), already prepared, against every row of ``vectors``."""
    q = query[0]
    if metric is Metric.EUCLIDEAN:
        diff = vectors - q
        out: Scores = np.sqrt(np.einsum("ij,ij->i", diff, diff)).astype(np.float32)
        return out
    dots: Scores = vectors @ q
    return dots


def top_k(
    vectors: Matrix, slots: Slots, query: Matrix, metric: Metric, k: int
) -> list[tuple[int, float]]:
    """The best ``k`` of ``slots`` (rows of ``vectors``) for ``query``, best first."""
    if k <= 0 or slots.size == 0:
        return []
    s = scores(vectors[slots], query, metric)
    key = -s if metric.higher_is_better else s
    part = np.argpartition(key, k - 1)[:k] if k < slots.size else np.arange(slots.size)
    order = part[np.argsort(key[part], kind="stable")]
    return [(int(slots[i]), float(s[i])) for i in order]
