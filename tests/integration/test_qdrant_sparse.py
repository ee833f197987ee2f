"""Sparse vectors through the official qdrant-client against a real ``vectorizer serve``,
each answer checked against qdrant-client's local mode (Qdrant's semantics in Python)
given the same writes: searches (plain and IDF, filtered, by point, fused with the
dense vector), the shapes vectors are shown in, updates and deletes of sparse vectors,
a kill -9, and bad input refused with nothing changed."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

from tests import qdrant_checks as checks
from tests.qdrant_checks import refused_unchanged, same_hits
from tests.servers import ServerProcess

DIM = 4
N = 300
SPARSE = {
    "bm25": models.SparseVectorParams(modifier=models.Modifier.IDF),
    "splade": models.SparseVectorParams(index=models.SparseIndexParams(on_disk=True)),
}


def sparse(rnd: random.Random, vocabulary: int = 60) -> models.SparseVector:
    indices = rnd.sample(range(vocabulary), rnd.randint(1, 6))
    return models.SparseVector(indices=indices, values=[rnd.uniform(0.1, 3.0) for _ in indices])


def points(seed: int, n: int = N) -> list[models.PointStruct]:
    """Points with a dense vector and, some of them, one or both sparse vectors."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        vector: dict[str, Any] = {"": [rnd.gauss(0, 1) for _ in range(DIM)]}
        for name in SPARSE:
            if rnd.random() < 0.7:
                vector[name] = sparse(rnd)
        payload = {"group": i % 3, "i": i}
        out.append(models.PointStruct(id=i, vector=vector, payload=payload))
    return out


