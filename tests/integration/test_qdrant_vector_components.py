"""A vector's components are JSON numbers on the Qdrant routes, as Qdrant's parser has
them: numpy took the strings "1e2" and " 1_0 " and the booleans for numbers (stored as
100.0, 10.0, 1.0), and a null or a list among them was found only as the write ran (in
a batch, after the operations before it were applied). Each is a 400 naming the vector
now, and nothing changes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers import ServerProcess

Q = "/qdrant/collections/v"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("components") / "data"
    srv = ServerProcess(data_dir=Path(data)).start()
    body = {
        "vectors": {
            "": {"size": 2, "distance": "Dot"},
            "m": {"size": 2, "distance": "Dot", "multivector_config": {"comparator": "max_sim"}},
        },
        "sparse_vectors": {"sp": {}},
    }
    assert srv.request("PUT", Q, body)[0] == 200, srv.log()
    points = [{"id": i, "vector": {"": [1, i], "m": [[i, 1]]}} for i in range(1, 4)]
    assert srv.request("PUT", f"{Q}/points?wait=true", {"points": points})[0] == 200
    yield srv
    srv.kill()


def stored(srv: ServerProcess) -> Any:
    asked = {"limit": 100, "with_payload": True, "with_vector": True}
    status, body = srv.request("POST", f"{Q}/points/scroll", asked)
    assert status == 200, body
    return body["result"]["points"], srv.request("GET", "/stats")[1]["sequence"]


BAD_COMPONENTS: dict[str, list[Any]] = {
    "a numeric string": [1, "1e2"],
    "a string with an underscore": [" 1_0 ", 1],
    "a boolean": [1, True],
    "a null": [None, 1],
    "a list": [1, [2]],
    "no component": [],
}


def writes(v: list[Any]) -> dict[str, tuple[str, str, Any, str]]:
    """(method, path, body, the field its error names) of each route given ``v``."""
    return {
        "upsert": ("PUT", f"{Q}/points", {"points": [{"id": 9, "vector": v}]}, "points[0].vector"),
        "upsert named": (
            "PUT",
            f"{Q}/points",
            {"points": [{"id": 9, "vector": {"": [1, 1], "m": [[1, 1], v]}}]},
            "points[0].vector.m[1]",
        ),
        "batch column": (
            "PUT",
            f"{Q}/points",
            {"batch": {"ids": [9], "vectors": [v]}},
            "batch.vectors[0]",
        ),
        "update_vectors": (
            "PUT",
            f"{Q}/points/vectors",
            {"points": [{"id": 1, "vector": {"": v}}]},
            "points[0].vector",
        ),
        "query": ("POST", f"{Q}/points/query", {"query": v}, "query"),
        "search": ("POST", f"{Q}/points/search", {"vector": v, "limit": 3}, "vector"),
    }


@pytest.mark.parametrize("components", list(BAD_COMPONENTS))
@pytest.mark.parametrize("route", list(writes([])))
def test_components_that_are_not_numbers_are_refused(
    seeded: ServerProcess, components: str, route: str
) -> None:
    method, path, body, field = writes(BAD_COMPONENTS[components])[route]
    before = stored(seeded)
    status, got = seeded.request(method, f"{path}?wait=true", body)
    assert status == 400, got
    error = got["status"]["error"]
    assert error.startswith(f"validation_error: {field}"), error
    assert stored(seeded) == before


def test_a_ragged_multivector_is_refused_before_a_batch_writes(seeded: ServerProcess) -> None:
    before = stored(seeded)
    operations = [
        {"update_vectors": {"points": [{"id": 1, "vector": {"": [5, 5]}}]}},
        {"upsert": {"points": [{"id": 9, "vector": {"": [1, 1], "m": [[1, 2], [1, 2, 3]]}}]}},
    ]
    status, got = seeded.request("POST", f"{Q}/points/batch?wait=true", {"operations": operations})
    assert status == 400, got
    error = got["status"]["error"]
    assert error.startswith("validation_error: operations[1].upsert.points[0].vector.m[1]"), error
    assert "were applied" not in error
    assert stored(seeded) == before


def test_integers_and_floats_are_numbers(seeded: ServerProcess) -> None:
    point = {"id": 8, "vector": {"": [2, 0.5], "m": [[1, 2.5], [0, -1]]}}
    assert seeded.request("PUT", f"{Q}/points?wait=true", {"points": [point]})[0] == 200
    status, got = seeded.request("POST", f"{Q}/points", {"ids": [8], "with_vector": True})
    assert status == 200, got
    assert got["result"][0]["vector"] == {"": [2.0, 0.5], "m": [[1.0, 2.5], [0.0, -1.0]]}
    status, got = seeded.request("POST", f"{Q}/points/query", {"query": [1, 0], "limit": 1})
    assert status == 200 and got["result"]["points"][0]["id"] == 8, got
    deleted = seeded.request("POST", f"{Q}/points/delete?wait=true", {"points": [8]})
    assert deleted[0] == 200, deleted
