"""Recommendation scores and maximal marginal relevance, worked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from vectorizer.engine.config import Metric
from vectorizer.engine.scoring import context, discovery, mmr, recommendation, similarities


def _line(*xs: float) -> np.ndarray:
    return np.asarray([[x] for x in xs], dtype=np.float32)


def test_euclidean_similarity_is_minus_the_squared_distance() -> None:
    got = similarities(_line(1, 4), _line(2), Metric.EUCLIDEAN)
    assert got[:, 0].tolist() == pytest.approx([-1.0, -4.0])
    assert similarities(_line(1, 4), _line(2), Metric.DOT)[:, 0].tolist() == [2.0, 8.0]


def test_best_score_is_a_sigmoid_of_the_nearest_side() -> None:
    # points at 2..5 on a line, a positive example at 1 and a negative one at 6
    rows, pos, neg = _line(2, 3, 4, 5), _line(1), _line(6)
    got = recommendation(rows, pos, neg, Metric.EUCLIDEAN, "best_score")
    assert got.tolist() == pytest.approx([0.25, 0.1, -0.1, -0.25])  # 0.5 (x / (1 + |x|) + 1)
    alone = recommendation(rows, pos, _line(), Metric.EUCLIDEAN, "best_score")
    assert alone.tolist() == pytest.approx([0.25, 0.1, 0.05, 1 / 34])
    only_negative = recommendation(rows, _line(), neg, Metric.EUCLIDEAN, "best_score")
    assert (only_negative < 0).all()
    # halfway between the examples: a tie goes to the negative side, as in Qdrant
    tie = recommendation(_line(2), _line(1), _line(3), Metric.EUCLIDEAN, "best_score")
    assert tie.tolist() == pytest.approx([-0.25])


def test_sum_scores_adds_positives_and_takes_away_negatives() -> None:
    rows, pos, neg = _line(2, 3), _line(1, 0), _line(6)
    got = recommendation(rows, pos, neg, Metric.EUCLIDEAN, "sum_scores")
    assert got.tolist() == pytest.approx([-1 - 4 + 16, -4 - 9 + 9])
    dots = recommendation(rows, _line(1), _line(2), Metric.DOT, "sum_scores")
    assert dots.tolist() == pytest.approx([2 - 4, 3 - 6])


def test_mmr_trades_relevance_for_difference() -> None:
    a, b, c = [1.0, 0.0], [0.999, 0.0447], [0.6, 0.8]
    rows = np.asarray([a, b, c], dtype=np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    relevance = np.asarray([1.0, 0.99, 0.8], dtype=np.float32)
    assert mmr(rows, relevance, 3, 0.0, Metric.COSINE) == [0, 1, 2]  # relevance alone
    assert mmr(rows, relevance, 3, 0.5, Metric.COSINE) == [0, 2, 1]  # b is a's twin
    assert mmr(rows, relevance, 1, 0.5, Metric.COSINE) == [0]
    assert mmr(rows[:1], relevance[:1], 5, 0.5, Metric.COSINE) == [0]


POINTS = np.asarray([[1, 0], [0, 1], [-1, 0], [0.7, 0.7], [2, 0.5]], dtype=np.float32)
PAIRS = (np.asarray([[1, 0], [0, 1]], np.float32), np.asarray([[0, 1], [-1, 0]], np.float32))


def test_discovery_counts_the_pairs_then_nears_the_target() -> None:
    got = discovery(POINTS, np.asarray([[0.5, 0.5]], np.float32), *PAIRS, Metric.DOT)
    # point 5: both pairs won (2) + sigmoid(1.25); point 4 ties the first pair (0)
    assert got[4] == pytest.approx(2 + 0.5 * (1.25 / 2.25 + 1), abs=1e-5)
    assert got[3] == pytest.approx(1 + 0.5 * (0.7 / 1.7 + 1), abs=1e-5)
    assert got[2] == pytest.approx(-2 + 0.5 * (-0.5 / 1.5 + 1), abs=1e-5)
    empty = np.empty((0, 2), np.float32)
    alone = discovery(POINTS, np.asarray([[0.5, 0.5]], np.float32), empty, empty, Metric.DOT)
    assert alone[4] == pytest.approx(0.5 * (1.25 / 2.25 + 1), abs=1e-5)


def test_context_is_zero_inside_every_pair_and_below_outside() -> None:
    pos, neg = PAIRS[0][:1], PAIRS[1][:1]  # the one pair: toward [1, 0], away from [0, 1]
    got = context(POINTS, pos, neg, Metric.DOT)
    assert got[2] == pytest.approx(-0.5)  # x = -1: -1 / 2
    assert got[4] == 0.0 and got[0] == 0.0
    assert -1e-6 < got[3] < 0  # a tie is just outside, by the margin
    euclid = context(POINTS[1:2], pos, neg, Metric.EUCLIDEAN)
    assert euclid.tolist() == pytest.approx([-2 / 3])  # x = -(2) - 0: squared distances
