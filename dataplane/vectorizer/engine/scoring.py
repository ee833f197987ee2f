"""Scores beyond a query's nearness, with Qdrant's formulas (read from its source):
recommendations by ``best_score`` and ``sum_scores``, and maximal marginal relevance.

All of them work on the metric's raw similarity, higher is better: the dot product of
the stored vectors (cosine vectors are stored normalised), or minus the squared
distance for Euclidean collections. Pure numpy; the collection supplies the rows.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from vectorizer.engine.config import Metric
from vectorizer.engine.validation import Matrix

Scores = npt.NDArray[np.float32]
STRATEGIES = ("best_score", "sum_scores")


def similarities(rows: Matrix, examples: Matrix, metric: Metric) -> Matrix:
    """(len(rows), len(examples)): each row's raw similarity to each example."""
    dots: Matrix = rows @ examples.T
    if metric is not Metric.EUCLIDEAN:
        return dots
    row_sq = np.einsum("ij,ij->i", rows, rows)[:, None]
    ex_sq = np.einsum("ij,ij->i", examples, examples)[None, :]
    out: Matrix = 2 * dots - row_sq - ex_sq
    return out


def recommendation(
    rows: Matrix, positive: Matrix, negative: Matrix, metric: Metric, strategy: str
) -> Scores:
    """Each row's score as a recommendation from the examples:

    - ``best_score``: with p and n the best similarity to a positive and to a negative
      example (minus infinity for none), ``sigmoid(p)`` when p > n, else
      ``-sigmoid(n)``, where ``sigmoid(x) = (x / (1 + |x|) + 1) / 2``: points nearer a
      positive than any negative score in (0, 1), the others in (-1, 0);
    - ``sum_scores``: the similarities to the positives summed, minus those to the
      negatives.
    """
    n = rows.shape[0]
    pos = similarities(rows, positive, metric) if positive.size else np.empty((n, 0), np.float32)
    neg = similarities(rows, negative, metric) if negative.size else np.empty((n, 0), np.float32)
    if strategy == "sum_scores":
        out: Scores = (pos.sum(axis=1) - neg.sum(axis=1)).astype(np.float32)
        return out
    best_pos = pos.max(axis=1) if pos.shape[1] else np.full(n, -np.inf, np.float32)
    best_neg = neg.max(axis=1) if neg.shape[1] else np.full(n, -np.inf, np.float32)
    won = best_pos > best_neg
    with np.errstate(invalid="ignore"):  # (-inf where a side has no examples: unused)
        scores = np.where(won, _sigmoid(best_pos), -_sigmoid(best_neg))
    return scores.astype(np.float32)


def _sigmoid(x: Scores) -> Scores:
    out: Scores = 0.5 * (x / (1 + np.abs(x)) + 1)
    return out


def mmr(rows: Matrix, relevance: Scores, picks: int, diversity: float, metric: Metric) -> list[int]:
    """Maximal marginal relevance: indices of ``rows`` in the order chosen, at most
    ``picks``. The first is the most relevant; each next one maximises
    ``(1 - diversity) * relevance - diversity * (its best similarity to those chosen)``.
    Ties go to the earlier row (Qdrant: the later)."""
    n = rows.shape[0]
    if n < 2:
        return list(range(min(n, picks)))
    lam = 1.0 - diversity
    nearest_chosen = np.full(n, -np.inf, dtype=np.float64)
    left = np.ones(n, dtype=bool)
    chosen: list[int] = []
    value = relevance.astype(np.float64)
    while len(chosen) < min(picks, n):
        pick = int(np.argmax(np.where(left, value, -np.inf)))
        chosen.append(pick)
        left[pick] = False
        sims = similarities(rows, rows[pick : pick + 1], metric)[:, 0]
        nearest_chosen = np.maximum(nearest_chosen, sims)
        value = lam * relevance - (1 - lam) * nearest_chosen
    return chosen


# Qdrant's margin: a point exactly as near the negative as the positive is outside.
CONTEXT_MARGIN = float(np.finfo(np.float32).eps)


def context(rows: Matrix, positive: Matrix, negative: Matrix, metric: Metric) -> Scores:
    """Each row's context score over pairs (``positive[i]``, ``negative[i]``): the sum of
    ``x / (1 + |x|)`` with ``x = min(0, sim(pos) - sim(neg) - margin)``: 0 inside every
    pair's positive side, down to -1 per pair the row is on the wrong side of."""
    x = np.minimum(
        0.0, _paired(rows, positive, metric) - _paired(rows, negative, metric) - CONTEXT_MARGIN
    )
    out: Scores = (x / (1 + np.abs(x))).sum(axis=1).astype(np.float32)
    return out


def discovery(
    rows: Matrix, target: Matrix, positive: Matrix, negative: Matrix, metric: Metric
) -> Scores:
    """Each row's discovery score: the number of pairs it is nearer the positive of,
    less those it is nearer the negative of (exact ties count 0), plus the target's
    ``sigmoid`` of its similarity (``recommendation``'s), in 0..1."""
    n = rows.shape[0]
    rank = np.zeros(n, dtype=np.float64)
    if positive.size:
        rank = np.sign(_paired(rows, positive, metric) - _paired(rows, negative, metric)).sum(
            axis=1
        )
    out: Scores = (rank + _sigmoid(similarities(rows, target, metric)[:, 0])).astype(np.float32)
    return out


def _paired(rows: Matrix, examples: Matrix, metric: Metric) -> Matrix:
    """(len(rows), len(examples)) similarities, in float64 for the differences."""
    return similarities(rows, examples, metric).astype(np.float64)
