"""JSON integers beyond float64's range (the decoder keeps them whole) where a number is
read as a float: geo filters, sparse vector values, formula constants and defaults, RRF
``k`` and weights are a structured 4xx naming the field, not a 500, and change nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers import ServerProcess

BIG = 10**400  # as JSON: 1 and 400 zeros, beyond float64's 1.8e308
Q = "/qdrant/collections/q"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("bad-numbers") / "data"
    srv = ServerProcess(data_dir=Path(data)).start()
    body = {"vectors": {"size": 2, "distance": "Cosine"}, "sparse_vectors": {"sp": {}}}
    assert srv.request("PUT", Q, body)[0] == 200
    points = [
        {
            "id": i,
            "vector": {"": [1, i], "sp": {"indices": [i], "values": [0.5]}},
            "payload": {"loc": {"lon": i, "lat": i}, "x": i},
        }
        for i in range(1, 4)
    ]
    assert srv.request("PUT", f"{Q}/points?wait=true", {"points": points})[0] == 200
    assert srv.request("POST", "/collections", {"name": "n", "dimension": 2})[0] == 201
    native = [{"id": 1, "vector": [1, 0], "payload": {"loc": {"lon": 1, "lat": 1}}}]
    assert srv.request("POST", "/collections/n/vectors", {"vectors": native})[0] == 200
    yield srv
    srv.kill()


def stored(srv: ServerProcess) -> Any:
    """Every point with its payload and vectors, and the last sequence logged."""
    asked = {"limit": 100, "with_payload": True, "with_vector": True}
    status, body = srv.request("POST", f"{Q}/points/scroll", asked)
    assert status == 200, body
    native = srv.request("GET", "/collections/n/vectors?with_vector=true&limit=100")
    return body["result"]["points"], native, srv.request("GET", "/stats")[1]["sequence"]


def geo(kind: str, spec: Any) -> dict[str, Any]:
    return {"must": [{"key": "loc", kind: spec}]}


PREFETCH = [{"query": [1, 0]}, {"query": [0, 1]}]

# (method, path, body, the field its error names)
QDRANT: dict[str, tuple[str, str, Any, str]] = {
    "scroll geo_bounding_box": (
        "POST",
        f"{Q}/points/scroll",
        {
            "filter": geo(
                "geo_bounding_box",
                {"top_left": {"lon": BIG, "lat": 1}, "bottom_right": {"lon": 1, "lat": 0}},
            )
        },
        "filter.must[0].geo_bounding_box.top_left.lon",
    ),
    "count geo_radius": (
        "POST",
        f"{Q}/points/count",
        {"filter": geo("geo_radius", {"center": {"lon": 0, "lat": 0}, "radius": BIG})},
        "filter.must[0].geo_radius.radius",
    ),
    "query geo_polygon": (
        "POST",
        f"{Q}/points/query",
        {
            "query": [1, 0],
            "filter": geo(
                "geo_polygon",
                {"exterior": {"points": [{"lon": 0, "lat": -BIG}] + [{"lon": 0, "lat": 0}] * 3}},
            ),
        },
        "filter.must[0].geo_polygon.exterior.points[0].lat",
    ),
    "delete by geo filter": (
        "POST",
        f"{Q}/points/delete?wait=true",
        {"filter": geo("geo_radius", {"center": {"lon": -BIG, "lat": 0}, "radius": 1})},
        "filter.must[0].geo_radius.center.lon",
    ),
    "upsert sparse value": (
        "PUT",
        f"{Q}/points?wait=true",
        {"points": [{"id": 9, "vector": {"": [1, 0], "sp": {"indices": [1], "values": [BIG]}}}]},
        "points[0].vector.sp.values[0]",
    ),
    "update_vectors sparse value": (
        "PUT",
        f"{Q}/points/vectors?wait=true",
        {"points": [{"id": 1, "vector": {"sp": {"indices": [1, 2], "values": [1, -BIG]}}}]},
        "points[0].vector.sp.values[1]",
    ),
    "query sparse value": (
        "POST",
        f"{Q}/points/query",
        {"query": {"indices": [1], "values": [BIG]}, "using": "sp"},
        "query.values[0]",
    ),
    "search sparse value": (
        "POST",
        f"{Q}/points/search",
        {"vector": {"name": "sp", "vector": {"indices": [1], "values": [BIG]}}, "limit": 3},
        "vector.vector.values[0]",
    ),
    "formula constant": (
        "POST",
        f"{Q}/points/query",
        {"prefetch": PREFETCH[0], "query": {"formula": {"mult": ["$score", BIG]}}},
        "query.formula.mult[1]",
    ),
    "formula score default": (
        "POST",
        f"{Q}/points/query",
        {
            "prefetch": PREFETCH[0],
            "query": {"formula": {"sum": ["$score[0]", 1]}, "defaults": {"$score[0]": BIG}},
        },
        "query.defaults.$score[0]",
    ),
    "formula path default": (
        "POST",
        f"{Q}/points/query",
        {
            "prefetch": PREFETCH[0],
            "query": {"formula": {"sum": ["$score", "y"]}, "defaults": {"y": -BIG}},
        },
        "query.defaults.y",
    ),
    "formula geo_distance origin": (
        "POST",
        f"{Q}/points/query",
        {
            "prefetch": PREFETCH[0],
            "query": {"formula": {"geo_distance": {"origin": {"lon": 0, "lat": BIG}, "to": "loc"}}},
        },
        "query.formula.geo_distance.origin.lat",
    ),
    "rrf weight": (
        "POST",
        f"{Q}/points/query",
        {"prefetch": PREFETCH, "query": {"rrf": {"weights": [BIG, 1]}}},
        "query.rrf.weights",
    ),
    "rrf k": (
        "POST",
        f"{Q}/points/query",
        {"prefetch": PREFETCH, "query": {"rrf": {"k": BIG}}},
        "query.rrf.k",  # (k is at most 2^64-1, as Qdrant's usize)
    ),
}


def send(srv: ServerProcess, method: str, path: str, body: Any) -> tuple[int, Any]:
    """``body`` as JSON with its integers whole (orjson refuses ones beyond 64 bits)."""
    return srv.request(method, path, json.dumps(body).encode())


@pytest.mark.parametrize("case", list(QDRANT))
def test_a_huge_integer_is_a_qdrant_400(seeded: ServerProcess, case: str) -> None:
    method, path, body, field = QDRANT[case]
    before = stored(seeded)
    status, got = send(seeded, method, path, body)
    assert status == 400, got
    error = got["status"]["error"]
    assert error.startswith("validation_error: ") and f"{field}: " in error, error
    assert stored(seeded) == before


def test_a_huge_integer_in_a_native_geo_filter_is_a_422(seeded: ServerProcess) -> None:
    before = stored(seeded)
    body = {"filter": geo("geo_radius", {"center": {"lon": 0, "lat": 0}, "radius": BIG})}
    status, got = send(seeded, "POST", "/collections/n/count", body)
    assert status == 422, got
    assert got["error"]["code"] == "validation_error"
    assert got["error"]["field"] == "filter.must[0].geo_radius.radius"
    assert stored(seeded) == before


def test_numbers_within_range_still_work(seeded: ServerProcess) -> None:
    """The largest numbers a float holds are read as before (the largest RRF k too)."""
    rrf = {"rrf": {"k": 2**64 - 1}}
    status, got = send(seeded, "POST", f"{Q}/points/query", {"prefetch": PREFETCH, "query": rrf})
    assert status == 200 and len(got["result"]["points"]) == 3, got
    body = {"filter": geo("geo_radius", {"center": {"lon": 0, "lat": 0}, "radius": 10**300})}
    status, got = send(seeded, "POST", f"{Q}/points/count", body)
    assert status == 200 and got["result"]["count"] == 3, got
    query = {"prefetch": PREFETCH[0], "query": {"formula": {"mult": ["$score", 10**30]}}}
    status, got = send(seeded, "POST", f"{Q}/points/query", query)
    assert status == 200 and len(got["result"]["points"]) == 3, got
