"""The official qdrant-client against a real ``vectorizer serve`` (routes under /qdrant)."""

from __future__ import annotations

import importlib.metadata
import urllib.request
import uuid
from typing import Any

import numpy as np
import pytest
from qdrant_client import AsyncQdrantClient, QdrantClient, models
from qdrant_client.common.version_check import get_server_version, is_compatible
from qdrant_client.http.exceptions import UnexpectedResponse

from tests.servers import ServerProcess

DIM = 4
CITIES = ["Paris", "Berlin", "London", "Rome"]


def vec(i: int) -> list[float]:
    return [1.0, float(i), float(i % 3), 0.5]


def payload(i: int) -> dict[str, Any]:
    p: dict[str, Any] = {"i": i, "city": CITIES[i % 4], "tags": ["even" if i % 2 == 0 else "odd"]}
    if i % 5 == 0:
        p["note"] = "fifth"
    return p


def eq(key: str, value: Any) -> models.FieldCondition:
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


def between(key: str, **bounds: float) -> models.FieldCondition:
    return models.FieldCondition(key=key, range=models.Range(**bounds))


def empty(key: str) -> models.IsEmptyCondition:
    return models.IsEmptyCondition(is_empty=models.PayloadField(key=key))


def make(client: QdrantClient, name: str = "docs", n: int = 20, distance: Any = None) -> None:
    client.create_collection(
        name,
        vectors_config=models.VectorParams(size=DIM, distance=distance or models.Distance.COSINE),
    )
    if n:
        client.upsert(
            name,
            points=[
                models.PointStruct(id=i, vector=vec(i), payload=payload(i)) for i in range(1, n + 1)
            ],
        )


def ids_of(points: list[Any]) -> list[Any]:
    return [p.id for p in points]


def status_of(exc: pytest.ExceptionInfo[UnexpectedResponse]) -> int | None:
    return exc.value.status_code


# ---- service and collections ----------------------------------------------------------------


def test_version_check_passes(server: ServerProcess) -> None:
    """What qdrant-client's compatibility check does: GET the prefix root, compare versions."""
    version = get_server_version(server.url + "/qdrant", {}, None, 5)
    assert version is not None
    assert is_compatible(importlib.metadata.version("qdrant-client"), version)
    client = QdrantClient(url=server.url, prefix="qdrant", check_compatibility=False)
    assert client.info().version == version  # GET /qdrant/ (trailing slash)
    client.close()


def test_collection_lifecycle(client: QdrantClient, server: ServerProcess) -> None:
    assert client.get_collections().collections == []
    assert client.collection_exists("docs") is False
    assert client.create_collection(
        "docs", vectors_config=models.VectorParams(size=DIM, distance=models.Distance.DOT)
    )
    assert client.collection_exists("docs") is True
    assert [c.name for c in client.get_collections().collections] == ["docs"]

    info = client.get_collection("docs")
    assert info.status == models.CollectionStatus.GREEN
    assert info.points_count == 0
    params = info.config.params.vectors
    assert isinstance(params, models.VectorParams)
    assert (params.size, params.distance) == (DIM, models.Distance.DOT)

    with pytest.raises(UnexpectedResponse) as exc:
        client.create_collection("docs", vectors_config=models.VectorParams(size=2, distance="Dot"))
    assert status_of(exc) == 409
    assert b"already exists" in exc.value.content

    assert client.delete_collection("docs") is True
    assert client.delete_collection("docs") is False
    assert client.collection_exists("docs") is False
    assert server.request("GET", "/collections/docs")[0] == 404


def test_aliases_switch_a_collection_in_one_step(
    client: QdrantClient, server: ServerProcess
) -> None:
    make(client, "docs_v1", n=4)
    make(client, "docs_v2", n=0)
    client.upsert("docs_v2", points=[models.PointStruct(id=100, vector=vec(1), payload={})])
    create = models.CreateAliasOperation(
        create_alias=models.CreateAlias(collection_name="docs_v1", alias_name="docs")
    )
    assert client.update_collection_aliases(change_aliases_operations=[create])
    assert [(a.alias_name, a.collection_name) for a in client.get_aliases().aliases] == [
        ("docs", "docs_v1")
    ]
    assert client.get_collection("docs").points_count == 4  # every read through it...
    assert ids_of(client.query_points("docs", query=vec(1), limit=1).points) == [1]
    client.upsert("docs", points=[models.PointStruct(id=5, vector=vec(5), payload={})])
    assert client.count("docs_v1").count == 5  # ...and every write
    assert client.collection_exists("docs") is True

    # The switch: delete and create in one request, all or nothing.
    switch = [
        models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name="docs")),
        models.CreateAliasOperation(
            create_alias=models.CreateAlias(collection_name="docs_v2", alias_name="docs")
        ),
    ]
    assert client.update_collection_aliases(change_aliases_operations=switch)
    assert ids_of(client.query_points("docs", query=vec(1), limit=1).points) == [100]
    assert client.get_collection_aliases("docs_v1").aliases == []
    rename = models.RenameAliasOperation(
        rename_alias=models.RenameAlias(old_alias_name="docs", new_alias_name="live")
    )
    client.update_collection_aliases(change_aliases_operations=[rename])
    assert [a.alias_name for a in client.get_collection_aliases("docs_v2").aliases] == ["live"]

    bad = models.CreateAliasOperation(
        create_alias=models.CreateAlias(collection_name="nope", alias_name="other")
    )
    fine = models.CreateAliasOperation(
        create_alias=models.CreateAlias(collection_name="docs_v2", alias_name="staging")
    )
    with pytest.raises(UnexpectedResponse) as exc:
        client.update_collection_aliases(change_aliases_operations=[fine, bad])
    assert status_of(exc) == 404 and b"nope" in exc.value.content
    assert [a.alias_name for a in client.get_aliases().aliases] == ["live"]  # nothing changed
    with pytest.raises(UnexpectedResponse) as exc:
        client.create_collection("live", vectors_config=models.VectorParams(size=2, distance="Dot"))
    assert status_of(exc) == 409  # (in Qdrant's words: "Collection `live` already exists!")
    # Deleting goes by the collection's own name (false through an alias), aliases with it.
    assert client.delete_collection("live") is False
    assert client.delete_collection("docs_v2") is True
    assert client.get_aliases().aliases == []

    # What the aliases were is durable: kill -9 and back.
    client.update_collection_aliases(
        change_aliases_operations=[
            models.CreateAliasOperation(
                create_alias=models.CreateAlias(collection_name="docs_v1", alias_name="docs")
            )
        ]
    )
    server.kill()
    server.start()
    assert [(a.alias_name, a.collection_name) for a in client.get_aliases().aliases] == [
        ("docs", "docs_v1")
    ]
    assert client.count("docs").count == 5


