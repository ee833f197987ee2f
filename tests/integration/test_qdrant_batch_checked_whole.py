"""``POST /qdrant/collections/{name}/points/batch`` checks its whole body before it
writes anything: a later operation that the request alone can refuse (an id that is not
an id, a filter that is not a filter, a bad key or vector) is a 400 naming it, and the
operations before it are not applied (Qdrant parses the whole body first)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers import ServerProcess

PATH = "/qdrant/collections/c/points"
GOOD = [
    {"upsert": {"points": [{"id": 100, "vector": [0, 1], "payload": {"new": 1}}]}},
    {"delete": {"points": [1]}},
    {"set_payload": {"payload": {"x": 1}, "points": [2]}},
]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("batch-whole") / "data"
    srv = ServerProcess(data_dir=Path(data)).start()
    body = {"vectors": {"size": 2, "distance": "Dot"}, "sparse_vectors": {"sp": {}}}
    assert srv.request("PUT", "/qdrant/collections/c", body)[0] == 200
    points = [{"id": i, "vector": [1, i], "payload": {"i": i, "keep": True}} for i in range(1, 4)]
    assert srv.request("PUT", f"{PATH}?wait=true", {"points": points})[0] == 200
    yield srv
    srv.kill()


def stored(srv: ServerProcess) -> Any:
    """Every point with its payload and vectors, and the last sequence logged."""
    status, body = srv.request(
        "POST", f"{PATH}/scroll", {"limit": 1000, "with_payload": True, "with_vector": True}
    )
    assert status == 200, body
    return body["result"]["points"], srv.request("GET", "/stats")[1]["sequence"]


# (the bad operation, the field its error names)
BAD: dict[str, tuple[dict[str, Any], str]] = {
    "float id": (
        {"overwrite_payload": {"payload": {"z": 2}, "points": [1.0]}},
        "operations[3].overwrite_payload.points[0]",
    ),
    "negative id": ({"delete": {"points": [-5]}}, "operations[3].delete.points[0]"),
    "object id": (
        {"clear_payload": {"points": [{"a": 1}]}},
        "operations[3].clear_payload.points[0]",
    ),
    "filter key path": (
        {"delete": {"filter": {"must": [{"key": "a[", "match": {"value": 1}}]}}},
        "operations[3].delete.filter.must[0]",
    ),
    "unknown condition": (
        {"delete": {"filter": {"must": [{"bogus": 1}]}}},
        "operations[3].delete.filter.must[0]",
    ),
    "payload filter": (
        {"set_payload": {"payload": {"z": 1}, "filter": {"should": "x"}}},
        "operations[3].set_payload.filter",
    ),
    "set_payload key": (
        {"set_payload": {"payload": {"z": 1}, "points": [1], "key": "a["}},
        "operations[3].set_payload.key",
    ),
    "set_payload key too deep": (
        {"set_payload": {"payload": {"z": 1}, "points": [1], "key": ".".join(["a"] * 260)}},
        "operations[3].set_payload.key",
    ),
    "overwrite key": (
        {"overwrite_payload": {"payload": {"z": 1}, "points": [1], "key": "a"}},
        "operations[3].overwrite_payload.key",
    ),
    "shard key": (
        {"clear_payload": {"points": [1], "shard_key": "s"}},
        "operations[3].clear_payload.shard_key",
    ),
    "delete_payload filter": (
        {
            "delete_payload": {
                "keys": ["i"],
                "filter": {"must": [{"key": "", "match": {"value": 1}}]},
            }
        },
        "operations[3].delete_payload.filter.must[0]",
    ),
    "upsert id": (
        {"upsert": {"points": [{"id": -1, "vector": [1, 1]}]}},
        "operations[3].upsert.points[0].id",
    ),
    "upsert sparse vector": (
        {"upsert": {"points": [{"id": 7, "vector": {"": [1, 1], "sp": {"indices": [1]}}}]}},
        "operations[3].upsert.points[0].vector.sp",
    ),
    "upsert update_filter": (
        {
            "upsert": {
                "points": [{"id": 7, "vector": [1, 1]}],
                "update_filter": {"must": [{"key": "a[", "match": {"value": 1}}]},
            }
        },
        "operations[3].upsert.update_filter.must[0]",
    ),
    "update_vectors vector": (
        {"update_vectors": {"points": [{"id": 1, "vector": "x"}]}},
        "operations[3].update_vectors.points[0].vector",
    ),
    "update_vectors id": (
        {"update_vectors": {"points": [{"id": 1.5, "vector": [1, 1]}]}},
        "operations[3].update_vectors.points[0].id",
    ),
    "delete_vectors names": (
        {"delete_vectors": {"points": [1], "vector": "sp"}},
        "operations[3].delete_vectors.vector",
    ),
    "delete_vectors no names": (
        {"delete_vectors": {"points": [1], "vector": []}},
        "operations[3].delete_vectors.vector",
    ),
    # Components the request alone refuses (Qdrant: the body's JSON does not parse);
    # they were found only as the operation ran, the ones before it applied.
    "update_vectors null component": (
        {"update_vectors": {"points": [{"id": 1, "vector": [1, None]}]}},
        "operations[3].update_vectors.points[0].vector",
    ),
    "update_vectors nested component": (
        {"update_vectors": {"points": [{"id": 1, "vector": [1, [2]]}]}},
        "operations[3].update_vectors.points[0].vector",
    ),
    "upsert string component": (
        {"upsert": {"points": [{"id": 7, "vector": [1, "2"]}]}},
        "operations[3].upsert.points[0].vector",
    ),
    "upsert boolean component": (
        {"upsert": {"points": [{"id": 7, "vector": [1, True]}]}},
        "operations[3].upsert.points[0].vector",
    ),
    "upsert empty vector": (
        {"upsert": {"points": [{"id": 7, "vector": []}]}},
        "operations[3].upsert.points[0].vector",
    ),
    "upsert ragged multivector": (
        {"upsert": {"points": [{"id": 7, "vector": {"m": [[1, 2], [1, 2, 3]]}}]}},
        "operations[3].upsert.points[0].vector.m[1]",
    ),
    "upsert batch column": (
        {"upsert": {"batch": {"ids": [7], "vectors": [[1, "x"]]}}},
        "operations[3].upsert.batch.vectors[0]",
    ),
    "delete_vectors filter": (
        {"delete_vectors": {"filter": {"must": [{"has_id": [-1]}]}, "vector": ["sp"]}},
        "operations[3].delete_vectors.filter.must[0]",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_malformed_later_operation_changes_nothing(seeded: ServerProcess, case: str) -> None:
    bad, field = BAD[case]
    before = stored(seeded)
    operations = [*GOOD, bad, {"delete": {"points": [3]}}]
    status, body = seeded.request("POST", f"{PATH}/batch?wait=true", {"operations": operations})
    assert status == 400, body
    error = body["status"]["error"]
    assert error.startswith(f"validation_error: {field}"), error
    assert "were applied" not in error and "Traceback" not in error
    assert stored(seeded) == before


def test_the_same_operation_on_its_own_route_is_refused_alike(seeded: ServerProcess) -> None:
    """The batch and the single-operation route run one check."""
    before = stored(seeded)
    status, body = seeded.request("POST", f"{PATH}/delete?wait=true", {"points": [-5]})
    assert status == 400 and body["status"]["error"].startswith("validation_error: points[0]"), body
    assert stored(seeded) == before


def test_a_well_formed_batch_still_runs_in_order(seeded: ServerProcess) -> None:
    operations = [
        {"upsert": {"points": [{"id": 50, "vector": [1, 0], "payload": {"a": 1}}]}},
        {"set_payload": {"payload": {"b": 2}, "filter": {"must": [{"has_id": [50]}]}}},
        {"delete_payload": {"keys": ["a"], "points": [50]}},
        {
            "update_vectors": {
                "points": [{"id": 50, "vector": {"sp": {"indices": [3], "values": [2]}}}]
            }
        },
        {"delete_vectors": {"filter": {"must": [{"has_id": [50]}]}, "vector": ["sp"]}},
        {"overwrite_payload": {"payload": {"c": 3}, "points": [50]}},
        {"set_payload": {"payload": {"d": 4}, "points": [50], "key": "c2"}},
    ]
    status, body = seeded.request("POST", f"{PATH}/batch?wait=true", {"operations": operations})
    assert status == 200 and len(body["result"]) == len(operations), body
    status, body = seeded.request("GET", "/qdrant/collections/c/points/50")
    assert status == 200, body
    assert body["result"]["payload"] == {"c": 3, "c2": {"d": 4}}
    assert body["result"]["vector"] == [1.0, 0.0]  # (the sparse one was deleted)
    status, body = seeded.request(
        "POST",
        f"{PATH}/batch?wait=true",
        {
            "operations": [
                {"clear_payload": {"points": [50]}},
                {"delete": {"filter": {"must": [{"has_id": [50]}]}}},
            ]
        },
    )
    assert status == 200, body
    assert seeded.request("GET", "/qdrant/collections/c/points/50")[0] == 404
