"""Exact (brute-force) scoring with numpy: the exact index and the ground truth for HNSW."""

from __future__ import annotations

from collections.abc import Callable

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


# Rows are gathered and scored this many bytes at a time: gathering every row at once
# would copy all of a collection's vectors (92 MB for 90k x 256), enough to take a node
# near its memory limit past it.
CHUNK_BYTES = 8 << 20


def scores_of(vectors: Matrix, slots: Slots, query: Matrix, metric: Metric) -> Scores:
    """``scores`` of the rows ``slots`` of ``vectors``, a chunk of rows at a time."""
    return chunked(vectors, slots, lambda rows: scores(rows, query, metric))


def chunked(vectors: Matrix, slots: Slots, score: Callable[[Matrix], Scores]) -> Scores:
    """``score`` of the rows ``slots`` of ``vectors``, gathered a chunk at a time; or,
    when they are most of the rows up to the last of them (a collection's live points),
    every such row scored where it lies (no copies) and theirs picked out."""
    rows = max(1, CHUNK_BYTES // max(1, vectors.shape[1] * vectors.itemsize))
    if slots.size <= rows:
        return score(vectors[slots])
    upto = int(slots.max()) + 1
    if 2 * slots.size >= upto:
        every: Scores = np.empty(upto, dtype=np.float32)
        for start in range(0, upto, rows):
            stop = min(upto, start + rows)
            every[start:stop] = score(vectors[start:stop])
        picked: Scores = every[slots]
        return picked
    out: Scores = np.empty(slots.size, dtype=np.float32)
    for start in range(0, slots.size, rows):
        part = slots[start : start + rows]
        out[start : start + part.size] = score(vectors[part])
    return out


def top_k(
    vectors: Matrix, slots: Slots, query: Matrix, metric: Metric, k: int
) -> list[tuple[int, float]]:
    """The best ``k`` of ``slots`` (rows of ``vectors``) for ``query``, best first."""
    if k <= 0 or slots.size == 0:
        return []
    return best(slots, scores_of(vectors, slots, query, metric), k, metric.higher_is_better)


def best(slots: Slots, s: Scores, k: int, higher_is_better: bool = True) -> list[tuple[int, float]]:
    """The ``k`` best (slot, score) of ``slots`` scored ``s``, best first."""
    if k <= 0 or slots.size == 0:
        return []
    key = -s if higher_is_better else s
    part = np.argpartition(key, k - 1)[:k] if k < slots.size else np.arange(slots.size)
    order = part[np.argsort(key[part], kind="stable")]
    return [(int(slots[i]), float(s[i])) for i in order]
