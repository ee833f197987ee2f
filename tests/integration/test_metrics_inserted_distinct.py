"""``vectorizer_inserted_vectors_total`` counts the points a Qdrant write wrote: an id
given twice is one point, and an ``update_filter`` counts only the points it let through
(as the native routes count)."""

from __future__ import annotations

from typing import Any

from tests.integration.test_metrics import scrape
from tests.servers import ServerProcess

INSERTED = "vectorizer_inserted_vectors_total{}"


def counted(server: ServerProcess, method: str, path: str, body: Any) -> float:
    before = scrape(server)[INSERTED]
    status, answer = server.request(method, path, body)
    assert status == 200, answer
    return scrape(server)[INSERTED] - before


def test_qdrant_writes_count_the_distinct_points_written(server: ServerProcess) -> None:
    q = "/qdrant/collections/q"
    assert server.request("PUT", q, {"vectors": {"size": 2, "distance": "Euclid"}})[0] == 200
    points = [
        {"id": 1, "vector": [1, 2], "payload": {"k": 1}},
        {"id": 1, "vector": [2, 2], "payload": {"k": 1}},
        {"id": 2, "vector": [1, 1], "payload": {"k": 2}},
    ]
    assert counted(server, "PUT", f"{q}/points?wait=true", {"points": points}) == 2
    batch = {"batch": {"ids": [10, 11, 10], "vectors": [[1, 2], [1, 3], [1, 4]]}}
    assert counted(server, "PUT", f"{q}/points?wait=true", batch) == 2
    update = {
        "points": [{"id": 1, "vector": [9, 9]}, {"id": 2, "vector": [8, 8]}],
        "update_filter": {"must": [{"key": "k", "match": {"value": 2}}]},
    }
    assert counted(server, "PUT", f"{q}/points/vectors?wait=true", update) == 1
    update.pop("update_filter")
    assert counted(server, "PUT", f"{q}/points/vectors?wait=true", update) == 2
    n = "/collections/n"
    assert server.request("POST", "/collections", {"name": "n", "dimension": 2})[0] == 201
    native = [{"id": 1, "vector": [1, 2]}, {"id": 1, "vector": [2, 2]}, {"id": 2, "vector": [1, 1]}]
    assert counted(server, "POST", f"{n}/vectors", {"vectors": native}) == 2  # (the same)
