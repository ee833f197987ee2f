"""Merging ranked result lists into one, as Qdrant's query API fuses its prefetches.

Each list holds (id, score) pairs best first. Points are ordered by their fused score,
best first; ties by id (Qdrant leaves ties in hash order).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from vectorizer.engine.validation import PointId, id_order

Ranked = Sequence[tuple[PointId, float]]


def rrf(
    lists: Sequence[Ranked], k: int, weights: Sequence[float] | None = None
) -> list[tuple[PointId, float]]:
    """Reciprocal rank fusion, Qdrant's formula: the point at 0-based position ``pos`` of
    a list of weight ``w`` gets ``1 / ((pos + 1) / w + k - 1)`` (``1 / (pos + k)`` at
    weight 1, so the first of a list scores ``1 / k``); a weight of 0 or less adds 0 but
    keeps the point. Summed over the lists."""
    fused: dict[PointId, float] = {}
    for i, ranked in enumerate(lists):
        w = 1.0 if weights is None else weights[i]
        for pos, (pid, _score) in enumerate(ranked):
            share = 1.0 / ((pos + 1) / w + k - 1) if w > 0 else 0.0
            fused[pid] = fused.get(pid, 0.0) + share
    return _best_first(fused)


def dbsf(
    lists: Sequence[Ranked], higher_is_better: bool | Sequence[bool] = True
) -> list[tuple[PointId, float]]:
    """Distribution-based score fusion: each list's scores are mapped to 0..1 between its
    mean -/+ 3 sample standard deviations (not clamped: outliers go past), a list of one
    point or of equal scores gives 0.5; summed over the lists. For a list whose lower
    scores are better (Euclidean distance: ``higher_is_better``, one for all lists or
    one per list) the mapping is reversed, so the best is near 1. (Qdrant leaves it the
    other way round, its issue #10611.)"""
    fused: dict[PointId, float] = {}
    directions = (
        [higher_is_better] * len(lists) if isinstance(higher_is_better, bool) else higher_is_better
    )
    for ranked, higher in zip(lists, directions, strict=True):
        scores = [score for _, score in ranked]
        low, high = _spread(scores)
        for pid, score in ranked:
            if high == low:
                share = 0.5
            elif higher:
                share = (score - low) / (high - low)
            else:
                share = (high - score) / (high - low)
            fused[pid] = fused.get(pid, 0.0) + share
    return _best_first(fused)


def _spread(scores: list[float]) -> tuple[float, float]:
    """mean -/+ 3 sample standard deviations (equal bounds for fewer than two scores)."""
    n = len(scores)
    if n < 2:
        return 0.0, 0.0
    mean = math.fsum(scores) / n
    std = math.sqrt(math.fsum((s - mean) ** 2 for s in scores) / (n - 1))
    return mean - 3 * std, mean + 3 * std


def _best_first(fused: dict[PointId, float]) -> list[tuple[PointId, float]]:
    return sorted(fused.items(), key=lambda kv: (-kv[1], id_order(kv[0])))
