"""Exact (numpy) scoring: gathering rows a chunk at a time changes nothing."""

from __future__ import annotations

import numpy as np
import pytest

from vectorizer.engine import exact
from vectorizer.engine.config import Metric


@pytest.mark.parametrize("metric", list(Metric))
def test_scores_in_chunks_are_the_scores(metric: Metric, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows are gathered a chunk at a time (all at once would copy the collection's
    vectors); the scores are those of gathering them whole, and the top k follows them."""
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(1000, 16)).astype(np.float32)
    slots = np.sort(rng.choice(1000, size=777, replace=False)).astype(np.int64)
    query = rng.normal(size=(1, 16)).astype(np.float32)
    whole = exact.scores(vectors[slots], query, metric)
    monkeypatch.setattr(exact, "CHUNK_BYTES", 16 * 4 * 50)  # 50 rows a chunk: 16 chunks
    chunked = exact.scores_of(vectors, slots, query, metric)
    assert np.allclose(chunked, whole, rtol=1e-5, atol=1e-5)  # (BLAS blocks differ a bit)
    best = exact.top_k(vectors, slots, query, metric, 10)
    order = np.argsort(-chunked if metric.higher_is_better else chunked, kind="stable")[:10]
    assert [s for s, _ in best] == [int(slots[i]) for i in order]
