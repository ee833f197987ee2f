"""Fusion of ranked lists, with Qdrant's formulas worked by hand."""

from __future__ import annotations

import math

import pytest

from vectorizer.engine.fusion import dbsf, rrf


def test_rrf_is_one_over_position_plus_k() -> None:
    a = [(1, 0.9), (2, 0.8), (3, 0.7)]
    b = [(3, 10.0), (4, 9.0)]
    got = dict(rrf([a, b], k=2))
    assert got[1] == pytest.approx(1 / 2)  # first of a list: 1/k
    assert got[2] == pytest.approx(1 / 3)
    assert got[3] == pytest.approx(1 / 4 + 1 / 2)
    assert got[4] == pytest.approx(1 / 3)
    assert [pid for pid, _ in rrf([a, b], k=2)] == [3, 1, 2, 4]  # ties by id


def test_rrf_weights_stretch_positions_and_zero_keeps_the_point() -> None:
    a, b = [("x", 1.0), ("y", 0.5)], [("y", 3.0), ("z", 2.0)]
    got = dict(rrf([a, b], k=60, weights=[3.0, 0.0]))
    assert got["x"] == pytest.approx(1 / (1 / 3 + 59))
    assert got["y"] == pytest.approx(1 / (2 / 3 + 59))
    assert got["z"] == 0.0 and "z" in got


def test_dbsf_maps_three_deviations_to_zero_and_one() -> None:
    mean, std = 0.5, math.sqrt(((0.4**2) * 2) / 2)  # sample deviation: n - 1
    low, high = mean - 3 * std, mean + 3 * std
    got = dict(dbsf([[(1, 0.9), (2, 0.5), (3, 0.1)], [(2, 7.0)]]))
    assert got[1] == pytest.approx((0.9 - low) / (high - low))
    assert got[2] == pytest.approx(0.5 + 0.5)  # the middle, and alone in its list: 0.5
    assert got[3] == pytest.approx((0.1 - low) / (high - low))
    assert [pid for pid, _ in dbsf([[(1, 0.9), (2, 0.5), (3, 0.1)], [(2, 7.0)]])] == [2, 1, 3]
    same = dict(dbsf([[(1, 2.0), (2, 2.0)]]))
    assert same == {1: 0.5, 2: 0.5}
    assert dbsf([[]]) == []


def test_dbsf_puts_the_nearest_first_when_lower_is_better() -> None:
    distances = [(1, 0.1), (2, 0.5), (3, 0.9)]
    assert [pid for pid, _ in dbsf([distances], higher_is_better=False)] == [1, 2, 3]
    assert [pid for pid, _ in dbsf([distances])] == [3, 2, 1]


def test_dbsf_takes_each_lists_direction() -> None:
    """Euclidean distances beside sparse scores (better higher): each list its own way."""
    distances = [(1, 0.1), (2, 0.5), (3, 0.9)]
    sparse_scores = [(3, 9.0), (2, 5.0), (1, 1.0)]
    got = dict(dbsf([distances, sparse_scores], [False, True]))
    assert got[1] == pytest.approx(got[3])  # best in one list, worst in the other
    both_best = dict(dbsf([distances, [(1, 9.0), (2, 5.0), (3, 1.0)]], [False, True]))
    assert max(both_best, key=both_best.__getitem__) == 1