@pytest.mark.parametrize(
    ("distance", "metric"),
    [("Cosine", "cosine"), ("Euclid", "euclidean"), ("Dot", "dot")],
)
def test_distances_map_to_native_metrics(
    client: QdrantClient, server: ServerProcess, distance: str, metric: str
) -> None:
    client.create_collection("c", vectors_config=models.VectorParams(size=3, distance=distance))
    status, body = server.request("GET", "/collections/c")
    assert status == 200 and body["collection"]["metric"] == metric
    assert client.get_collection("c").config.params.vectors.distance == distance  # type: ignore[union-attr]


def test_the_default_vector_by_its_name(client: QdrantClient, server: ServerProcess) -> None:
    """What LangChain's ``QdrantVectorStore`` sends by default: the vector named ``""``
    (Qdrant's default vector) in the collection's config, the points and the queries."""
    client.create_collection(
        "lc", vectors_config={"": models.VectorParams(size=DIM, distance="Dot")}
    )
    assert server.request("GET", "/collections/lc")[1]["collection"]["dimension"] == DIM
    points = [models.PointStruct(id=i, vector={"": vec(i)}, payload=payload(i)) for i in (1, 2, 3)]
    client.upsert("lc", points=points)
    hits = client.query_points("lc", query=vec(3), using="", limit=2, with_vectors=[""]).points
    assert ids_of(hits) == [3, 2]
    assert hits[0].vector == vec(3)
    vectors = client.get_collection("lc").config.params.vectors
    assert isinstance(vectors, models.VectorParams) and vectors.size == DIM


def test_create_collection_options(client: QdrantClient, server: ServerProcess) -> None:
    client.create_collection(
        "tuned",
        vectors_config=models.VectorParams(size=8, distance=models.Distance.EUCLID),
        hnsw_config=models.HnswConfigDiff(m=24, ef_construct=150),
        optimizers_config=models.OptimizersConfigDiff(indexing_threshold=0),
        quantization_config=models.ScalarQuantization(
            scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8)
        ),
    )
    hnsw = client.get_collection("tuned").config.hnsw_config
    assert (hnsw.m, hnsw.ef_construct) == (24, 150)
    assert client.get_collection("tuned").config.quantization_config is None  # not applied
    native = server.request("GET", "/collections/tuned")[1]["collection"]
    assert native["hnsw"]["m"] == 24 and native["hnsw"]["ef_construction"] == 150

    client.create_collection(
        "flat",
        vectors_config=models.VectorParams(size=2, distance="Cosine"),
        hnsw_config=models.HnswConfigDiff(m=0),
    )
    assert server.request("GET", "/collections/flat")[1]["collection"]["index"] == "exact"
    assert client.get_collection("flat").config.hnsw_config.m == 0


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"vectors_config": models.VectorParams(size=4, distance="Manhattan")}, b"Manhattan"),
        (
            {
                "vectors_config": models.VectorParams(
                    size=4,
                    distance="Euclid",
                    multivector_config=models.MultiVectorConfig(
                        comparator=models.MultiVectorComparator.MAX_SIM
                    ),
                )
            },
            b"a multivector is scored by similarity",
        ),
        ({"vectors_config": models.VectorParams(size=0, distance="Cosine")}, b"dimension"),
    ],
)
def test_create_collection_rejects_unsupported(
    client: QdrantClient, kwargs: dict[str, Any], needle: bytes
) -> None:
    with pytest.raises(UnexpectedResponse) as exc:
        client.create_collection("bad", **kwargs)
    assert status_of(exc) == 400
    assert needle in exc.value.content
    assert client.collection_exists("bad") is False


def test_update_collection_takes_knobs_and_refuses_changes_it_cannot_make(
    client: QdrantClient, server: ServerProcess
) -> None:
    """The bulk-load recipe (indexing off, load, indexing back on) works; a change to
    how the graph is built is refused, naming the field, and nothing changes."""
    client.create_collection(
        "live",
        vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE),
        hnsw_config=models.HnswConfigDiff(m=24),
    )
    off = models.OptimizersConfigDiff(indexing_threshold=0)
    assert client.update_collection("live", optimizers_config=off) is True
    client.upsert("live", points=[models.PointStruct(id=i, vector=vec(i)) for i in range(1, 30)])
    on = models.OptimizersConfigDiff(indexing_threshold=20000, max_segment_size=100_000)
    assert client.update_collection("live", optimizers_config=on) is True
    assert client.update_collection(
        "live",
        hnsw_config=models.HnswConfigDiff(m=24, ef_construct=150, full_scan_threshold=10),
        vectors_config={"": models.VectorParamsDiff(on_disk=True)},
        collection_params=models.CollectionParamsDiff(on_disk_payload=True),
        quantization_config=models.ScalarQuantization(
            scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8)
        ),
    )
    before = server.request("GET", "/collections/live")[1]["collection"]
    for kwargs, needle in (
        ({"hnsw_config": models.HnswConfigDiff(m=32)}, "hnsw_config.m"),
        ({"hnsw_config": models.HnswConfigDiff(m=0)}, "hnsw_config.m"),
        ({"hnsw_config": models.HnswConfigDiff(ef_construct=400)}, "hnsw_config.ef_construct"),
        (
            {
                "vectors_config": {
                    "": models.VectorParamsDiff(hnsw_config=models.HnswConfigDiff(m=8))
                }
            },
            "hnsw_config.m",
        ),
        (
            {"vectors_config": {"image": models.VectorParamsDiff(on_disk=True)}},
            "no dense vector named 'image'",
        ),
        ({"sparse_vectors_config": {"text": models.SparseVectorParams()}}, "sparse vectors"),
    ):
        with pytest.raises(UnexpectedResponse) as exc:
            client.update_collection("live", **kwargs)
        assert status_of(exc) == 400
        assert needle in exc.value.structured()["status"]["error"]
    assert server.request("GET", "/collections/live")[1]["collection"] == before
    assert client.count("live").count == 29
    with pytest.raises(UnexpectedResponse) as exc:
        client.update_collection("nowhere", optimizers_config=off)
    assert status_of(exc) == 404


def test_payload_index_is_accepted(client: QdrantClient) -> None:
    make(client, n=8)
    result = client.create_payload_index(
        "docs", field_name="city", field_schema=models.PayloadSchemaType.KEYWORD
    )
    assert result.status == models.UpdateStatus.COMPLETED
    assert client.count("docs", count_filter=models.Filter(must=[eq("city", "Paris")])).count == 2
    assert client.delete_payload_index("docs", "city").status == models.UpdateStatus.COMPLETED


# ---- writes -----------------------------------------------------------------------------------


