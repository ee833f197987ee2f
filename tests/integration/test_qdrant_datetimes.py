"""Datetime ranges, datetime indexes and ordered listings by datetimes, and ranges
without bounds, through the official qdrant-client on a real ``vectorizer serve``, held
to qdrant-client's local mode: only the strings Qdrant reads as datetimes are datetimes
(not ISO 8601's other forms; RFC 3339 in lower case too), compared to the microsecond
(far in the future too), with and without a datetime index, before and after a kill -9
and a snapshot; ``models.Range()``, sent as ``{}``, holds every number."""

from __future__ import annotations

import random
from typing import Any

import pytest
from qdrant_client import QdrantClient, models

from tests.servers import ServerProcess

DIM = 2
STAMPS: dict[int, Any] = {
    1: "2024-01-01T10:00:00Z",
    2: "2024-01-01t10:00:00.5z",  # RFC 3339 lets both letters be lower case
    3: "2024-01-01 11:00:00+01:00",
    4: "2024-01-01T09:30:00",  # no zone: UTC
    5: "2024-01-02",
    6: "2024-01-01 10:15",
    7: "2024-01-01T11:00:00 +01:00",
    8: "2024-01-01 10:00:00 UTC",
    9: "20240101",  # ISO 8601's other forms: strings to Qdrant
    10: "2024-W01-1",
    11: "2024-01-01T10",
    12: "2024-01-01T10:00:00,5",
    13: "3000-01-01T00:00:00.000001Z",  # a microsecond apart, far in the future
    14: "3000-01-01T00:00:00.000002Z",
    15: "3000-01-01T00:00:00.000003Z",
    16: 1704103200,  # a number: no datetime
    17: ["2024-01-01T08:00:00Z", "20240102"],
    18: "2024-01-01T10:00:00.1234567Z",  # (a fraction past the microsecond is cut)
}
BOUNDS = [
    "2000-01-01T00:00:00Z",
    "2024-01-01T10:00:00Z",
    "2024-01-01T10:00:00.5Z",
    "2024-01-01T10:00:00.123456Z",
    "2024-01-02T00:00:00Z",
    "3000-01-01T00:00:00.000002Z",
]


def _load(client: QdrantClient, name: str, payloads: dict[int, dict[str, Any]]) -> None:
    client.create_collection(
        name, vectors_config=models.VectorParams(size=DIM, distance=models.Distance.DOT)
    )
    rng = random.Random(5)
    client.upsert(
        name,
        points=[
            models.PointStruct(id=i, vector=[rng.random() for _ in range(DIM)], payload=p)
            for i, p in payloads.items()
        ],
    )


def _ids(client: QdrantClient, name: str, flt: models.Filter) -> list[int]:
    page, _ = client.scroll(name, scroll_filter=flt, limit=100, with_payload=False)
    return sorted(int(p.id) for p in page)


def _ranges() -> list[models.Filter]:
    out = []
    for bound in BOUNDS:
        for op in ("gt", "gte", "lt", "lte"):
            dt_range = models.DatetimeRange(**{op: bound})
            out.append(models.Filter(must=[models.FieldCondition(key="at", range=dt_range)]))
    return out


def _listed(client: QdrantClient, name: str, order: models.OrderBy) -> list[tuple[int, Any]]:
    page, _ = client.scroll(name, limit=100, order_by=order, with_payload=False)
    return [(int(p.id), p.order_value) for p in page]


def _check(client: QdrantClient, local: QdrantClient, server: ServerProcess) -> None:
    for flt in _ranges():
        want = _ids(local, "c", flt)
        assert _ids(client, "c", flt) == want, flt
        assert client.count("c", count_filter=flt).count == len(want), flt
    for start, direction in (
        ("2000-01-01T00:00:00Z", models.Direction.ASC),
        ("3000-01-01T00:00:00.000002Z", models.Direction.DESC),
        ("2024-01-01T10:00:00.123456Z", models.Direction.ASC),
    ):
        order = models.OrderBy(key="at", direction=direction, start_from=start)
        listed = _listed(client, "c", order)
        # (local mode lists numbers among datetimes, and its ties go by id ascending
        # either way: the same pairs, in the order of their values)
        expected = [(i, v) for i, v in _listed(local, "c", order) if i != 16]
        assert sorted(listed) == sorted(expected), order
        values = [v for _, v in listed]
        assert values == sorted(values, reverse=direction == models.Direction.DESC)
        assert all(isinstance(value, int) for value in values)
    # bounds as the client does not send them: lower-case RFC 3339, and forms it refuses
    lower = {"filter": {"must": [{"key": "at", "range": {"gte": "2024-01-01t10:00:00.5z"}}]}}
    status, reply = server.request("POST", "/qdrant/collections/c/points/count", lower)
    at_half = models.Filter(
        must=[
            models.FieldCondition(
                key="at", range=models.DatetimeRange(gte="2024-01-01T10:00:00.5Z")
            )
        ]
    )
    assert status == 200 and reply["result"]["count"] == len(_ids(local, "c", at_half)), reply
    for bound in ("20000101", "2000-01-01T00", "2000-01-01T00:00", "2000-W01-1"):
        bad = {"filter": {"must": [{"key": "at", "range": {"gte": bound}}]}}
        status, reply = server.request("POST", "/qdrant/collections/c/points/count", bad)
        assert status == 400 and "range.gte" in reply["status"]["error"], (bound, reply)


