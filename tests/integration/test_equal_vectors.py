"""Many points with one vector (empty texts embed alike): searches still find the other
points, before and after a snapshot and a kill -9. (Linking every copy into the graph
made an island that trapped every search: the concurrency probe's case, recall 0.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tests.servers import ServerProcess

DIM, OTHERS, COPIES = 8, 1500, 8000


def upsert(srv: ServerProcess, first_id: int, vectors: np.ndarray[Any, Any]) -> None:
    for i in range(0, len(vectors), 1000):
        part = vectors[i : i + 1000].tolist()
        pts = [{"id": first_id + i + j, "vector": v} for j, v in enumerate(part)]
        assert srv.request("POST", "/collections/c/vectors", {"vectors": pts})[0] == 200


def search(srv: ServerProcess, q: list[float], limit: int, exact: bool = False) -> list[Any]:
    body = {"vector": q, "limit": limit, "exact": exact, "with_payload": False}
    status, answer = srv.request("POST", "/collections/c/search", body)
    assert status == 200, answer
    results: list[Any] = answer["results"]
    return results


def recall(srv: ServerProcess, queries: np.ndarray[Any, Any]) -> float:
    found = 0
    for q in queries.tolist():
        graph = {r["id"] for r in search(srv, q, 10)}
        found += len(graph & {r["id"] for r in search(srv, q, 10, exact=True)})
    return found / (10 * len(queries))


def test_thousands_of_equal_vectors_leave_searches_exact_enough(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    srv = ServerProcess(data_dir=tmp_path / "data").start()
    try:
        body = {"name": "c", "dimension": DIM, "metric": "euclidean"}
        assert srv.request("POST", "/collections", body)[0] == 201
        upsert(srv, 0, rng.normal(size=(OTHERS, DIM)))
        copy = [40.0] * DIM
        upsert(srv, 10_000, np.asarray([copy] * COPIES))
        queries = rng.normal(size=(40, DIM))
        assert recall(srv, queries) >= 0.95
        assert srv.request("POST", "/collections/c/snapshot")[0] in (200, 201)
        # The first copy (its group's graph node) and a few others go after the snapshot:
        # the log replays those deletes over the snapshot's groups.
        gone = [10_000, 10_001, 17_999]
        assert srv.request("POST", "/collections/c/vectors/delete", {"ids": gone})[0] == 200
        srv.kill()
        srv.start()
        assert recall(srv, queries) >= 0.95
        left = {r["id"] for r in search(srv, copy, COPIES - len(gone))}
        assert left == set(range(10_000, 10_000 + COPIES)) - set(gone)
    finally:
        srv.kill()