def test_upsert_list_and_batch_are_visible_natively(
    client: QdrantClient, server: ServerProcess
) -> None:
    make(client, n=0, distance=models.Distance.DOT)
    result = client.upsert(
        "docs", points=[models.PointStruct(id=7, vector=[1, 2, 3, 4], payload={"a": 1})]
    )
    assert result.status == models.UpdateStatus.COMPLETED and result.operation_id
    u = uuid.uuid4()
    client.upsert(
        "docs",
        points=models.Batch(
            ids=[8, str(u).upper()],
            vectors=[[0, 0, 1, 0], [0.5, 0.5, 0.5, 0.5]],
            payloads=[{"b": 2}, {"c": [1, 2]}],
        ),
    )
    status, body = server.request("GET", "/collections/docs/vectors/7")
    assert status == 200
    assert body["vector"] == [1, 2, 3, 4] and body["payload"] == {"a": 1}
    # UUIDs are stored in their canonical (lowercase, hyphenated) form, as Qdrant does.
    status, body = server.request("GET", f"/collections/docs/vectors/{u}")
    assert status == 200 and body["payload"] == {"c": [1, 2]}
    assert client.count("docs").count == 3
    assert client.get_collection("docs").points_count == 3

    client.upsert("docs", points=[models.PointStruct(id=7, vector=[4, 3, 2, 1])])
    status, body = server.request("GET", "/collections/docs/vectors/7")
    assert body["vector"] == [4, 3, 2, 1] and body["payload"] is None


def test_qdrant_probes_answer_in_plain_text(server: ServerProcess) -> None:
    """Kubernetes probes written for Qdrant (/healthz, /livez, /readyz) work under the
    prefix, in Qdrant's words."""
    for probe, text in (
        ("healthz", "healthz check passed"),
        ("livez", "livez check passed"),
        ("readyz", "all shards are ready"),
    ):
        with urllib.request.urlopen(f"{server.url}/qdrant/{probe}") as r:
            assert (r.status, r.read().decode()) == (200, text)
            assert r.headers["Content-Type"].startswith("text/plain")


def test_a_path_id_of_32_decimal_digits_beyond_u64_is_a_uuid(
    client: QdrantClient, server: ServerProcess
) -> None:
    """Qdrant reads a path id as an unsigned 64-bit integer if it is one, else a UUID:
    a UUID's 32 hex digits may all be decimal ones."""
    make(client, n=0)
    u = "12345678-1234-5678-1234-567812345678"
    client.upsert("docs", points=[models.PointStruct(id=u, vector=[1, 2, 3, 4])])
    for spelling in (u, u.replace("-", "")):
        status, body = server.request("GET", f"/qdrant/collections/docs/points/{spelling}")
        assert status == 200 and body["result"]["id"] == u, body
    status, body = server.request("GET", f"/qdrant/collections/docs/points/{2**64}")
    assert status == 400 and "0..2^64-1" in body["status"]["error"], body


def test_native_writes_are_visible_through_qdrant(
    client: QdrantClient, server: ServerProcess
) -> None:
    status, _ = server.request(
        "POST", "/collections", {"name": "native", "dimension": 3, "metric": "euclidean"}
    )
    assert status == 201
    status, _ = server.request(
        "POST",
        "/collections/native/vectors",
        {
            "vectors": [
                {"id": 1, "vector": [0, 0, 0], "payload": {"k": "origin"}},
                {"id": "doc-b", "vector": [3, 4, 0], "payload": {"k": "far"}},
            ]
        },
    )
    assert status == 200
    info = client.get_collection("native")
    assert info.points_count == 2
    assert info.config.params.vectors.distance == models.Distance.EUCLID  # type: ignore[union-attr]
    records = client.retrieve("native", ids=[1, "doc-b"], with_vectors=True)
    assert {r.id: r.payload for r in records} == {1: {"k": "origin"}, "doc-b": {"k": "far"}}
    hits = client.query_points("native", query=[0, 0, 0], with_payload=True).points
    assert ids_of(hits) == [1, "doc-b"]
    # Euclid scores are distances: lower is better.
    assert hits[0].score == pytest.approx(0.0) and hits[1].score == pytest.approx(5.0)


def test_upload_points_helper(client: QdrantClient) -> None:
    make(client, n=0)
    client.upload_points(
        "docs",
        points=[models.PointStruct(id=i, vector=vec(i), payload=payload(i)) for i in range(1, 251)],
        batch_size=64,
        wait=True,
    )
    assert client.count("docs").count == 250


def test_delete_by_ids_and_by_filter(client: QdrantClient) -> None:
    make(client, n=20)
    client.delete("docs", points_selector=models.PointIdsList(points=[1, 2, 999]))
    assert client.count("docs").count == 18
    client.delete("docs", points_selector=[3])
    paris = models.Filter(must=[eq("city", "Paris")])
    result = client.delete("docs", points_selector=models.FilterSelector(filter=paris))
    assert result.status == models.UpdateStatus.COMPLETED
    assert client.count("docs", count_filter=paris).count == 0
    remaining = ids_of(client.scroll("docs", limit=100)[0])
    assert remaining == [i for i in range(4, 21) if i % 4 != 0]


def test_set_overwrite_and_clear_payload(client: QdrantClient, server: ServerProcess) -> None:
    make(client, n=6)
    client.set_payload("docs", payload={"flag": True, "city": "Oslo"}, points=[1, 2])
    assert client.retrieve("docs", ids=[1])[0].payload == {
        "i": 1,
        "city": "Oslo",
        "tags": ["odd"],
        "flag": True,
    }
    client.overwrite_payload("docs", payload={"only": 1}, points=[2])
    assert server.request("GET", "/collections/docs/vectors/2")[1]["payload"] == {"only": 1}

    berlin = models.Filter(must=[eq("city", "Berlin")])
    client.set_payload("docs", payload={"de": True}, points=berlin)
    flagged = models.Filter(must=[eq("de", True)])
    assert ids_of(client.scroll("docs", scroll_filter=flagged)[0]) == [5]
    nobody = models.Filter(must=[eq("city", "Nowhere")])
    assert client.set_payload("docs", payload={"x": 1}, points=nobody).status == "completed"

    client.clear_payload("docs", points_selector=[3])
    assert client.retrieve("docs", ids=[3])[0].payload == {}

    with pytest.raises(UnexpectedResponse) as exc:
        client.set_payload("docs", payload={"x": 1}, points=[404])
    assert status_of(exc) == 404