def test_datetimes_filter_and_order_as_local_mode(
    client: QdrantClient, server: ServerProcess
) -> None:
    local = QdrantClient(":memory:")
    payloads = {i: {"at": at} for i, at in STAMPS.items()}
    for c in (client, local):
        _load(c, "c", payloads)
    _check(client, local, server)  # by scans
    client.create_payload_index("c", "at", models.PayloadSchemaType.DATETIME)
    _check(client, local, server)  # through the index
    info = client.get_collection("c").payload_schema["at"]
    assert info.points == 13, info  # (all but 9, 10, 11, 12 and 16)
    # an ordered listing through the index reports what the scan does: microseconds
    by_index = _listed(client, "c", models.OrderBy(key="at"))
    assert [v for i, v in by_index if i in (13, 14, 15)] == [
        32503680000000001,
        32503680000000002,
        32503680000000003,
    ]
    client.delete_payload_index("c", "at")
    assert _listed(client, "c", models.OrderBy(key="at", start_from="1970-01-01")) == by_index
    # rebuilt from the payloads after a kill -9 (the log) and from a snapshot
    client.create_payload_index("c", "at", models.PayloadSchemaType.DATETIME)
    server.kill()
    server.start()
    _check(client, local, server)
    assert server.request("POST", "/collections/c/snapshot")[0] == 201
    server.kill()
    server.start()
    _check(client, local, server)
    assert _listed(client, "c", models.OrderBy(key="at")) == by_index
    local.close()


@pytest.mark.parametrize("indexed", [False, True])
def test_far_future_datetimes_keep_their_microseconds(client: QdrantClient, indexed: bool) -> None:
    """Qdrant compares and reports datetimes as i64 microseconds: in the year 3000 float
    seconds no longer tell them apart."""
    stamps = {i: f"3000-01-01T00:00:00.00000{i}Z" for i in (1, 2, 3)}
    local = QdrantClient(":memory:")
    for c in (client, local):
        _load(c, "c", {i: {"at": at} for i, at in stamps.items()})
    if indexed:
        client.create_payload_index("c", "at", models.PayloadSchemaType.DATETIME)
    for op, ids in (("gt", [3]), ("gte", [2, 3]), ("lt", [1]), ("lte", [1, 2])):
        at = models.DatetimeRange(**{op: stamps[2]})
        flt = models.Filter(must=[models.FieldCondition(key="at", range=at)])
        assert _ids(client, "c", flt) == _ids(local, "c", flt) == ids, op
    order = models.OrderBy(key="at", start_from=stamps[1])
    want = [(1, 32503680000000001), (2, 32503680000000002), (3, 32503680000000003)]
    assert _listed(client, "c", order) == _listed(local, "c", order) == want
    if indexed:  # (without a start_from: by the index)
        assert _listed(client, "c", models.OrderBy(key="at")) == want
    local.close()


def test_an_index_type_is_inferred_from_qdrants_datetimes_only(client: QdrantClient) -> None:
    """Created without a type, an index over ISO 8601's basic dates is a keyword index,
    as in Qdrant, and over lower-case RFC 3339 a datetime index."""
    _load(client, "codes", {1: {"code": "20240101"}, 2: {"code": "20231231"}})
    client.create_payload_index("codes", "code", field_schema=None)
    _load(client, "times", {1: {"at": "2024-01-01t10:00:00z"}, 2: {"at": "2024-01-02"}})
    client.create_payload_index("times", "at", field_schema=None)
    codes = client.get_collection("codes").payload_schema["code"]
    times = client.get_collection("times").payload_schema["at"]
    assert (codes.data_type, codes.points) == (models.PayloadSchemaType.KEYWORD, 2)
    assert (times.data_type, times.points) == (models.PayloadSchemaType.DATETIME, 2)


@pytest.mark.parametrize("schema", [None, models.PayloadSchemaType.INTEGER, "float"])
def test_a_range_without_bounds_holds_every_number(
    client: QdrantClient, server: ServerProcess, schema: Any
) -> None:
    """``models.Range()`` goes out as ``{}``: Qdrant's range is all optional bounds, a
    number range without any, holding every number (``{"gt": null}`` too)."""
    payloads: dict[int, dict[str, Any]] = {
        1: {"x": 1},
        2: {"x": 2.5},
        3: {"x": "s"},
        4: {"x": True},
        5: {"x": "2024-01-01T10:00:00Z"},
        6: {"x": [3, "a"]},
        7: {"x": None},
        8: {},
        9: {"x": -7},
    }
    local = QdrantClient(":memory:")
    for c in (client, local):
        _load(c, "c", payloads)
    if schema is not None:
        client.create_payload_index("c", "x", schema)
    every = models.FieldCondition(key="x", range=models.Range())
    for flt in (models.Filter(must=[every]), models.Filter(must_not=[every])):
        want = _ids(local, "c", flt)
        assert _ids(client, "c", flt) == want, flt
        assert client.count("c", count_filter=flt).count == len(want)
    assert _ids(client, "c", models.Filter(must=[every])) == [1, 2, 6, 9]
    for bounds in ({}, {"gt": None}):
        body = {"filter": {"must": [{"key": "x", "range": bounds}]}}
        status, reply = server.request("POST", "/qdrant/collections/c/points/count", body)
        assert status == 200 and reply["result"]["count"] == 4, reply
    local.close()
