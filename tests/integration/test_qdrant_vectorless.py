"""Collections without a default dense vector, as Qdrant makes them: sparse vectors only
(LangChain's and fastembed's BM25 collections, ``vectors_config={}``), named dense
vectors only (each optional on a point), a multivector only (ColBERT, named or
unnamed), or no vectors at all. Held to qdrant-client's local mode through the official client against a real
``vectorizer serve``; they survive a kill -9, snapshots and snapshot files; and the
native API, which searches a collection's own vector, refuses them by name."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

from tests import qdrant_checks as checks
from tests.servers import ServerProcess
from vectorizer.engine.collection import NamedRows
from vectorizer.engine.sparse import SparseVector
from vectorizer.engine.store import Store, StoreOptions
from vectorizer.engine.wal import FsyncPolicy

SPARSE = {"text-sparse": models.SparseVectorParams(modifier=models.Modifier.IDF)}
NAMED = {
    "image": models.VectorParams(size=4, distance=models.Distance.DOT),
    "text": models.VectorParams(size=8, distance=models.Distance.COSINE),
}
COLBERT = {
    "colbert": models.VectorParams(
        size=4,
        distance=models.Distance.COSINE,
        multivector_config=models.MultiVectorConfig(
            comparator=models.MultiVectorComparator.MAX_SIM
        ),
    )
}
N = 2500  # "text" on ~2,250 of them: past the exact-search threshold, so its graph
HAS_TEXT = models.Filter(must=[models.HasVectorCondition(has_vector="text")])
HAS_DEFAULT = models.Filter(must=[models.HasVectorCondition(has_vector="")])
GROUP = models.Filter(must=[models.FieldCondition(key="group", match=models.MatchValue(value=1))])


def dense(rnd: random.Random, size: int) -> list[float]:
    return [round(rnd.gauss(0, 1), 4) for _ in range(size)]


def words(rnd: random.Random) -> models.SparseVector:
    indices = rnd.sample(range(40), rnd.randint(1, 5))
    return models.SparseVector(indices=indices, values=[1.0] * len(indices))


def sparse_only(client: QdrantClient) -> None:
    """Collection "s": a sparse vector (IDF) and nothing else; points given as a list, as
    a batch, and one with no vector at all."""
    client.create_collection("s", vectors_config={}, sparse_vectors_config=SPARSE)
    rnd = random.Random(3)
    client.upsert(
        "s",
        points=[
            models.PointStruct(id=i, vector={"text-sparse": words(rnd)}, payload={"group": i % 3})
            for i in range(300)
        ],
    )
    batch = [words(rnd) for _ in range(100)]
    client.upsert(
        "s",
        points=models.Batch(
            ids=list(range(300, 400)),
            vectors={"text-sparse": batch},  # type: ignore[dict-item]
            payloads=[{"group": i % 3} for i in range(300, 400)],
        ),
    )
    client.upsert("s", points=[models.PointStruct(id=400, vector={}, payload={"group": 1})])


def named_only(client: QdrantClient) -> None:
    """Collection "m": named dense vectors only, each optional: most points have "text",
    some "image", some both, a few neither."""
    client.create_collection("m", vectors_config=NAMED)
    rnd = random.Random(5)
    points = []
    for i in range(N):
        vector: dict[str, Any] = {}
        if rnd.random() < 0.9:
            vector["text"] = dense(rnd, 8)
        if rnd.random() < 0.4:
            vector["image"] = dense(rnd, 4)
        points.append(models.PointStruct(id=i, vector=vector, payload={"group": i % 4}))
    for start in range(0, N, 500):
        client.upsert("m", points=points[start : start + 500])


def colbert_only(client: QdrantClient) -> None:
    """Collection "c": a multivector and nothing else."""
    client.create_collection("c", vectors_config=COLBERT)
    rnd = random.Random(9)
    client.upsert(
        "c",
        points=[
            models.PointStruct(
                id=i,
                vector={"colbert": [dense(rnd, 4) for _ in range(rnd.randint(1, 5))]},
                payload={"group": i % 2},
            )
            for i in range(200)
        ],
    )


def same_hits(ours: list[models.ScoredPoint], theirs: list[models.ScoredPoint]) -> None:
    checks.same_hits(ours, theirs, rel=1e-4, abs_tol=1e-5)


def test_a_sparse_only_collection_works_as_in_local_mode(client: QdrantClient) -> None:
    both = checks.with_local(client, sparse_only)
    ours_c, theirs_c = (c.get_collection("s") for c in both)
    assert ours_c.config.params.vectors == theirs_c.config.params.vectors == {}
    assert set(ours_c.config.params.sparse_vectors or {}) == set(SPARSE)
    assert ours_c.points_count == 401
    rnd = random.Random(4)
    for _ in range(10):
        query = words(rnd)
        for kwargs in ({}, {"query_filter": GROUP}, {"offset": 2}):
            ours, theirs = (
                c.query_points("s", query=query, using="text-sparse", limit=10, **kwargs).points
                for c in both
            )
            assert [h.score for h in ours] == pytest.approx([h.score for h in theirs])
    ids = [0, 1, 2, 350, 400]
    for with_vectors in (True, ["text-sparse"], False):
        ours_r, theirs_r = (c.retrieve("s", ids, with_vectors=with_vectors) for c in both)
        assert checks.vectors_of(ours_r) == checks.vectors_of(theirs_r), with_vectors
    new = words(rnd)
    for c in both:
        c.update_vectors("s", points=[models.PointVectors(id=400, vector={"text-sparse": new})])
        c.delete_vectors("s", vectors=["text-sparse"], points=[0, 1])
        c.upsert("s", points=[models.PointStruct(id=2, vector={}, payload={"group": 2})])
    ours_r, theirs_r = (c.retrieve("s", ids, with_vectors=True) for c in both)
    assert checks.vectors_of(ours_r) == checks.vectors_of(theirs_r)
    assert [r.payload for r in ours_r] == [r.payload for r in theirs_r]
    has = models.Filter(must=[models.HasVectorCondition(has_vector="text-sparse")])
    assert client.count("s", count_filter=has).count == both[1].count("s", count_filter=has).count
    ours_s, theirs_s = (c.scroll("s", limit=500, with_vectors=True)[0] for c in both)
    assert checks.vectors_of(ours_s) == checks.vectors_of(theirs_s)


def test_named_vectors_are_optional_as_in_local_mode(client: QdrantClient) -> None:
    both = checks.with_local(client, named_only)
    ours_p, theirs_p = (c.get_collection("m").config.params for c in both)
    assert isinstance(ours_p.vectors, dict) and isinstance(theirs_p.vectors, dict)
    assert {n: (v.size, v.distance) for n, v in ours_p.vectors.items()} == {
        n: (v.size, v.distance) for n, v in theirs_p.vectors.items()
    }
    rnd = random.Random(6)
    exact = models.SearchParams(exact=True)
    for using, size in (("text", 8), ("image", 4)):
        for _ in range(4):
            query = dense(rnd, size)
            for kwargs in (
                {"search_params": exact},
                {"search_params": exact, "query_filter": GROUP},
            ):
                ours, theirs = (
                    c.query_points("m", query=query, using=using, limit=10, **kwargs).points
                    for c in both
                )
                same_hits(ours, theirs)
            ours, theirs = (  # (the graph of "text": the same neighbours, or nearly)
                c.query_points("m", query=query, using=using, limit=10).points for c in both
            )
            assert len({h.id for h in ours} & {h.id for h in theirs}) >= 9
    ids = list(range(40))
    for with_vectors in (True, ["image"], ["text"], False):
        ours_r, theirs_r = (c.retrieve("m", ids, with_vectors=with_vectors) for c in both)
        assert checks.vectors_of(ours_r) == checks.vectors_of(theirs_r), with_vectors
    # points change their vectors: an upsert drops the ones it does not give, an update
    # adds or replaces, a delete removes; then searches see the change
    text_only = next(
        r.id for r in both[1].retrieve("m", ids, with_vectors=True) if set(r.vector) == {"text"}
    )  # type: ignore[arg-type]
    for c in both:
        c.upsert("m", points=[models.PointStruct(id=0, vector={"image": [1.0, 2.0, 3.0, 4.0]})])
        c.update_vectors(
            "m", points=[models.PointVectors(id=text_only, vector={"image": [4.0, 3.0, 2.0, 1.0]})]
        )
        c.delete_vectors("m", vectors=["text"], points=[1, 2, 3])
        c.delete("m", points_selector=models.PointIdsList(points=list(range(100, 140))))
        c.upsert(
            "m",
            points=[
                models.PointStruct(id=N + i, vector={"text": dense(random.Random(i), 8)})
                for i in range(60)
            ],
        )
    ours_r, theirs_r = (c.retrieve("m", [*ids, *range(N, N + 60)], with_vectors=True) for c in both)
    assert checks.vectors_of(ours_r) == checks.vectors_of(theirs_r)
    for has in (HAS_TEXT, HAS_DEFAULT):  # ("": none has a default vector)
        ours_n, theirs_n = (c.count("m", count_filter=has).count for c in both)
        assert ours_n == theirs_n, has
    for using, size in (("text", 8), ("image", 4)):
        query = dense(rnd, size)
        ours, theirs = (
            c.query_points("m", query=query, using=using, limit=20, search_params=exact).points
            for c in both
        )
        same_hits(ours, theirs)
    ours = client.query_points("m", query=query, using="image", limit=20).points  # (graph)
    assert len({h.id for h in ours} & {h.id for h in theirs}) >= 19
    text_ids = {p.id for p in client.scroll("m", scroll_filter=HAS_TEXT, limit=5000)[0]}
    for _ in range(5):  # (points whose "text" went are gone from its graph too)
        found = client.query_points("m", query=dense(rnd, 8), using="text", limit=50).points
        assert {h.id for h in found} <= text_ids
    recommend = models.RecommendQuery(recommend=models.RecommendInput(positive=[5, 6]))
    ours, theirs = (
        c.query_points("m", query=recommend, using="text", limit=10, search_params=exact).points
        for c in both
    )
    same_hits(ours, theirs)
    for c in both:
        c.delete_vector_name("m", "image")  # (any of them may go)
    ours_r, theirs_r = (c.retrieve("m", ids, with_vectors=True) for c in both)
    assert checks.vectors_of(ours_r) == checks.vectors_of(theirs_r)


def test_a_multivector_only_collection_works_as_in_local_mode(client: QdrantClient) -> None:
    both = checks.with_local(client, colbert_only)
    rnd = random.Random(2)
    for _ in range(5):
        query = [dense(rnd, 4) for _ in range(3)]
        for kwargs in ({}, {"query_filter": GROUP}):
            ours, theirs = (
                c.query_points("c", query=query, using="colbert", limit=10, **kwargs).points
                for c in both
            )
            same_hits(ours, theirs)
    ours_r, theirs_r = (c.retrieve("c", [0, 1, 2], with_vectors=True) for c in both)
    assert checks.vectors_of(ours_r) == checks.vectors_of(theirs_r)
    # (no dense vector to make candidates: a multivector query reranks its own)
    first, then = [dense(rnd, 4)], [dense(rnd, 4), dense(rnd, 4)]
    ours, theirs = (
        c.query_points(
            "c",
            prefetch=models.Prefetch(query=first, using="colbert", limit=30),
            query=then,
            using="colbert",
            limit=5,
        ).points
        for c in both
    )
    same_hits(ours, theirs)


def unnamed_colbert(client: QdrantClient) -> None:
    """Collection "u": an unnamed multivector (Qdrant's documented ColBERT example), its
    points given plain, as ``""`` and in a batch."""
    client.create_collection("u", vectors_config=COLBERT["colbert"])
    rnd = random.Random(8)

    def rows() -> list[list[float]]:
        return [dense(rnd, 4) for _ in range(rnd.randint(1, 4))]

    listed = [
        models.PointStruct(id=i, vector=rows() if i % 2 else {"": rows()}, payload={"group": i % 2})
        for i in range(100)
    ]
    client.upsert("u", points=listed)
    client.upsert(
        "u",
        points=models.Batch(
            ids=list(range(100, 150)),
            vectors=[rows() for _ in range(50)],
            payloads=[{"group": i % 2} for i in range(100, 150)],
        ),
    )


def test_an_unnamed_multivector_works_as_in_local_mode(client: QdrantClient) -> None:
    both = checks.with_local(client, unnamed_colbert)
    ours_p, theirs_p = (c.get_collection("u").config.params.vectors for c in both)
    assert isinstance(ours_p, models.VectorParams) and ours_p.multivector_config is not None
    assert (ours_p.size, ours_p.distance) == (theirs_p.size, theirs_p.distance)  # type: ignore[union-attr]
    ours_n, theirs_n = (c.count("u", count_filter=HAS_DEFAULT).count for c in both)
    assert ours_n == theirs_n == 150
    rnd = random.Random(3)
    for _ in range(5):
        query = [dense(rnd, 4) for _ in range(3)]
        for kwargs in ({}, {"query_filter": GROUP}):
            ours, theirs = (
                c.query_points("u", query=query, limit=10, **kwargs).points for c in both
            )
            same_hits(ours, theirs)
    for with_vectors in (True, [""]):
        ours_r, theirs_r = (c.retrieve("u", [0, 1, 120], with_vectors=with_vectors) for c in both)
        assert checks.vectors_of(ours_r) == checks.vectors_of(theirs_r), with_vectors
    ours, theirs = (c.query_points("u", query=7, limit=5).points for c in both)  # (by id)
    same_hits(ours, theirs)
    new = [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]]
    for c in both:
        c.update_vectors("u", points=[models.PointVectors(id=3, vector=new)])
        c.delete_vectors("u", vectors=[""], points=[4, 5])
    ours_r, theirs_r = (c.retrieve("u", [3, 4, 5], with_vectors=True) for c in both)
    assert checks.vectors_of(ours_r) == checks.vectors_of(theirs_r)
    with pytest.raises(UnexpectedResponse) as exc:  # (a plain vector: "" is a multivector)
        client.upsert("u", points=[models.PointStruct(id=1, vector=[1.0] * 4)])
    assert exc.value.status_code == 400 and b"no dense vector of its own" in exc.value.content


def test_a_collection_without_vectors_holds_payloads(client: QdrantClient) -> None:
    def make(c: QdrantClient) -> None:
        c.create_collection("p")
        c.upsert(
            "p", points=[models.PointStruct(id=i, vector={}, payload={"n": i}) for i in range(5)]
        )

    both = checks.with_local(client, make)
    ours, theirs = (c.scroll("p", with_vectors=True)[0] for c in both)
    assert [(r.id, r.payload, r.vector) for r in ours] == [
        (r.id, r.payload, r.vector) for r in theirs
    ]
    assert client.get_collection("p").config.params.vectors == {}


def upserting(collection: str, vector: Any) -> Any:
    return lambda c: c.upsert(collection, points=[models.PointStruct(id=1, vector=vector)])


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (upserting("m", [1.0] * 4), b"points[0]: collection 'm' has no dense vector of its own"),
        (
            upserting("s", {"": [1.0] * 4}),
            b"points[0]: collection 's' has no dense vector of its own "
            b"(it has sparse: 'text-sparse'): name the vector",
        ),
        (
            lambda c: c.query_points("m", query=[1.0] * 8),
            b"using: collection 'm' has no dense vector of its own",
        ),
        (lambda c: c.query_points("s", query=[1.0] * 8), b"has no dense vector of its own"),
        (
            lambda c: c.retrieve("m", [1], with_vectors=["", "text"]),
            b"with_vector: collection 'm' has no dense vector of its own",
        ),
        (
            lambda c: c.query_points(
                "m", query=models.RecommendQuery(recommend=models.RecommendInput(positive=[5]))
            ),
            b"has no dense vector of its own",
        ),
        (
            lambda c: c.update_vectors("m", points=[models.PointVectors(id=1, vector=[1.0] * 4)]),
            b"has no dense vector of its own",
        ),
        (
            lambda c: c.query_points(
                "m", query=5, using="text", lookup_from=models.LookupLocation(collection="s")
            ),
            b"lookup_from: collection 's' has no dense vector named 'text'",
        ),
        (
            lambda c: c.upsert(
                "m",
                points=models.Batch(ids=[1], vectors={"text": [[1.0] * 7]}),  # type: ignore[dict-item]
            ),
            b"expected a vector of dimension 8",
        ),
    ],
)
def test_bad_input_is_a_400_and_changes_nothing(
    client: QdrantClient, call: Any, needle: bytes
) -> None:
    sparse_only(client)
    named_only(client)
    for collection in ("m", "s"):
        checks.refused_unchanged(client, call, needle, collection, [1, 5])


def test_the_native_api_refuses_what_needs_a_vector_of_its_own(
    client: QdrantClient, server: ServerProcess
) -> None:
    named_only(client)
    with httpx.Client(base_url=server.url) as http:
        info = http.get("/collections/m").json()["collection"]
        assert info["dimension"] == 0 and set(info["named_vectors"]) == set(NAMED)
        for method, path, body, field in (
            ("POST", "/collections/m/search", {"vector": [1.0] * 4}, "vector"),
            (
                "POST",
                "/collections/m/vectors",
                {"vectors": [{"id": 1, "vector": [1.0] * 4}]},
                "vectors[0]",
            ),
            ("PUT", "/collections/m/vectors/1", {"vector": [1.0] * 4}, "vector"),
            ("POST", "/collections", {"name": "z", "dimension": 0}, "dimension"),
        ):
            answer = http.request(method, path, json=body)
            assert answer.status_code == 422, (path, answer.text)
            error = answer.json()["error"]
            assert (error["code"], error["field"]) == ("validation_error", field), error
        assert http.put("/collections/m/vectors/1", json={"payload": {"k": 1}}).status_code == 200
        got = http.get("/collections/m/vectors/1").json()
        assert got["payload"] == {"k": 1} and got.get("vector") is None
    point = client.retrieve("m", [1], with_vectors=True)[0]
    assert point.payload == {"k": 1} and point.vector  # (its named vectors kept)


def test_vectorless_collections_survive_kill_9_snapshots_and_snapshot_files(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    srv = server_factory(data_dir=tmp_path / "data").start()
    client = QdrantClient(url=srv.url, prefix="qdrant", check_compatibility=False, timeout=60)
    sparse_only(client)
    colbert_only(client)
    client.create_collection("m", vectors_config=NAMED)
    rnd = random.Random(1)
    client.upsert(
        "m",
        points=[
            models.PointStruct(
                id=i, vector={"text": dense(rnd, 8)} if i % 2 else {"image": dense(rnd, 4)}
            )
            for i in range(50)
        ],
    )
    snapshot = client.create_snapshot("m")  # (a node snapshot first, then its file)
    assert snapshot is not None
    at_snapshot = client.retrieve("m", list(range(50)), with_vectors=True)
    client.upsert("m", points=[models.PointStruct(id=7, vector={"image": [1.0, 0.0, 0.0, 0.0]})])
    client.delete_vectors("s", vectors=["text-sparse"], points=[3])
    before = {n: client.scroll(n, limit=1000, with_vectors=True)[0] for n in ("s", "m", "c")}
    srv.kill()  # (SIGKILL: the snapshot, then the log after it)
    srv = server_factory(data_dir=tmp_path / "data", port=srv.port).start()
    for name, points in before.items():
        assert client.scroll(name, limit=1000, with_vectors=True)[0] == points, name
    query = client.query_points("m", query=dense(rnd, 8), using="text", limit=5).points
    assert len(query) == 5 and all(h.id % 2 for h in query)
    location = f"{srv.url}/qdrant/collections/m/snapshots/{snapshot.name}"
    assert client.recover_snapshot("copy", location=location, checksum=snapshot.checksum)
    assert client.retrieve("copy", list(range(50)), with_vectors=True) == at_snapshot
    assert set(client.get_collection("copy").config.params.vectors or {}) == set(NAMED)  # type: ignore[arg-type]
    client.close()


async def test_a_collection_an_earlier_version_made_keeps_its_named_own_vector(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    """Before collections without a vector of their own, a create of named vectors took
    the first as the collection's own under its name (LlamaIndex's "text-dense"). Such a
    collection, in a data directory, is served as it was: requests name its own vector
    so, every point has it, and it cannot be deleted."""
    options = StoreOptions(fsync=FsyncPolicy("always"), snapshot_interval_s=0)
    store = Store(tmp_path / "data", options)
    await store.open()
    stored = {"dimension": 4, "metric": "dot", "vector_name": "text-dense"}
    await store.create_collection("old", {**stored, "sparse_vectors": {"bm25": {}}})
    sv = SparseVector(np.array([1, 3], np.uint32), np.ones(2, np.float32))
    named: list[NamedRows] = [{"bm25": sv} if i % 2 else {} for i in range(20)]
    rows = [[float(i), 1.0, 0.0, 2.0] for i in range(20)]
    await store.upsert_if("old", list(range(20)), rows, [{"n": i} for i in range(20)], named=named)
    await store.close(take_snapshot=False)
    srv = server_factory(data_dir=tmp_path / "data").start()
    client = QdrantClient(url=srv.url, prefix="qdrant", check_compatibility=False, timeout=60)
    params = client.get_collection("old").config.params
    assert set(params.vectors or {}) == {"text-dense"}  # type: ignore[arg-type]
    point = client.retrieve("old", [3], with_vectors=True)[0]
    assert point.vector == {
        "text-dense": [3.0, 1.0, 0.0, 2.0],
        "bm25": models.SparseVector(indices=[1, 3], values=[1.0, 1.0]),
    }
    hits = client.query_points(
        "old", query=[1.0, 0.0, 0.0, 0.0], using="text-dense", limit=2
    ).points
    assert [h.id for h in hits] == [19, 18]
    client.upsert("old", points=[models.PointStruct(id=30, vector={"text-dense": [0.0] * 4})])
    assert client.retrieve("old", [30], with_vectors=["text-dense"])[0].vector == {
        "text-dense": [0.0] * 4
    }
    for call, needle in (
        (
            lambda: client.upsert(
                "old",
                points=[
                    models.PointStruct(
                        id=31, vector={"bm25": models.SparseVector(indices=[2], values=[1.0])}
                    )
                ],
            ),
            b"a point needs the collection's own dense vector",
        ),
        (
            lambda: client.delete_vector_name("old", "text-dense"),
            b"own dense vector cannot be deleted",
        ),
    ):
        with pytest.raises(UnexpectedResponse) as exc:
            call()
        assert exc.value.status_code == 400 and needle in exc.value.content, exc.value.content
    client.close()