def test_payload_writes_given_ids_and_a_filter_take_the_ids(
    client: QdrantClient, server: ServerProcess
) -> None:
    """As Qdrant's payload operations ("an explicit id list takes precedence over the
    filter"): both given was a 400 here. Neither is still refused."""
    make(client, n=6)
    everyone = {"must": [{"key": "i", "range": {"gte": 0}}]}
    writes = [
        ("points/payload", {"payload": {"x": 1}}),
        ("points/payload?wait=true", {"payload": {"y": 2}, "key": "sub"}),
        ("points/payload/delete", {"keys": ["city"]}),
    ]
    for route, body in writes:
        status, answer = server.request(
            "POST", f"/qdrant/collections/docs/{route}", {**body, "points": [1], "filter": everyone}
        )
        assert status == 200, answer
    got = {i: server.request("GET", f"/collections/docs/vectors/{i}")[1]["payload"] for i in (1, 2)}
    assert got[1] == {"i": 1, "tags": ["odd"], "x": 1, "sub": {"y": 2}}
    assert got[2] == payload(2)
    status, answer = server.request(
        "PUT",
        "/qdrant/collections/docs/points/payload",
        {"payload": {}, "points": [2], "filter": everyone},
    )
    assert status == 200
    assert server.request("GET", "/collections/docs/vectors/2")[1]["payload"] == {}
    status, answer = server.request(
        "POST", "/qdrant/collections/docs/points/delete", {"points": [3], "filter": everyone}
    )
    assert status == 200 and client.count("docs").count == 5  # (a PointsSelector: the same)
    status, answer = server.request(
        "POST", "/qdrant/collections/docs/points/payload", {"payload": {}}
    )
    assert status == 400 and "points" in answer["status"]["error"]
    assert server.request("GET", "/collections/docs/vectors/1")[1]["payload"] == got[1]


def test_set_payload_under_a_key_survives_a_restart(
    client: QdrantClient, server: ServerProcess
) -> None:
    """``set_payload(key=...)`` merges into the object the path leads to (made on the way,
    every element with ``[]``), by ids and by filter; the log replays it after kill -9."""
    make(client, n=6)
    client.set_payload("docs", payload={"b": 1}, points=[1], key="meta.inner")
    client.set_payload("docs", payload={"c": 2}, points=[1], key="meta.inner")
    client.set_payload("docs", payload={"seen": True}, points=[1, 2], key="tags[]")
    berlin = models.Filter(must=[eq("city", "Berlin")])  # points 1 and 5
    client.set_payload("docs", payload={"de": 1}, points=berlin, key="geo")
    want = {
        1: {
            "i": 1,
            "city": "Berlin",
            "tags": [{"seen": True}],  # a string where an object is needed becomes one
            "meta": {"inner": {"b": 1, "c": 2}},
            "geo": {"de": 1},
        },
        2: {"i": 2, "city": "London", "tags": [{"seen": True}]},
        5: {"i": 5, "city": "Berlin", "tags": ["odd"], "note": "fifth", "geo": {"de": 1}},
    }
    assert {p.id: p.payload for p in client.retrieve("docs", ids=[1, 2, 5])} == want
    for bad in ("a..b", "a[x]"):
        with pytest.raises(UnexpectedResponse) as exc:
            client.set_payload("docs", payload={"x": 1}, points=[1], key=bad)
        assert status_of(exc) == 400 and "key" in exc.value.structured()["status"]["error"]
    overwrite = {"payload": {"x": 1}, "points": [1], "key": "meta"}  # (the client sends none)
    status, reply = server.request("PUT", "/qdrant/collections/docs/points/payload", overwrite)
    assert status == 400 and "key: key is for set_payload" in reply["status"]["error"], reply

    server.kill()
    server.start()
    again = QdrantClient(url=server.url, prefix="qdrant", timeout=30, check_compatibility=False)
    try:
        assert {p.id: p.payload for p in again.retrieve("docs", ids=[1, 2, 5])} == want
    finally:
        again.close()


def test_delete_payload_keys(client: QdrantClient) -> None:
    make(client, n=6)
    client.set_payload("docs", payload={"geo": {"lat": 1.5, "lon": 2.5}}, points=[1, 2, 5])
    client.delete_payload("docs", keys=["tags", "geo.lat", "nothing.here"], points=[1])
    assert client.retrieve("docs", ids=[1])[0].payload == {
        "i": 1,
        "city": "Berlin",
        "geo": {"lon": 2.5},
    }
    berlin = models.Filter(must=[eq("city", "Berlin")])  # points 1 and 5
    client.delete_payload("docs", keys=["geo", "note"], points=berlin)
    assert client.retrieve("docs", ids=[5])[0].payload == {
        "i": 5,
        "city": "Berlin",
        "tags": ["odd"],
    }
    assert client.retrieve("docs", ids=[2])[0].payload["geo"] == {"lat": 1.5, "lon": 2.5}  # type: ignore[index]
    with pytest.raises(UnexpectedResponse) as exc:
        client.delete_payload("docs", keys=["i"], points=[1, 404])
    assert status_of(exc) == 404
    assert client.retrieve("docs", ids=[1])[0].payload["i"] == 1  # type: ignore[index]  # (all or nothing)


def test_payload_paths_quote_keys_nulls_remove_and_arrays_delete(
    client: QdrantClient, server: ServerProcess
) -> None:
    """Keys with dots are reached quoted (filters, indexes, selectors, writes); a null in
    set_payload removes its key; delete_payload takes array paths; all as the log
    replays them after kill -9."""
    make(client, n=3)
    client.set_payload("docs", {"user.name": "ann", "items": [{"k": 1, "v": 2}]}, points=[1])
    client.set_payload("docs", {"user.name": "bob", "items": [{"k": 3}]}, points=[2])
    quoted = models.Filter(must=[eq('"user.name"', "ann")])
    assert ids_of(client.scroll("docs", scroll_filter=quoted)[0]) == [1]
    assert (
        client.count("docs", count_filter=models.Filter(must=[eq("user.name", "ann")])).count == 0
    )
    client.create_payload_index("docs", '"user.name"', models.PayloadSchemaType.KEYWORD)
    assert ids_of(client.scroll("docs", scroll_filter=quoted)[0]) == [1]
    shown = client.retrieve("docs", ids=[2], with_payload=['"user.name"', "items[].k"])
    assert shown[0].payload == {"user.name": "bob", "items": [{"k": 3}]}

    client.set_payload("docs", {"city": None, "tags": None, "new": 1}, points=[1])
    client.set_payload("docs", {"v": None}, points=[1], key="items[]")
    client.delete_payload("docs", keys=["items[].k", '"user.name"'], points=[2])
    want = {
        1: {"i": 1, "user.name": "ann", "items": [{"k": 1}], "new": 1},
        2: {"i": 2, "city": "London", "tags": ["even"], "items": [{}]},
    }
    assert {p.id: p.payload for p in client.retrieve("docs", ids=[1, 2])} == want
    assert (
        client.count("docs", count_filter=models.Filter(must=[eq('"user.name"', "bob")])).count == 0
    )

    server.kill()
    server.start()
    again = QdrantClient(url=server.url, prefix="qdrant", timeout=30, check_compatibility=False)
    try:
        assert {p.id: p.payload for p in again.retrieve("docs", ids=[1, 2])} == want
        assert ids_of(again.scroll("docs", scroll_filter=quoted)[0]) == [1]
    finally:
        again.close()


