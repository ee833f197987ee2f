"""Dot-product graphs hold their vectors times a power of two (``dotscale.py``).

hnswlib's inner-product distance, ``1 - <a, b>`` in float32, could not tell apart the
small products of vectors of small norm: recall@10 0.47 and scores off by a third on
the first test's data before the factor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hnswlib
import numpy as np
import pytest

from vectorizer.engine.config import HnswParams, Metric
from vectorizer.engine.dotscale import Scale
from vectorizer.engine.hnsw import HnswIndex

Array = np.ndarray[Any, Any]
PARAMS = HnswParams(16, 100, 64)
DIM = 32


def points(scale: float, n: int = 3000, seed: int = 0) -> tuple[Array, Array]:
    rng = np.random.default_rng(seed)
    data = (rng.normal(size=(n, DIM)) * scale).astype(np.float32)
    queries = (rng.normal(size=(50, DIM)) * scale).astype(np.float32)
    return data, queries


def graph(data: Array, capacity: int | None = None) -> HnswIndex:
    index = HnswIndex(DIM, Metric.DOT, PARAMS, capacity or len(data))
    index.add(data, list(range(len(data))))
    return index


def check(index: HnswIndex, data: Array, queries: Array) -> float:
    """Recall@10 against exact products; every score within float32's rounding."""
    found = 0
    for q in queries:
        hits = index.search(q[None], 10, None, None)
        assert hits is not None
        exact = data.astype(np.float64) @ q.astype(np.float64)
        found += len({s for s, _ in hits} & set(np.argsort(-exact)[:10].tolist()))
        for slot, score in hits:
            assert score == pytest.approx(exact[slot], rel=1e-5, abs=0), (slot, score)
    return found / (10 * len(queries))


@pytest.mark.parametrize("scale", [1e-4, 1e-12, 1.0, 1e3, 1e15])
def test_products_of_any_magnitude_rank_and_score_as_exact_ones(scale: float) -> None:
    data, queries = points(scale)
    assert check(graph(data), data, queries) >= 0.97


def test_batched_searches_and_staged_vectors_score_alike() -> None:
    data, queries = points(1e-4)
    index = graph(data[:2900], capacity=3000)
    for slot in range(2900, 3000):  # updates wait in the delta buffer
        index.stage(data[slot : slot + 1], slot)
    assert check(index, data, queries) >= 0.97
    many = index.search_many(queries, 10, None)
    assert many is not None
    assert many == [index.search(q[None], 10, None, None) for q in queries]
    before = {(i, s): score for i, hits in enumerate(many) for s, score in hits if s >= 2900}
    index.fold()
    index.settle()
    after = [index.search(q[None], 10, None, None) for q in queries]
    folded = {(i, s): score for i, hits in enumerate(after) if hits for s, score in hits}
    assert before and all(folded.get(key, score) == score for key, score in before.items())


def test_a_loaded_graph_keeps_its_factor(tmp_path: Path) -> None:
    data, queries = points(1e-4)
    data[0] = 0  # (a zero vector first: the factor is read from another node)
    index = graph(data)
    before = [index.search(q[None], 10, None, None) for q in queries]
    index.save(tmp_path / "g.bin")
    back = HnswIndex.load(tmp_path / "g.bin", DIM, Metric.DOT, PARAMS, data, list(range(3000)))
    assert [back.search(q[None], 10, None, None) for q in queries] == before
    # and new vectors join at the same factor
    more, _ = points(1e-4, n=200, seed=1)
    back.resize(3200)
    back.add(more, list(range(3000, 3200)))
    assert check(back, np.vstack([data, more]), queries) >= 0.97


def test_a_graph_saved_before_the_factor_is_read_at_1(tmp_path: Path) -> None:
    """hnswlib's own graph of the stored vectors (as saved before the factor existed):
    its factor is found to be 1, and its hits score as before."""
    data, queries = points(0.5)
    old = hnswlib.Index(space="ip", dim=DIM)
    old.init_index(max_elements=3000, M=16, ef_construction=100)
    old.add_items(data, np.arange(3000, dtype=np.uint64))
    old.save_index(str(tmp_path / "old.bin"))
    back = HnswIndex.load(tmp_path / "old.bin", DIM, Metric.DOT, PARAMS, data, list(range(3000)))
    assert back._scale.factor == 1.0
    assert check(back, data, queries) >= 0.97


def test_twins_of_a_scaled_graph_are_found_and_promoted() -> None:
    data, queries = points(1e-4)
    data[100:140] = data[99]  # a group of 41 equal vectors
    index = graph(data)
    hits = index.search(data[99:100], 41, None, None)
    assert hits is not None and {s for s, _ in hits} >= set(range(100, 140))
    index.delete(99)  # the node goes: a twin takes its place, with the same vector
    hits = index.search(data[99:100], 40, None, None)
    assert hits is not None and {s for s, _ in hits} == set(range(100, 140))
    exact = float(data[99].astype(np.float64) @ data[99].astype(np.float64))
    assert all(score == pytest.approx(exact, rel=1e-5) for _, score in hits)


def test_the_factor_is_a_power_of_two_near_the_median_norm() -> None:
    scale = Scale(active=True)
    rows = np.array([[3e-4, 4e-4], [0, 0], [6e-4, 8e-4]], np.float32)  # norms 5e-4, 1e-3
    held = scale.data(rows)
    assert scale.factor == 2.0**10  # 1 / 7.5e-4 = 2**10.4: the nearest power of two
    np.testing.assert_array_equal(scale.restore(held), rows)  # exact both ways
    queries, divisors = scale.queries(np.array([[0.0, 0.0], [1e-3, 0.0]], np.float32))
    assert divisors == [2.0**10, 2.0**10 * 2.0**10]
    assert queries[1, 0] == np.float32(1e-3) * np.float32(2.0**10)
    assert Scale(active=False).queries(rows) == (rows, None)
    unit = Scale(active=True)
    unit.data(np.eye(2, dtype=np.float32))
    assert unit.factor == 1.0 and unit.queries(np.eye(2, dtype=np.float32))[1] is None