def make(client: QdrantClient, name: str = "s", seed: int = 1) -> None:
    client.create_collection(
        name,
        vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE),
        sparse_vectors_config=SPARSE,
    )
    pts = points(seed)
    client.upsert(name, points=pts[: N // 2])
    rest = pts[N // 2 :]  # the batch form: every point given every sparse vector
    batch_vectors: dict[str, list[Any]] = {"": [p.vector[""] for p in rest]}  # type: ignore[index]
    for n in SPARSE:
        batch_vectors[n] = [
            p.vector.get(n, models.SparseVector(indices=[], values=[]))  # type: ignore[union-attr]
            for p in rest
        ]
    client.upsert(
        name,
        points=models.Batch(
            ids=[p.id for p in rest], vectors=batch_vectors, payloads=[p.payload for p in rest]
        ),
    )


@pytest.fixture
def both(client: QdrantClient) -> tuple[QdrantClient, QdrantClient]:
    """The server and local mode, each holding the same collection "s"."""
    return checks.with_local(client, make)


def vectors_of(records: list[Any]) -> list[Any]:
    return checks.vectors_of(records, places=5)


def scored(hits: list[models.ScoredPoint]) -> list[tuple[Any, float]]:
    return [(h.id, round(h.score, 4)) for h in hits]


def test_the_collection_reports_its_sparse_vectors(client: QdrantClient) -> None:
    make(client)
    params = client.get_collection("s").config.params
    assert params.sparse_vectors is not None
    assert params.sparse_vectors["bm25"].modifier == models.Modifier.IDF
    assert params.sparse_vectors["splade"].modifier is None
    assert client.count("s").count == N


@pytest.mark.parametrize("using", ["bm25", "splade"])
def test_sparse_searches_match_local_mode(
    both: tuple[QdrantClient, QdrantClient], using: str
) -> None:
    rnd = random.Random(9)
    group = models.Filter(
        must=[models.FieldCondition(key="group", match=models.MatchValue(value=1))]
    )
    for _ in range(5):
        query = sparse(rnd, vocabulary=20)
        asks: list[dict[str, Any]] = [
            {"limit": 10},
            {"limit": 5, "offset": 3},
            {"limit": 50, "query_filter": group},
            {"limit": 300},  # every point sharing an index with the query, and no other
        ]
        for ask in asks:
            ours, theirs = (
                c.query_points("s", query=query, using=using, **ask).points for c in both
            )
            same_hits(ours, theirs)
        every = both[1].query_points("s", query=query, using=using, limit=300).points
        middle = len(every) // 2  # (between two scores: a float32 rounding decides nothing)
        cut = (every[middle].score + every[middle + 1].score) / 2
        ours, theirs = (
            c.query_points("s", query=query, using=using, score_threshold=cut, limit=300).points
            for c in both
        )
        same_hits(ours, theirs)


def test_a_sparse_query_by_point_and_the_legacy_search(
    both: tuple[QdrantClient, QdrantClient], server: ServerProcess
) -> None:
    ours, theirs = (c.query_points("s", query=7, using="splade", limit=10).points for c in both)
    same_hits(ours, theirs)
    assert 7 not in [h.id for h in ours]
    query = {"indices": [1, 2, 3], "values": [1.0, 0.5, 2.0]}
    legacy = httpx.post(
        f"{server.url}/qdrant/collections/s/points/search",
        json={"vector": {"name": "bm25", "vector": query}, "limit": 10},
    ).json()["result"]
    universal = (
        both[0].query_points("s", query=models.SparseVector(**query), using="bm25", limit=10).points
    )
    assert [(h["id"], h["score"]) for h in legacy] == [(h.id, h.score) for h in universal]
    unknown = httpx.post(
        f"{server.url}/qdrant/collections/s/points/search",
        json={"vector": {"name": "nope", "vector": query}, "limit": 10},
    )
    assert unknown.status_code == 400
    assert unknown.json()["status"]["error"].startswith("validation_error: vector.name: ")


def test_hybrid_fusion_of_dense_and_sparse_matches_local_mode(
    both: tuple[QdrantClient, QdrantClient],
) -> None:
    rnd = random.Random(4)
    for method in (models.Fusion.RRF, models.Fusion.DBSF):
        dense = [rnd.gauss(0, 1) for _ in range(DIM)]
        prefetch = [
            models.Prefetch(query=dense, limit=20),
            models.Prefetch(query=sparse(rnd, 20), using="bm25", limit=20),
            models.Prefetch(query=sparse(rnd, 20), using="splade", limit=20),
        ]
        ours, theirs = (
            c.query_points(
                "s", prefetch=prefetch, query=models.FusionQuery(fusion=method), limit=60
            ).points
            for c in both
        )
        # every point the prefetches found, fused alike (points of equal scores come in
        # either order: Qdrant leaves that open)
        assert {h.id: pytest.approx(h.score) for h in ours} == {h.id: h.score for h in theirs}
        assert [h.score for h in ours] == pytest.approx([h.score for h in theirs])
        # A sparse query ranking what the prefetches found
        ours, theirs = (
            c.query_points(
                "s", prefetch=prefetch[:1], query=sparse(random.Random(5), 20), using="bm25"
            ).points
            for c in both
        )
        same_hits(ours, theirs)


def test_has_vector_filters_by_sparse_vectors_as_local_mode_does(
    both: tuple[QdrantClient, QdrantClient],
) -> None:
    for c in both:  # (a point losing one after the filter was first used)
        c.delete_vectors("s", vectors=["bm25"], points=[0, 1, 2])
    has = models.HasVectorCondition
    filters = [
        models.Filter(must=[has(has_vector="bm25")]),
        models.Filter(must_not=[has(has_vector="splade")]),
        models.Filter(must=[has(has_vector="bm25"), has(has_vector="splade")]),
        models.Filter(should=[has(has_vector="bm25"), has(has_vector="splade")]),
        models.Filter(must=[has(has_vector="nope")]),  # a name it lacks: no point
        models.Filter(must=[has(has_vector="")]),
    ]
    for flt in filters:
        ours, theirs = (c.count("s", count_filter=flt).count for c in both)
        assert ours == theirs, flt
        ours_ids, theirs_ids = (
            sorted(p.id for p in c.scroll("s", scroll_filter=flt, limit=N)[0]) for c in both
        )
        assert ours_ids == theirs_ids
    query = sparse(random.Random(12), 20)
    flt = models.Filter(must=[has(has_vector="splade")])
    ours_hits, theirs_hits = (
        c.query_points("s", query=query, using="bm25", query_filter=flt, limit=N).points
        for c in both
    )
    same_hits(ours_hits, theirs_hits)
    for c in both:
        c.delete("s", points_selector=models.FilterSelector(filter=filters[1]))
    assert [p.id for p in both[0].scroll("s", limit=N)[0]] == [
        p.id for p in both[1].scroll("s", limit=N)[0]
    ]


def test_vectors_are_shown_as_qdrant_shows_them(
    both: tuple[QdrantClient, QdrantClient],
) -> None:
    ids = list(range(12))
    for with_vectors in (True, ["bm25"], [""], ["", "splade"], False):
        ours, theirs = (c.retrieve("s", ids, with_vectors=with_vectors) for c in both)
        assert vectors_of(ours) == vectors_of(theirs), with_vectors
        ours_page, theirs_page = (
            c.scroll("s", limit=12, with_vectors=with_vectors)[0] for c in both
        )
        assert vectors_of(ours_page) == vectors_of(theirs_page)
    query = models.SparseVector(indices=[1, 2], values=[1.0, 1.0])
    ours, theirs = (
        c.query_points("s", query=query, using="bm25", with_vectors=["bm25"]).points for c in both
    )
    assert vectors_of(ours) == vectors_of(theirs)


def test_updating_and_deleting_sparse_vectors_matches_local_mode(
    both: tuple[QdrantClient, QdrantClient],
) -> None:
    rnd = random.Random(2)
    updates = [
        models.PointVectors(id=1, vector={"bm25": sparse(rnd)}),  # sparse only: dense kept
        models.PointVectors(id=2, vector={"": [1.0, 2.0, 3.0, 4.0], "splade": sparse(rnd)}),
        models.PointVectors(id=3, vector=[0.5, 0.5, 0.5, 0.5]),  # dense only: sparse kept
    ]
    for c in both:
        c.update_vectors("s", points=updates)
        c.delete_vectors("s", vectors=["splade"], points=[4, 5])
        group_2 = models.FieldCondition(key="group", match=models.MatchValue(value=2))
        c.delete_vectors("s", vectors=["bm25"], points=models.Filter(must=[group_2]))
    ours, theirs = (c.retrieve("s", list(range(20)), with_vectors=True) for c in both)
    assert vectors_of(ours) == vectors_of(theirs)
    query = sparse(random.Random(8), 20)
    for using in SPARSE:
        ours_hits, theirs_hits = (
            c.query_points("s", query=query, using=using, limit=300).points for c in both
        )
        same_hits(ours_hits, theirs_hits)


def test_acknowledged_sparse_writes_survive_kill_9(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    srv = server_factory(data_dir=tmp_path / "data").start()
    client = QdrantClient(url=srv.url, prefix="qdrant", check_compatibility=False)
    make(client)
    client.update_vectors(
        "s", points=[models.PointVectors(id=0, vector={"bm25": sparse(random.Random(3))})]
    )
    client.delete_vectors("s", vectors=["splade"], points=[1])
    named(client)  # (and a collection whose dense vector has a name)
    before = client.retrieve("s", list(range(N)), with_vectors=True)
    before_named = client.retrieve("n", list(range(100)), with_vectors=True)
    query = sparse(random.Random(6), 20)
    hits = client.query_points("s", query=query, using="bm25", limit=50).points
    srv.kill()  # (SIGKILL)
    srv = server_factory(data_dir=tmp_path / "data", port=srv.port).start()
    after = client.retrieve("s", list(range(N)), with_vectors=True)
    assert [r.vector for r in after] == [r.vector for r in before]
    assert scored(client.query_points("s", query=query, using="bm25", limit=50).points) == scored(
        hits
    )
    assert client.retrieve("n", list(range(100)), with_vectors=True) == before_named
    assert isinstance(client.get_collection("n").config.params.vectors, dict)
    client.close()


def upserting(vector: dict[str, Any]) -> Callable[[QdrantClient], Any]:
    """An upsert of one point with ``vector``."""
    return lambda c: c.upsert("s", points=[models.PointStruct(id=1, vector=vector)])


BAD: list[tuple[Callable[[QdrantClient], Any], bytes]] = [
    (
        lambda c: c.query_points("s", query=models.SparseVector(indices=[1], values=[1.0])),
        b"using: a sparse query needs using",
    ),
    (
        lambda c: c.query_points(
            "s", query=models.SparseVector(indices=[1], values=[1.0]), using="nope"
        ),
        b"using: collection 's' has no sparse vector named 'nope'",
    ),
    (
        lambda c: c.query_points("s", query=[1.0, 0, 0, 0], using="bm25"),
        b"query: 'bm25' is a sparse vector: query it with {indices, values} or a point id",
    ),
    (
        lambda c: c.query_points(
            "s",
            query=models.RecommendQuery(recommend=models.RecommendInput(positive=[1])),
            using="bm25",
        ),
        b"using: recommend queries search dense vectors, and 'bm25' is a sparse vector",
    ),
    (
        upserting({"bm25": models.SparseVector(indices=[1], values=[1.0])}),
        b"points[0]: a point needs the collection's own dense vector",
    ),
    (
        upserting({"": [1.0] * DIM, "bm25": models.SparseVector(indices=[3, 3], values=[1, 2])}),
        b"points[0].vector.bm25.indices: indices must be unique",
    ),
    (
        upserting({"": [1.0] * DIM, "other": models.SparseVector(indices=[3], values=[1.0])}),
        b"no sparse vector named 'other'",
    ),
    (lambda c: c.delete_vectors("s", vectors=[""], points=[1]), b"dense vector cannot be deleted"),
    (
        lambda c: c.delete_vectors("s", vectors=["nope"], points=[1]),
        b"vector[0]: collection 's' has no",
    ),
    (
        lambda c: c.update_vectors("s", points=[models.PointVectors(id=1, vector={})]),
        b"give at least one vector",
    ),
    (lambda c: c.retrieve("s", [1], with_vectors=["nope"]), b"with_vector: collection 's' has no"),
    (
        lambda c: c.update_collection(
            "s",
            sparse_vectors_config={
                "bm25": models.SparseVectorParams(modifier=models.Modifier.NONE)
            },
        ),
        b"sparse_vectors.bm25: the sparse vectors of an existing collection cannot",
    ),
    (
        lambda c: c.update_collection(
            "s", sparse_vectors_config={"new": models.SparseVectorParams()}
        ),
        b"sparse_vectors.new",
    ),
]


@pytest.mark.parametrize(("call", "needle"), BAD)
def test_bad_sparse_input_is_a_400_and_changes_nothing(
    client: QdrantClient, call: Callable[[QdrantClient], Any], needle: bytes
) -> None:
    make(client)
    refused_unchanged(client, call, needle, "s", list(range(N)))


def test_deleting_vectors_of_a_missing_point_is_a_404_and_deletes_none(
    client: QdrantClient,
) -> None:
    """(Qdrant deletes the others first; here a request is refused whole.)"""
    make(client)
    before = client.retrieve("s", list(range(N)), with_vectors=True)
    with pytest.raises(UnexpectedResponse) as exc:
        client.delete_vectors("s", vectors=["bm25"], points=[0, 1, 999])
    assert exc.value.status_code == 404 and b"999" in exc.value.content
    assert client.retrieve("s", list(range(N)), with_vectors=True) == before


def test_a_collection_with_a_bad_sparse_config_is_not_created(client: QdrantClient) -> None:
    for config, needle in (
        ({"a/b": models.SparseVectorParams()}, b"sparse_vectors.a/b"),
        ({"": models.SparseVectorParams()}, b"sparse_vectors."),
    ):
        with pytest.raises(UnexpectedResponse) as exc:
            client.create_collection(
                "bad",
                vectors_config=models.VectorParams(size=DIM, distance="Cosine"),
                sparse_vectors_config=config,
            )
        assert exc.value.status_code == 400 and needle in exc.value.content
        assert not client.collection_exists("bad")


# ---- a dense vector with a name (LlamaIndex's and Haystack's "text-dense") ------------------


def named(client: QdrantClient) -> None:
    """Collection "n": the dense vector named "text-dense", beside "bm25"."""
    client.create_collection(
        "n",
        vectors_config={"text-dense": models.VectorParams(size=DIM, distance="Dot")},
        sparse_vectors_config={"bm25": models.SparseVectorParams(modifier=models.Modifier.IDF)},
    )
    pts = points(5, 100)
    for p in pts:
        vector = p.vector
        assert isinstance(vector, dict)
        vector["text-dense"] = vector.pop("")
        vector.pop("splade", None)
    client.upsert("n", points=pts[:50])
    rest = pts[50:]
    client.upsert(
        "n",
        points=models.Batch(
            ids=[p.id for p in rest],
            vectors={
                "text-dense": [p.vector["text-dense"] for p in rest],  # type: ignore[index]
                "bm25": [
                    p.vector.get("bm25", models.SparseVector(indices=[], values=[]))  # type: ignore[union-attr]
                    for p in rest
                ],
            },
            payloads=[p.payload for p in rest],
        ),
    )


def test_a_named_dense_vector_works_as_in_local_mode(client: QdrantClient) -> None:
    local = QdrantClient(":memory:")
    both = (client, local)
    for c in both:
        named(c)
    config = client.get_collection("n").config.params
    assert isinstance(config.vectors, dict) and config.vectors["text-dense"].size == DIM
    rnd = random.Random(21)
    dense = [rnd.gauss(0, 1) for _ in range(DIM)]
    ours, theirs = (
        c.query_points("n", query=dense, using="text-dense", limit=10).points for c in both
    )
    same_hits(ours, theirs)
    has = models.Filter(must=[models.HasVectorCondition(has_vector="text-dense")])
    assert client.count("n", count_filter=has).count == local.count("n", count_filter=has).count
    prefetch = [
        models.Prefetch(query=dense, using="text-dense", limit=20, filter=has),
        models.Prefetch(query=sparse(rnd, 20), using="bm25", limit=20),
    ]
    ours, theirs = (
        c.query_points(
            "n", prefetch=prefetch, query=models.FusionQuery(fusion="dbsf"), limit=40
        ).points
        for c in both
    )
    assert {h.id: pytest.approx(h.score) for h in ours} == {h.id: h.score for h in theirs}
    updates = [
        models.PointVectors(id=1, vector={"text-dense": [1.0, 2.0, 3.0, 4.0]}),
        models.PointVectors(id=2, vector={"bm25": sparse(rnd)}),
    ]
    for c in both:
        c.update_vectors("n", points=updates)
        c.delete_vectors("n", vectors=["bm25"], points=[3])
    for with_vectors in (True, ["text-dense"], ["bm25"], ["text-dense", "bm25"]):
        ours_r, theirs_r = (
            c.retrieve("n", list(range(8)), with_vectors=with_vectors) for c in both
        )
        assert vectors_of(ours_r) == vectors_of(theirs_r), with_vectors
    ours, theirs = (
        c.query_points(
            "n",
            query=models.RecommendQuery(recommend=models.RecommendInput(positive=[1, 2])),
            using="text-dense",
            limit=5,
        ).points
        for c in both
    )
    same_hits(ours, theirs)
    for c in both:  # (a named dense vector is optional: it may go)
        c.delete_vectors("n", vectors=["text-dense"], points=[1])
    ours_r, theirs_r = (c.retrieve("n", [1, 2], with_vectors=True) for c in both)
    assert vectors_of(ours_r) == vectors_of(theirs_r)
    client.update_collection(
        "n", vectors_config={"text-dense": models.VectorParamsDiff(on_disk=True)}
    )
    with pytest.raises(UnexpectedResponse) as exc:  # a sparse vector of the same name
        client.create_collection(
            "two",
            vectors_config={"a": models.VectorParams(size=DIM, distance="Dot")},
            sparse_vectors_config={"a": models.SparseVectorParams()},
        )
    assert exc.value.status_code == 400 and b"sparse_vectors.a" in exc.value.content
    local.close()