def test_update_vectors_keeps_payloads(client: QdrantClient, server: ServerProcess) -> None:
    make(client, n=30)
    new = [0.0, 0.0, 1.0, -1.0]
    result = client.update_vectors(
        "docs",
        points=[models.PointVectors(id=7, vector=new), models.PointVectors(id=8, vector=new)],
    )
    assert result.status == "completed"
    hits = client.query_points("docs", query=new, limit=2).points
    assert sorted(ids_of(hits)) == [7, 8] and hits[0].score > 0.999
    assert client.retrieve("docs", ids=[7])[0].payload == payload(7)
    assert server.request("GET", "/collections/docs/vectors/8")[1]["payload"] == payload(8)

    before = server.request("GET", "/collections/docs/vectors?with_vector=true&limit=100")[1]
    bad = [
        ([models.PointVectors(id=1, vector=new), models.PointVectors(id=404, vector=new)], 404),
        ([models.PointVectors(id=1, vector=[1.0, 2.0])], 400),
        ([models.PointVectors(id=2, vector={"named": new})], 400),
    ]
    for points, status in bad:
        with pytest.raises(UnexpectedResponse) as exc:
            client.update_vectors("docs", points=points)
        assert status_of(exc) == status, points
    after = server.request("GET", "/collections/docs/vectors?with_vector=true&limit=100")[1]
    assert after == before  # each refused request changed nothing


def test_batch_update_points(client: QdrantClient, server: ServerProcess) -> None:
    make(client, n=6)
    results = client.batch_update_points(
        "docs",
        update_operations=[
            models.UpsertOperation(
                upsert=models.PointsList(points=[models.PointStruct(id=50, vector=vec(50))])
            ),
            models.SetPayloadOperation(
                set_payload=models.SetPayload(payload={"new": 1}, points=[50, 1])
            ),
            models.DeletePayloadOperation(
                delete_payload=models.DeletePayload(keys=["tags"], points=[1])
            ),
            models.UpdateVectorsOperation(
                update_vectors=models.UpdateVectors(
                    points=[models.PointVectors(id=2, vector=[0.0, 0.0, 0.0, 1.0])]
                )
            ),
            models.DeleteOperation(delete=models.PointIdsList(points=[3])),
            models.ClearPayloadOperation(clear_payload=models.PointIdsList(points=[4])),
        ],
    )
    assert [r.status for r in results] == ["completed"] * 6
    assert [r.operation_id for r in results] == sorted(r.operation_id for r in results)  # type: ignore[type-var]
    assert client.retrieve("docs", ids=[50])[0].payload == {"new": 1}
    assert client.retrieve("docs", ids=[1])[0].payload == {"i": 1, "city": "Berlin", "new": 1}
    assert client.query_points("docs", query=[0.0, 0.0, 0.0, 1.0], limit=1).points[0].id == 2
    assert ids_of(client.retrieve("docs", ids=[3, 4])) == [4]
    assert client.retrieve("docs", ids=[4])[0].payload == {}

    # A malformed operation anywhere: the body is refused before anything is applied.
    sequence = server.request("GET", "/stats")[1]["sequence"]
    status, body = server.request(
        "POST",
        "/qdrant/collections/docs/points/batch",
        {"operations": [{"delete": {"points": [1]}}, {"upsert": {"points": "nope"}}]},
    )
    assert status == 400 and "operations[1].upsert.points" in body["status"]["error"]
    status, body = server.request(
        "POST", "/qdrant/collections/docs/points/batch", {"operations": [{"frobnicate": {}}]}
    )
    assert status == 400 and "operations[0]" in body["status"]["error"]
    assert server.request("GET", "/stats")[1]["sequence"] == sequence
    # One that fails as it runs stops the batch and says which; the ones before it stay.
    status, body = server.request(
        "POST",
        "/qdrant/collections/docs/points/batch",
        {
            "operations": [
                {"delete": {"points": [1]}},
                {"set_payload": {"payload": {"x": 1}, "points": [404]}},
                {"delete": {"points": [2]}},
            ]
        },
    )
    assert status == 404 and "the 1 operation(s) before it were applied" in body["status"]["error"]
    assert ids_of(client.retrieve("docs", ids=[1, 2])) == [2]


def test_deleting_vectors_is_refused_clearly(client: QdrantClient) -> None:
    make(client, n=3, distance=models.Distance.DOT)
    with pytest.raises(UnexpectedResponse) as exc:
        client.delete_vectors("docs", vectors=[""], points=[1])
    assert status_of(exc) == 400 and b"dense vector cannot be deleted" in exc.value.content
    assert client.retrieve("docs", ids=[1], with_vectors=True)[0].vector == vec(1)


# ---- reads ------------------------------------------------------------------------------------


def test_retrieve_and_get_point(client: QdrantClient) -> None:
    make(client, n=5, distance=models.Distance.DOT)
    records = client.retrieve("docs", ids=[2, 99, 1], with_payload=False, with_vectors=True)
    assert ids_of(records) == [2, 1]
    assert records[0].payload is None and records[0].vector == vec(2)
    assert client.retrieve("docs", ids=[3])[0].vector is None

    point = client.http.points_api.get_point("docs", id=4).result
    assert point is not None and point.payload == payload(4) and point.vector == vec(4)
    with pytest.raises(UnexpectedResponse) as exc:
        client.http.points_api.get_point("docs", id=404)
    assert status_of(exc) == 404


def test_payload_selectors(client: QdrantClient) -> None:
    make(client, n=0)
    client.upsert(
        "docs",
        points=[models.PointStruct(id=1, vector=vec(1), payload={"a": 1, "b": {"c": 2, "d": 3}})],
    )
    get = lambda sel: client.retrieve("docs", ids=[1], with_payload=sel)[0].payload  # noqa: E731
    assert get(["a"]) == {"a": 1}
    assert get(["b.c"]) == {"b": {"c": 2}}
    assert get(models.PayloadSelectorInclude(include=["b"])) == {"b": {"c": 2, "d": 3}}
    assert get(models.PayloadSelectorExclude(exclude=["a", "b.d"])) == {"b": {"c": 2}}


