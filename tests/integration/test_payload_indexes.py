"""Payload indexes on a real ``vectorizer serve``: created through the official
qdrant-client and the native API, reported, kept through writes, kill -9 and snapshots,
sent to replicas; and every filtered read answers as plain Python over the same data."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

from tests.servers import ServerProcess
from vectorizer.client import Point, VectorizerClient
from vectorizer.errors import ValidationError

DIM = 8
N = 3000
CITIES = ["Paris", "Berlin", "Lisbon", "Oslo", "Rome"]
Payload = dict[str, Any]


def _payload(i: int) -> Payload:
    return {
        "city": CITIES[i % 5],
        "price": i % 97,
        "tags": ["even" if i % 2 == 0 else "odd", f"t{i % 7}"],
        "when": f"2024-05-{1 + i % 28:02d}T12:00:00Z",
    }


# (the filter, the same test in Python)
FILTERS: list[tuple[models.Filter, Callable[[Payload], bool]]] = [
    (
        models.Filter(
            must=[models.FieldCondition(key="city", match=models.MatchValue(value="Oslo"))]
        ),
        lambda p: p.get("city") == "Oslo",
    ),
    (
        models.Filter(
            must=[
                models.FieldCondition(key="city", match=models.MatchAny(any=["Paris", "Rome"])),
                models.FieldCondition(key="price", range=models.Range(gte=10, lt=20)),
            ]
        ),
        lambda p: p.get("city") in ("Paris", "Rome") and 10 <= p.get("price", -1) < 20,
    ),
    (
        models.Filter(
            must=[models.FieldCondition(key="tags", match=models.MatchValue(value="t3"))],
            must_not=[models.FieldCondition(key="price", range=models.Range(gt=50))],
        ),
        lambda p: "t3" in p.get("tags", []) and not p.get("price", 0) > 50,
    ),
    (
        models.Filter(
            must=[
                models.FieldCondition(
                    key="when",
                    range=models.DatetimeRange(
                        gte="2024-05-03T00:00:00Z", lt="2024-05-05T00:00:00Z"
                    ),
                )
            ]
        ),
        lambda p: "2024-05-03" <= p.get("when", "")[:10] < "2024-05-05",
    ),
    (
        models.Filter(
            should=[
                models.FieldCondition(key="price", match=models.MatchValue(value=3)),
                models.HasIdCondition(has_id=[5, 6, 7]),
            ]
        ),
        lambda p: p.get("price") == 3 or p.get("id") in (5, 6, 7),
    ),
]


def _vectors(n: int) -> np.ndarray:
    v = np.random.default_rng(0).standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _load(client: QdrantClient, vectors: np.ndarray, payloads: list[Payload]) -> None:
    client.create_collection(
        "c", vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE)
    )
    for start in range(0, len(vectors), 1000):
        client.upsert(
            "c",
            points=models.Batch(
                ids=list(range(start, start + 1000)),
                vectors=vectors[start : start + 1000].tolist(),
                payloads=payloads[start : start + 1000],
            ),
        )


def _check_reads(client: QdrantClient, vectors: np.ndarray, payloads: dict[int, Payload]) -> None:
    """Counts, scrolls and exact searches under each filter, against Python."""
    query = vectors[11]
    for flt, test in FILTERS:
        want = sorted(i for i, p in payloads.items() if test({**p, "id": i}))
        assert client.count("c", count_filter=flt, exact=True).count == len(want)
        got: list[int] = []
        offset = None
        while True:
            page, offset = client.scroll("c", scroll_filter=flt, limit=256, offset=offset)
            got += [int(p.id) for p in page]
            if offset is None:
                break
        assert got == want
        hits = client.query_points(
            "c",
            query=query.tolist(),
            query_filter=flt,
            limit=10,
            search_params=models.SearchParams(exact=True),
        ).points
        scores = vectors[want] @ query
        best = [want[j] for j in np.argsort(-scores, kind="stable")[:10]]
        assert [int(h.id) for h in hits] == best
    _check_listings(client, payloads)


def _check_listings(client: QdrantClient, payloads: dict[int, Payload]) -> None:
    """A facet and an ordered scroll (each served by an index on its key when there is
    one), against Python."""
    cities = Counter(p["city"] for p in payloads.values() if "city" in p)
    hits = client.facet("c", "city", limit=3).hits
    want = sorted(cities.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    assert [(h.value, h.count) for h in hits] == want
    page, _ = client.scroll(
        "c",
        limit=7,
        order_by=models.OrderBy(key="price", direction=models.Direction.DESC, start_from=60),
        with_payload=False,
    )
    priced = [(p["price"], i) for i, p in payloads.items() if p.get("price", 99) <= 60]
    assert [int(p.id) for p in page] == [i for _, i in sorted(priced, reverse=True)[:7]]


def _schema(client: QdrantClient) -> dict[str, tuple[str, int]]:
    info = client.get_collection("c").payload_schema
    return {
        k: (str(v.data_type.value if hasattr(v.data_type, "value") else v.data_type), v.points or 0)
        for k, v in info.items()
    }


def test_qdrant_indexes_narrow_reads_and_outlive_kill_and_snapshot(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    srv = server_factory(data_dir=tmp_path / "d").start()
    client = QdrantClient(url=srv.url, prefix="qdrant", timeout=60, check_compatibility=False)
    vectors = _vectors(N)
    payloads = {i: _payload(i) for i in range(N)}
    _load(client, vectors, [payloads[i] for i in range(N)])
    client.create_payload_index("c", "city", models.PayloadSchemaType.KEYWORD)
    client.create_payload_index("c", "price", models.PayloadSchemaType.INTEGER)
    client.create_payload_index("c", "when", models.PayloadSchemaType.DATETIME)
    client.create_payload_index("c", "tags", field_schema=None)  # inferred: keyword
    assert _schema(client) == {
        "city": ("keyword", N),
        "price": ("integer", N),
        "when": ("datetime", N),
        "tags": ("keyword", N),
    }
    _check_reads(client, vectors, payloads)

    # writes after the index: new points, changed payloads, removed keys, deletes
    client.upsert(
        "c",
        points=[
            models.PointStruct(
                id=N, vector=vectors[0].tolist(), payload={"city": "Oslo", "price": 3}
            )
        ],
    )
    payloads[N] = {"city": "Oslo", "price": 3}
    vectors = np.vstack([vectors, vectors[:1]])
    client.set_payload("c", payload={"city": "Oslo"}, points=list(range(0, 200, 3)))
    for i in range(0, 200, 3):
        payloads[i] = {**payloads[i], "city": "Oslo"}
    client.delete_payload("c", keys=["price"], points=list(range(1, 300, 2)))
    for i in range(1, 300, 2):
        payloads[i] = {k: v for k, v in payloads[i].items() if k != "price"}
    client.overwrite_payload("c", payload={"tags": ["t3"]}, points=[10, 20])
    payloads[10] = payloads[20] = {"tags": ["t3"]}
    client.delete("c", points_selector=models.FilterSelector(filter=FILTERS[0][0]))
    for i in [i for i, p in payloads.items() if p.get("city") == "Oslo"]:
        del payloads[i]
    _check_reads(client, vectors, payloads)
    schema = _schema(client)
    assert schema["city"] == ("keyword", sum(1 for p in payloads.values() if "city" in p))
    assert schema["price"][1] == sum(1 for p in payloads.values() if "price" in p)

    srv.kill()  # replayed from the log
    srv.start()
    assert _schema(client) == schema
    _check_reads(client, vectors, payloads)
    assert srv.request("POST", "/collections/c/snapshot")[0] == 201
    srv.kill()  # restored from the snapshot
    srv.start()
    assert _schema(client) == schema
    _check_reads(client, vectors, payloads)

    client.delete_payload_index("c", "city")
    assert "city" not in _schema(client)
    _check_reads(client, vectors, payloads)
    client.close()


def test_bad_index_requests_are_refused_with_the_field(client: QdrantClient) -> None:
    client.create_collection(
        "c", vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE)
    )
    with pytest.raises(UnexpectedResponse) as err:
        client.create_payload_index("c", "city", field_schema=None)  # nothing to infer from
    assert err.value.status_code == 400 and b"field_schema" in err.value.content
    with pytest.raises(UnexpectedResponse) as err:
        client.create_payload_index("missing", "city", models.PayloadSchemaType.KEYWORD)
    assert err.value.status_code == 404
    assert client.get_collection("c").payload_schema == {}


def test_native_indexes_and_a_replica(server_factory: type[ServerProcess], tmp_path: Path) -> None:
    primary = server_factory(data_dir=tmp_path / "p").start()
    body = {"name": "c", "dimension": DIM, "payload_indexes": {"city": "keyword"}}
    status, created = primary.request("POST", "/collections", body)
    assert status == 201 and created["collection"]["payload_indexes"] == {"city": "keyword"}
    points = [
        {"id": i, "vector": _vectors(20)[i].tolist(), "payload": _payload(i)} for i in range(20)
    ]
    assert primary.request("POST", "/collections/c/vectors", {"vectors": points})[0] == 200
    notes = [
        {"id": 100 + i, "vector": _vectors(3)[i].tolist(), "payload": {"note": text}}
        for i, text in enumerate(["Red-Fox ran", "red-fox ran", "Red Fox"])
    ]
    status, made = primary.request(
        "PUT", "/collections/c/payload_indexes/price", {"schema": "integer"}
    )
    assert status == 201 and made["payload_index"]["schema"] == "integer"
    status, bad = primary.request("PUT", "/collections/c/payload_indexes/x", {"schema": "varchar"})
    assert status == 422 and bad["error"]["field"] == "schema", bad
    status, bad = primary.request("PUT", "/collections/c/payload_indexes/x", {"type": "keyword"})
    assert status in (400, 422), bad
    # A key is a payload path (no filter could use an index on `a..b`).
    status, bad = primary.request(
        "PUT", "/collections/c/payload_indexes/a..b", {"schema": "keyword"}
    )
    assert status == 422 and "'a..b' is not a payload path" in bad["error"]["message"], bad
    status, bad = primary.request(
        "POST",
        "/collections",
        {"name": "d", "dimension": DIM, "payload_indexes": {"a[": "keyword"}},
    )
    assert status == 422 and bad["error"]["field"] == "payload_indexes.a[", bad
    # a text index's tokenizer in the object form, as Qdrant's create_payload_index takes it
    words = {"type": "text", "tokenizer": "whitespace", "lowercase": False}
    status, made = primary.request("PUT", "/collections/c/payload_indexes/note", {"schema": words})
    assert status == 201 and made["payload_index"]["schema"] == words, made
    status, bad = primary.request(
        "PUT", "/collections/c/payload_indexes/x", {"schema": {"type": "text", "tokenizer": "x"}}
    )
    assert status == 422 and bad["error"]["field"].startswith("schema"), bad
    assert primary.request("POST", "/collections/c/vectors", {"vectors": notes})[0] == 200
    exact = {"must": [{"key": "note", "match": {"text": "Red-Fox"}}]}  # one token, case kept
    assert primary.request("POST", "/collections/c/count", {"filter": exact})[1]["count"] == 1
    replica = server_factory(
        data_dir=tmp_path / "r", args=["--role", "replica", "--primary-url", primary.url]
    ).start()
    flt = {"must": [{"key": "price", "range": {"gte": 5, "lt": 9}}]}
    deadline = time.monotonic() + 30
    while (
        replica.request("GET", "/collections")[1]["collections"] == []
        or replica.request("GET", "/replication/status")[1]["sequence"]
        < primary.request("GET", "/replication/status")[1]["sequence"]
    ):
        assert time.monotonic() < deadline, "the replica never caught up"
        time.sleep(0.1)
    info = replica.request("GET", "/collections/c")[1]["collection"]
    assert info["payload_indexes"] == {"city": "keyword", "price": "integer", "note": words}
    assert replica.request("POST", "/collections/c/count", {"filter": flt})[1]["count"] == 4
    assert replica.request("POST", "/collections/c/count", {"filter": exact})[1]["count"] == 1
    status, gone = primary.request("DELETE", "/collections/c/payload_indexes/city")
    assert status == 200 and gone["deleted"] == "city"
    info = primary.request("GET", "/collections/c")[1]["collection"]
    assert info["payload_indexes"] == {"price": "integer", "note": words}


async def test_the_sdk_creates_and_drops_payload_indexes(server: ServerProcess) -> None:
    async with VectorizerClient(server.url) as vz:
        info = await vz.create_collection("c", DIM, payload_indexes={"city": "keyword"})
        assert info["payload_indexes"] == {"city": "keyword"}
        await vz.upsert("c", [Point(i, _vectors(30)[i].tolist(), _payload(i)) for i in range(30)])
        seq = await vz.create_payload_index("c", "price", "integer")
        assert seq == (await vz.stats())["sequence"]
        flt = {"must": [{"key": "price", "range": {"lt": 10}}]}
        assert await vz.count("c", flt) == 10
        assert (await vz.get_collection("c"))["payload_indexes"]["price"] == "integer"
        await vz.delete_payload_index("c", "city")
        assert (await vz.get_collection("c"))["payload_indexes"] == {"price": "integer"}
        with pytest.raises(ValidationError) as err:
            await vz.create_payload_index("c", "x", "varchar")
        assert err.value.field == "schema"


def test_qdrant_index_options_are_checked_kept_and_shown(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    """The object form's storage options (``is_tenant``, ``lookup``/``range``, ``on_disk``)
    change nothing here but are shown back in ``payload_schema`` as given, across a
    restart; an option of another type is a 400 naming it."""
    srv = server_factory(data_dir=tmp_path / "d").start()
    client = QdrantClient(url=srv.url, prefix="qdrant", timeout=60, check_compatibility=False)
    _load(client, _vectors(1000), [_payload(i) for i in range(1000)])
    tenant = models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=True)
    client.create_payload_index("c", "city", field_schema=tenant)
    ranges = models.IntegerIndexParams(
        type=models.IntegerIndexType.INTEGER, lookup=False, range=True, on_disk=True
    )
    client.create_payload_index("c", "price", field_schema=ranges)
    for options in ({"type": "bool", "lookup": True}, {"type": "keyword", "is_tenant": 1}):
        body = {"field_name": "when", "field_schema": options}
        status, got = srv.request("PUT", "/qdrant/collections/c/index", body)
        assert status == 400 and "field_schema." in got["status"]["error"], got

    def shown() -> dict[str, Any]:
        info = client.get_collection("c").payload_schema
        return {k: v.params.model_dump(exclude_none=True) for k, v in info.items()}

    want = {
        "city": {"type": "keyword", "is_tenant": True},
        "price": {"type": "integer", "lookup": False, "range": True, "on_disk": True},
    }
    assert shown() == want
    srv.kill()
    srv.start()
    assert shown() == want
    paris = models.FieldCondition(key="city", match=models.MatchValue(value="Paris"))
    assert client.count("c", count_filter=models.Filter(must=[paris])).count == 200
    client.close()
    srv.kill()
