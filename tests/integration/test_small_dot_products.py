"""Dot-product collections of vectors with small norms (components ~1e-4, products
~1e-7): searches rank and score them as an exact search does, before and after a
snapshot and a kill -9. (hnswlib's ``1 - <a, b>`` in float32 lumped such products
together: recall@10 ~0.5, scores off by a third. See ``engine/dotscale.py``.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.integration.test_equal_vectors import search, upsert
from tests.servers import ServerProcess

DIM, N = 16, 3000


def check(srv: ServerProcess, queries: np.ndarray[Any, Any]) -> float:
    """Recall@10 of the graph against exact searches; the scores of shared hits agree."""
    found = 0
    for q in queries.tolist():
        exact = {r["id"]: r["score"] for r in search(srv, q, 10, exact=True)}
        graph = {r["id"]: r["score"] for r in search(srv, q, 10)}
        found += len(graph.keys() & exact.keys())
        for pid in graph.keys() & exact.keys():
            assert graph[pid] == pytest.approx(exact[pid], rel=1e-5), pid
    return found / (10 * len(queries))


def test_small_dot_products_are_told_apart(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    srv = ServerProcess(data_dir=tmp_path / "data").start()
    try:
        body = {"name": "c", "dimension": DIM, "metric": "dot"}
        assert srv.request("POST", "/collections", body)[0] == 201
        upsert(srv, 0, rng.normal(size=(N, DIM)) * 1e-4)
        queries = rng.normal(size=(30, DIM)) * 1e-4
        assert check(srv, queries) >= 0.95
        assert srv.request("POST", "/collections/c/snapshot")[0] in (200, 201)
        update = {"vector": (rng.normal(size=DIM) * 1e-4).tolist()}  # (staged, then replayed)
        assert srv.request("PUT", "/collections/c/vectors/7", update)[0] == 200
        srv.kill()
        srv.start()
        assert check(srv, queries) >= 0.95
        assert check(srv, np.asarray([update["vector"]])) >= 0.9  # (the updated point's)
    finally:
        srv.terminate()