def test_scroll_pagination(client: QdrantClient) -> None:
    make(client, n=0)
    u = [str(uuid.UUID(int=k)) for k in (3, 1, 2)]
    points = [models.PointStruct(id=i, vector=vec(i), payload=payload(i)) for i in range(1, 26)]
    points += [models.PointStruct(id=s, vector=vec(1), payload={"uuid": True}) for s in u]
    client.upsert("docs", points=points)

    seen: list[Any] = []
    offset: Any = None
    pages = 0
    while True:
        page, offset = client.scroll("docs", limit=10, offset=offset)
        seen += ids_of(page)
        pages += 1
        if offset is None:
            break
    assert pages == 3
    # Integer ids first in numeric order, then UUIDs in order, as in Qdrant.
    assert seen == list(range(1, 26)) + sorted(u)

    odd = models.Filter(must=[eq("tags", "odd")])
    page, nxt = client.scroll("docs", scroll_filter=odd, limit=5, with_vectors=True)
    assert ids_of(page) == [1, 3, 5, 7, 9] and nxt == 11
    assert page[0].vector is not None and len(page[0].vector) == DIM  # type: ignore[arg-type]
    page, nxt = client.scroll("docs", scroll_filter=odd, limit=5, offset=nxt, with_payload=False)
    assert ids_of(page) == [11, 13, 15, 17, 19] and page[0].payload is None


# Over make(n=12): city is Berlin, London, Rome, Paris for i % 4 == 1, 2, 3, 0;
# tags is ["odd"] or ["even"]; "note" exists when i % 5 == 0.
FILTERS: list[tuple[models.Filter, list[int]]] = [
    (models.Filter(must=[eq("city", "Rome")]), [3, 7, 11]),
    (models.Filter(should=[eq("city", "Rome"), models.HasIdCondition(has_id=[1])]), [1, 3, 7, 11]),
    (models.Filter(must_not=[eq("tags", "odd")]), [2, 4, 6, 8, 10, 12]),
    (
        models.Filter(
            must=[models.FieldCondition(key="city", match=models.MatchAny(any=["Paris", "London"]))]
        ),
        [2, 4, 6, 8, 10, 12],
    ),
    (
        models.Filter(
            must=[
                models.FieldCondition(
                    key="city",
                    match=models.MatchExcept(**{"except": ["Paris", "Berlin", "London"]}),
                )
            ]
        ),
        [3, 7, 11],
    ),
    (models.Filter(must=[between("i", gt=3, lte=6)]), [4, 5, 6]),
    (models.Filter(must=[between("i", gte=11)]), [11, 12]),
    (models.Filter(must=[models.HasIdCondition(has_id=[2, 5, 99])]), [2, 5]),
    (models.Filter(must=[empty("note")]), [1, 2, 3, 4, 6, 7, 8, 9, 11, 12]),
    (models.Filter(must_not=[empty("note")]), [5, 10]),
    (
        models.Filter(
            must=[eq("tags", "even")],
            must_not=[models.Filter(should=[eq("city", "Paris"), between("i", gt=10)])],
        ),
        [2, 6, 10],
    ),
    (
        models.Filter(
            min_should=models.MinShould(
                conditions=[eq("tags", "odd"), eq("city", "Berlin"), between("i", lt=6)],
                min_count=2,
            )
        ),
        [1, 3, 5, 9],
    ),
]


@pytest.mark.parametrize(("flt", "expected"), FILTERS)
def test_filters_in_count_scroll_and_query(
    client: QdrantClient, flt: models.Filter, expected: list[int]
) -> None:
    make(client, n=12)
    assert client.count("docs", count_filter=flt, exact=True).count == len(expected)
    assert ids_of(client.scroll("docs", scroll_filter=flt, limit=100)[0]) == expected
    hits = client.query_points("docs", query=vec(4), query_filter=flt, limit=100).points
    assert sorted(ids_of(hits)) == expected


def test_datetime_range_filters(client: QdrantClient, server: ServerProcess) -> None:
    """Qdrant's DatetimeRange over RFC 3339 strings (a time without a zone is UTC)."""
    make(client, n=6)
    when = {
        1: "2024-05-01T09:00:00Z",
        2: "2024-05-01T12:00:00+02:00",  # 10:00 UTC
        3: "2024-05-01 11:00:00",
        4: "2024-05-02",
        5: "yesterday",
    }
    for pid, t in when.items():
        client.set_payload("docs", payload={"at": t}, points=[pid])
    morning = models.Filter(
        must=[
            models.FieldCondition(
                key="at",
                range=models.DatetimeRange(gte="2024-05-01T09:30:00Z", lt="2024-05-01T12:00:00Z"),
            )
        ]
    )
    assert client.count("docs", count_filter=morning).count == 2
    assert ids_of(client.scroll("docs", scroll_filter=morning)[0]) == [2, 3]
    # (the client checks datetimes itself; a bad one sent as is names its bound)
    bad = {"filter": {"must": [{"key": "at", "range": {"lt": "the 5th of May"}}]}}
    status, reply = server.request("POST", "/qdrant/collections/docs/points/count", bad)
    assert status == 400 and "range.lt" in reply["status"]["error"], reply


# ---- search -----------------------------------------------------------------------------------


def brute_force(vectors: np.ndarray, q: np.ndarray, k: int) -> list[int]:
    norm = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    scores = norm @ (q / np.linalg.norm(q))
    return [int(i) + 1 for i in np.argsort(-scores, kind="stable")[:k]]


def test_query_points_options(client: QdrantClient) -> None:
    make(client, n=20)
    q = vec(6)
    hits = client.query_points("docs", query=q, limit=5, with_payload=True).points
    assert hits[0].id == 6 and hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert hits[0].payload == payload(6) and hits[0].vector is None

    page2 = client.query_points("docs", query=q, limit=5, offset=5).points
    everything = client.query_points("docs", query=q, limit=10).points
    assert ids_of(page2) == ids_of(everything)[5:]

    threshold = hits[2].score
    above = client.query_points("docs", query=q, limit=20, score_threshold=threshold).points
    assert above and all(h.score >= threshold for h in above) and len(above) >= 3

    with_vec = client.query_points("docs", query=q, limit=1, with_vectors=True).points[0]
    assert with_vec.vector is not None and len(with_vec.vector) == DIM  # type: ignore[arg-type]

    tuned = client.query_points(
        "docs", query=q, limit=5, search_params=models.SearchParams(hnsw_ef=64, exact=True)
    ).points
    assert ids_of(tuned) == ids_of(hits)
    nearest = client.query_points("docs", query=models.NearestQuery(nearest=q), limit=5).points
    assert ids_of(nearest) == ids_of(hits)


def test_query_points_on_the_hnsw_path_matches_exact(client: QdrantClient) -> None:
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(3000, 8)).astype(np.float32)
    client.create_collection("big", vectors_config=models.VectorParams(size=8, distance="Cosine"))
    client.upsert("big", points=models.Batch(ids=list(range(1, 3001)), vectors=vectors.tolist()))
    q = rng.normal(size=8).astype(np.float32)
    exact = client.query_points(
        "big", query=q.tolist(), limit=10, search_params=models.SearchParams(exact=True)
    ).points
    assert ids_of(exact) == brute_force(vectors, q, 10)
    approx = client.query_points(
        "big", query=q.tolist(), limit=10, search_params=models.SearchParams(hnsw_ef=256)
    ).points
    assert len(set(ids_of(approx)) & set(ids_of(exact))) >= 9


def test_euclid_threshold_keeps_closer_points(client: QdrantClient) -> None:
    client.create_collection("e", vectors_config=models.VectorParams(size=2, distance="Euclid"))
    client.upsert(
        "e",
        points=[models.PointStruct(id=i, vector=[float(i), 0.0]) for i in range(1, 6)],
    )
    hits = client.query_points("e", query=[0.0, 0.0], limit=5, score_threshold=3.0).points
    assert ids_of(hits) == [1, 2, 3]
    assert [h.score for h in hits] == pytest.approx([1.0, 2.0, 3.0])


def test_query_by_point_id_excludes_that_point(client: QdrantClient) -> None:
    make(client, n=10)
    hits = client.query_points("docs", query=4, limit=3).points
    assert 4 not in ids_of(hits) and len(hits) == 3
    by_vector = client.query_points("docs", query=vec(4), limit=4).points
    assert ids_of(hits) == [i for i in ids_of(by_vector) if i != 4][:3]
    with pytest.raises(UnexpectedResponse) as exc:
        client.query_points("docs", query=404)
    assert status_of(exc) == 404


def test_query_without_query_lists_points_in_id_order(client: QdrantClient) -> None:
    make(client, n=10)
    hits = client.query_points("docs", limit=3, offset=2).points
    assert ids_of(hits) == [3, 4, 5] and all(h.score == 1.0 for h in hits)  # as in Qdrant


def test_query_batch_points(client: QdrantClient) -> None:
    make(client, n=10)
    paris = models.Filter(must=[eq("city", "Paris")])
    responses = client.query_batch_points(
        "docs",
        requests=[
            models.QueryRequest(query=vec(2), limit=2),
            models.QueryRequest(query=vec(2), filter=paris, limit=10, with_payload=True),
        ],
    )
    assert len(responses) == 2 and len(responses[0].points) == 2
    assert sorted(ids_of(responses[1].points)) == [4, 8]
    assert all(p.payload and p.payload["city"] == "Paris" for p in responses[1].points)


def test_legacy_search_routes(client: QdrantClient, server: ServerProcess) -> None:
    make(client, n=10)
    status, body = server.request(
        "POST",
        "/qdrant/collections/docs/points/search",
        {
            "vector": vec(3),
            "limit": 3,
            "filter": {"must": [{"key": "tags", "match": {"value": "odd"}}]},
            "params": {"hnsw_ef": 32, "exact": False},
            "with_payload": True,
            "with_vectors": True,
        },
    )
    assert status == 200
    assert body["status"] == "ok" and isinstance(body["time"], float)
    hits = [models.ScoredPoint.model_validate(h) for h in body["result"]]
    assert hits[0].id == 3 and all(h.payload and h.payload["tags"] == ["odd"] for h in hits)
    assert hits[0].vector is not None

    status, body = server.request(
        "POST",
        "/qdrant/collections/docs/points/search/batch",
        {"searches": [{"vector": vec(1), "limit": 1}, {"vector": vec(2), "limit": 2, "offset": 1}]},
    )
    assert status == 200
    assert [len(r) for r in body["result"]] == [1, 2]
    assert body["result"][0][0]["id"] == 1 and "payload" not in body["result"][0][0]


def test_recommend_queries_average_the_examples(client: QdrantClient) -> None:
    make(client, n=40, distance=models.Distance.DOT)
    stored = {
        p.id: np.array(p.vector) for p in client.scroll("docs", limit=100, with_vectors=True)[0]
    }

    def expected(
        query: np.ndarray, exclude: set[int], k: int = 5, city: str | None = None
    ) -> list[int]:
        scores = {
            i: float(v @ query)
            for i, v in stored.items()
            if i not in exclude and (city is None or payload(i)["city"] == city)
        }
        return sorted(scores, key=lambda i: (-scores[i], i))[:k]

    pos = (stored[3] + stored[7]) / 2
    rec = models.RecommendQuery(recommend=models.RecommendInput(positive=[3, 7]))
    got = client.query_points("docs", query=rec, limit=5).points
    assert ids_of(got) == expected(pos, {3, 7})  # the examples themselves never come back
    assert got[0].score == pytest.approx(float(stored[got[0].id] @ pos), rel=1e-5)

    raw = [0.0, -1.0, 2.0, 0.5]
    rec = models.RecommendQuery(
        recommend=models.RecommendInput(
            positive=[3, raw], negative=[10], strategy=models.RecommendStrategy.AVERAGE_VECTOR
        )
    )
    pos = (stored[3] + np.array(raw)) / 2
    query = pos + (pos - stored[10])
    got = client.query_points(
        "docs", query=rec, limit=5, query_filter=models.Filter(must=[eq("city", "Rome")])
    )
    assert ids_of(got.points) == expected(query, {3, 10}, city="Rome")

    batch = client.query_batch_points(
        "docs",
        requests=[
            models.QueryRequest(
                query=models.RecommendQuery(recommend=models.RecommendInput(positive=[1])), limit=2
            ),
            models.QueryRequest(query=vec(1), limit=1),
        ],
    )
    assert ids_of(batch[0].points) == expected(stored[1], {1}, k=2)
    assert ids_of(batch[1].points) == expected(np.array(vec(1)), set(), k=1)

    for bad, status, needle in (
        (
            models.RecommendInput(positive=[], strategy=models.RecommendStrategy.BEST_SCORE),
            400,
            "at least one",
        ),
        (models.RecommendInput(positive=[], negative=[3]), 400, "at least one"),
        (models.RecommendInput(positive=[999]), 404, "999"),
        (models.RecommendInput(positive=[[1.0, 2.0]]), 400, "dimension"),
    ):
        with pytest.raises(UnexpectedResponse) as exc:
            client.query_points("docs", query=models.RecommendQuery(recommend=bad))
        assert status_of(exc) == status and needle in exc.value.structured()["status"]["error"]


# ---- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.get_collection("missing"),
        lambda c: c.upsert("missing", points=[models.PointStruct(id=1, vector=vec(1))]),
        lambda c: c.query_points("missing", query=vec(1)),
        lambda c: c.scroll("missing"),
        lambda c: c.count("missing"),
        lambda c: c.retrieve("missing", ids=[1]),
        lambda c: c.delete("missing", points_selector=[1]),
        lambda c: c.set_payload("missing", payload={}, points=[1]),
    ],
)
def test_missing_collection_is_404(client: QdrantClient, call: Any) -> None:
    with pytest.raises(UnexpectedResponse) as exc:
        call(client)
    assert status_of(exc) == 404
    body = exc.value.structured()
    assert "missing" in body["status"]["error"] and "time" in body


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (
            lambda c: c.upsert("docs", points=[models.PointStruct(id=1, vector=[1.0, 2.0])]),
            "dimension",
        ),
        (lambda c: c.query_points("docs", query=[1.0, 2.0, 3.0]), "dimension"),
        (
            lambda c: c.upsert("docs", points=[models.PointStruct(id="42", vector=vec(1))]),
            "integers",
        ),
        (
            lambda c: c.upsert("docs", points=[models.PointStruct(id=1, vector={"img": vec(1)})]),
            "points[0].vector.img: collection 'docs' has no dense vector named 'img'",
        ),
        (
            lambda c: c.upsert("docs", points=[models.PointStruct(id=1, vector=[vec(1), vec(2)])]),
            "'' is a dense vector, not a multivector",
        ),
        (
            lambda c: c.query_points("docs", query=models.FusionQuery(fusion=models.Fusion.RRF)),
            "fusion",
        ),
        (
            lambda c: c.query_points("docs", query=vec(1), using="img"),
            "no dense vector named 'img'",
        ),
        (
            lambda c: c.query_points(
                "docs", prefetch=models.Prefetch(query=vec(1), using="img"), query=vec(1)
            ),
            "prefetch[0].using",
        ),
        (lambda c: c.scroll("docs", order_by="i", offset=1), "order_by.start_from"),
        # Keys are Qdrant's JSON paths: a typo is refused, not read as a literal key.
        (
            lambda c: c.count(
                "docs",
                count_filter=models.Filter(
                    must=[models.FieldCondition(key="a[", match=models.MatchValue(value=3))]
                ),
            ),
            "'a[' is not a payload path",
        ),
        (
            lambda c: c.create_payload_index("docs", "a..b", models.PayloadSchemaType.KEYWORD),
            "'a..b' is not a payload path",
        ),
        (
            lambda c: c.query_points_groups("docs", query=vec(1), group_by="g[x]"),
            "'g[x]' is not a payload path",
        ),
        (lambda c: c.facet("docs", key="tag."), "'tag.' is not a payload path"),
        (
            lambda c: c.query_points(
                "docs", query=vec(1), search_params=models.SearchParams(hnsw_ef=0)
            ),
            "hnsw_ef",
        ),
    ],
)
def test_bad_input_is_400(client: QdrantClient, call: Any, needle: str) -> None:
    make(client, n=2)
    with pytest.raises(UnexpectedResponse) as exc:
        call(client)
    assert status_of(exc) == 400
    assert needle in exc.value.structured()["status"]["error"]


def test_malformed_bodies_are_400(server: ServerProcess, client: QdrantClient) -> None:
    make(client, n=1)
    search = "/qdrant/collections/docs/points/search"
    cases: list[tuple[str, str, Any]] = [
        ("POST", search, b"{"),
        ("POST", search, b"[]"),
        ("POST", search, {"vector": vec(1), "limit": 1, "bogus": 1}),
        ("PUT", "/qdrant/collections/docs/points", {"points": [{"id": 1}]}),
        ("PUT", "/qdrant/collections/docs/points", {"batch": {"ids": [1, 2], "vectors": [vec(1)]}}),
    ]
    for method, path, body in cases:
        status, reply = server.request(method, path, body)
        assert status == 400, (body, reply)
        assert set(reply) == {"status", "time"} and reply["status"]["error"]


def test_string_ids_that_are_not_uuids_are_accepted(
    client: QdrantClient, server: ServerProcess
) -> None:
    # Qdrant would refuse these; we accept them so that ids written natively stay reachable.
    make(client, n=0)
    client.upsert("docs", points=[models.PointStruct(id="doc-1", vector=vec(1), payload={"a": 1})])
    assert server.request("GET", "/collections/docs/vectors/doc-1")[1]["payload"] == {"a": 1}
    assert client.retrieve("docs", ids=["doc-1"])[0].payload == {"a": 1}


# ---- async client -----------------------------------------------------------------------------


async def test_async_client_round_trip(server: ServerProcess) -> None:
    client = AsyncQdrantClient(
        url=server.url, prefix="qdrant", timeout=30, check_compatibility=False
    )
    try:
        await client.create_collection(
            "a", vectors_config=models.VectorParams(size=DIM, distance="Dot")
        )
        assert await client.collection_exists("a")
        await client.upsert(
            "a",
            points=[
                models.PointStruct(id=i, vector=vec(i), payload=payload(i)) for i in range(1, 9)
            ],
        )
        assert (await client.count("a")).count == 8
        hits = (await client.query_points("a", query=vec(8), limit=3)).points
        assert hits[0].id == 8
        page, nxt = await client.scroll("a", limit=5)
        assert ids_of(page) == [1, 2, 3, 4, 5] and nxt == 6
        await client.delete("a", points_selector=[1, 2])
        assert [r.id for r in await client.retrieve("a", ids=[1, 3])] == [3]
        assert await client.delete_collection("a")
        with pytest.raises(UnexpectedResponse) as exc:
            await client.get_collection("a")
        assert exc.value.status_code == 404
    finally:
        await client.close()


def test_zero_vectors_are_stored_in_cosine_collections_and_score_zero(
    client: QdrantClient,
) -> None:
    """As in Qdrant: a zero vector (an empty text's embedding, say) is kept as it is, not
    refused; it scores 0 against any query, and a zero query scores 0 against all."""
    make(client, n=20)
    zeros = [0.0] * DIM
    client.upsert("docs", points=[models.PointStruct(id=100 + i, vector=zeros) for i in range(3)])
    got = client.retrieve("docs", [100], with_vectors=True)
    assert got[0].vector == zeros
    hits = client.query_points("docs", query=vec(1), limit=23).points
    assert [p.score for p in hits if p.id >= 100] == [0.0, 0.0, 0.0]
    by_zero = client.query_points("docs", query=zeros, limit=5).points
    assert len(by_zero) == 5 and all(p.score == 0.0 for p in by_zero)
    client.update_vectors("docs", points=[models.PointVectors(id=1, vector=zeros)])
    assert client.retrieve("docs", [1], with_vectors=True)[0].vector == zeros
