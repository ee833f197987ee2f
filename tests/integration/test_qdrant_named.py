"""Several dense vectors per collection (Qdrant's named vectors) through the official
qdrant-client against a real ``vectorizer serve``, each answer checked against
qdrant-client's local mode given the same writes: searches of each vector (graph and
exact, filtered, legacy and universal, by point, recommend and discover, fused), the
shapes vectors are shown in, updates and deletes of one vector, snapshots, a kill -9,
and bad input refused with nothing changed."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

from tests import qdrant_checks as checks
from tests.servers import ServerProcess

N = 2600  # "text" is on ~2,100 of them: past the exact-search threshold, so its graph
VECTORS = {
    "image": models.VectorParams(size=4, distance=models.Distance.DOT),
    "text": models.VectorParams(size=8, distance=models.Distance.COSINE),
    "tiny": models.VectorParams(
        size=3, distance=models.Distance.EUCLID, hnsw_config=models.HnswConfigDiff(m=0)
    ),
}
SPARSE = {"bm25": models.SparseVectorParams()}


def vec(rnd: random.Random, name: str) -> list[float]:
    return [round(rnd.gauss(0, 1), 4) for _ in range(VECTORS[name].size)]


def point_vectors(rnd: random.Random) -> dict[str, Any]:
    """Every point has "image" (the collection's first vector); most have "text", some
    "tiny" and a sparse "bm25"."""
    vector: dict[str, Any] = {"image": vec(rnd, "image")}
    if rnd.random() < 0.8:
        vector["text"] = vec(rnd, "text")
    if rnd.random() < 0.5:
        vector["tiny"] = vec(rnd, "tiny")
    if rnd.random() < 0.3:
        indices = rnd.sample(range(30), 3)
        vector["bm25"] = models.SparseVector(indices=indices, values=[1.0, 0.5, 0.25])
    return vector


def make(client: QdrantClient, name: str = "m", seed: int = 1) -> None:
    client.create_collection(name, vectors_config=VECTORS, sparse_vectors_config=SPARSE)
    rnd = random.Random(seed)
    pts = [
        models.PointStruct(id=i, vector=point_vectors(rnd), payload={"group": i % 4})
        for i in range(N)
    ]
    half = N // 2
    for start in range(0, half, 500):
        client.upsert(name, points=pts[start : min(start + 500, half)])
    # the batch form: a column per vector (qdrant-client's Batch has no nulls in them, so
    # it takes the points that have every dense vector)
    full = [p for p in pts[half:] if set(VECTORS) <= set(p.vector)]  # type: ignore[arg-type]
    client.upsert(
        name,
        points=models.Batch(
            ids=[p.id for p in full],
            vectors={n: [p.vector[n] for p in full] for n in VECTORS},  # type: ignore[index]
            payloads=[p.payload for p in full],
        ),
    )
    given = {p.id for p in full}
    client.upsert(name, points=[p for p in pts[half:] if p.id not in given or "bm25" in p.vector])  # type: ignore[operator]


@pytest.fixture
def both(client: QdrantClient) -> tuple[QdrantClient, QdrantClient]:
    """The server and local mode, each holding the same collection "m"."""
    return checks.with_local(client, make)


def same_hits(ours: list[models.ScoredPoint], theirs: list[models.ScoredPoint]) -> None:
    checks.same_hits(ours, theirs, rel=1e-4, abs_tol=1e-5)


EXACT = models.SearchParams(exact=True)
GROUP = models.Filter(must=[models.FieldCondition(key="group", match=models.MatchValue(value=1))])


def test_the_collection_reports_its_vectors(client: QdrantClient) -> None:
    make(client)
    params = client.get_collection("m").config.params
    assert isinstance(params.vectors, dict)
    assert {n: (v.size, v.distance) for n, v in params.vectors.items()} == {
        n: (v.size, v.distance) for n, v in VECTORS.items()
    }
    assert params.sparse_vectors is not None and set(params.sparse_vectors) == {"bm25"}
    assert client.count("m").count == N


@pytest.mark.parametrize("using", list(VECTORS))
def test_searches_of_each_vector_match_local_mode(
    both: tuple[QdrantClient, QdrantClient], server: ServerProcess, using: str
) -> None:
    rnd = random.Random(7)
    for _ in range(5):
        query = vec(rnd, using)
        for kwargs in (
            {"search_params": EXACT},
            {"search_params": EXACT, "query_filter": GROUP},
            {"search_params": EXACT, "offset": 3},
        ):
            ours, theirs = (
                c.query_points("m", query=query, using=using, limit=10, **kwargs).points
                for c in both
            )
            same_hits(ours, theirs)
        # (the graph: the same neighbours, or nearly)
        ours, theirs = (
            c.query_points("m", query=query, using=using, limit=10).points for c in both
        )
        assert len({h.id for h in ours} & {h.id for h in theirs}) >= 9
        legacy = httpx.post(  # (the legacy search names its vector {name, vector})
            f"{server.url}/qdrant/collections/m/points/search",
            json={
                "vector": {"name": using, "vector": query},
                "limit": 10,
                "params": {"exact": True},
            },
        ).json()["result"]
        exact = both[1].query_points("m", query=query, using=using, limit=10).points
        assert [h["id"] for h in legacy] == [h.id for h in exact]
    exact = both[1].query_points("m", query=query, using=using, limit=6).points
    threshold = (exact[4].score + exact[5].score) / 2  # (between the 5th and the 6th)
    for c in both:
        kept = c.query_points(
            "m", query=query, using=using, limit=50, score_threshold=threshold, search_params=EXACT
        ).points
        assert len(kept) == 5, using


def test_a_search_sees_only_points_that_have_the_vector(
    both: tuple[QdrantClient, QdrantClient],
) -> None:
    client, local = both
    has_tiny = local.count(
        "m", count_filter=models.Filter(must=[models.HasVectorCondition(has_vector="tiny")])
    ).count
    hits = client.query_points("m", query=[0.0, 0.0, 0.0], using="tiny", limit=N).points
    assert len(hits) == has_tiny < N
    with_tiny = {r.id for r in local.scroll("m", limit=N, with_vectors=["tiny"])[0] if r.vector}
    assert {h.id for h in hits} == with_tiny


def test_queries_by_point_recommend_and_discover_match_local_mode(
    both: tuple[QdrantClient, QdrantClient], server: ServerProcess
) -> None:
    client, local = both
    text_ids = [r.id for r in local.scroll("m", limit=40, with_vectors=["text"])[0] if r.vector]
    a, b, c = text_ids[:3]
    queries: list[Any] = [
        a,
        models.RecommendQuery(recommend=models.RecommendInput(positive=[a, b], negative=[c])),
        models.RecommendQuery(
            recommend=models.RecommendInput(
                positive=[a], negative=[b], strategy=models.RecommendStrategy.BEST_SCORE
            )
        ),
        models.DiscoverQuery(
            discover=models.DiscoverInput(
                target=a, context=[models.ContextPair(positive=b, negative=c)]
            )
        ),
        models.ContextQuery(context=[models.ContextPair(positive=a, negative=b)]),
    ]
    # (the example points are never hits: pages after them too, with a filter or not)
    for query, offset, flt in itertools.product(queries, (0, 7), (None, GROUP)):
        ours, theirs = (
            x.query_points(
                "m",
                query=query,
                using="text",
                limit=10,
                offset=offset,
                query_filter=flt,
                search_params=EXACT,
            ).points
            for x in (client, local)
        )
        assert {a, b, c}.isdisjoint(h.id for h in ours)
        if isinstance(query, models.ContextQuery):  # (ties at the top: compare the scores)
            assert [h.score for h in ours] == pytest.approx([h.score for h in theirs], abs=1e-5)
        else:
            same_hits(ours, theirs)
    legacy = httpx.post(  # (the legacy recommendation names its vector at using)
        f"{server.url}/qdrant/collections/m/points/recommend",
        json={"positive": [a], "negative": [b], "using": "text", "limit": 5},
    ).json()["result"]
    average = models.RecommendQuery(recommend=models.RecommendInput(positive=[a], negative=[b]))
    theirs = local.query_points("m", query=average, using="text", limit=5).points
    assert [h["id"] for h in legacy] == [h.id for h in theirs]
    no_text = next(
        r.id for r in local.scroll("m", limit=50, with_vectors=["text"])[0] if not r.vector
    )
    with pytest.raises(UnexpectedResponse) as exc:
        client.query_points("m", query=no_text, using="text")
    assert exc.value.status_code == 400 and b"has no vector 'text'" in exc.value.content


def test_fusion_of_two_dense_vectors_and_a_sparse_one(
    both: tuple[QdrantClient, QdrantClient],
) -> None:
    rnd = random.Random(3)
    prefetch = [
        models.Prefetch(query=vec(rnd, "image"), using="image", limit=30, params=EXACT),
        models.Prefetch(query=vec(rnd, "text"), using="text", limit=30, params=EXACT),
        models.Prefetch(query=vec(rnd, "tiny"), using="tiny", limit=30),
        models.Prefetch(
            query=models.SparseVector(indices=[1, 2, 3], values=[1.0, 1.0, 1.0]),
            using="bm25",
            limit=30,
        ),
    ]
    # (DBSF over a Euclidean list maps its scores the other way round from Qdrant's, on
    # purpose: see engine.fusion; so it is held to local mode without "tiny")
    for fusion, lists in (
        (models.Fusion.RRF, prefetch),
        (models.Fusion.DBSF, [prefetch[i] for i in (0, 1, 3)]),
    ):
        ours, theirs = (
            c.query_points("m", prefetch=lists, query=models.FusionQuery(fusion=fusion), limit=15)
            for c in both
        )
        # (fused scores tie often over four lists: tied points may come in either order)
        scores = [h.score for h in theirs.points]
        assert [h.score for h in ours.points] == pytest.approx(scores, rel=1e-5), fusion
        above = {h.id for h in theirs.points if h.score > scores[-1] + 1e-6}
        assert above <= {h.id for h in ours.points}, fusion
    # a prefetch by one vector, ranked by another
    text = vec(rnd, "text")
    ours, theirs = (
        c.query_points(
            "m", prefetch=prefetch[:1], query=text, using="text", limit=10, search_params=EXACT
        ).points
        for c in both
    )
    same_hits(ours, theirs)


def test_vectors_are_shown_as_qdrant_shows_them(both: tuple[QdrantClient, QdrantClient]) -> None:
    ids = list(range(0, N, 97))
    for with_vectors in (True, ["text"], ["image", "bm25"], ["tiny", "text"]):
        ours, theirs = (c.retrieve("m", ids, with_vectors=with_vectors) for c in both)
        assert checks.vectors_of(ours) == checks.vectors_of(theirs), with_vectors
    query = vec(random.Random(1), "text")
    ours, theirs = (
        c.query_points("m", query=query, using="text", limit=5, with_vectors=["text"]).points
        for c in both
    )
    assert checks.vectors_of(ours) == checks.vectors_of(theirs)


def test_updating_and_deleting_one_vector_matches_local_mode(
    both: tuple[QdrantClient, QdrantClient],
) -> None:
    rnd = random.Random(11)
    new_text = [
        models.PointVectors(id=i, vector={"text": vec(rnd, "text")}) for i in range(0, 60, 3)
    ]
    new_image = [
        models.PointVectors(id=i, vector={"image": vec(rnd, "image")}) for i in range(1, 60, 3)
    ]
    # one point named thrice: its entries merge in order (Qdrant; was a 400 here)
    sparse = models.SparseVector(indices=[3], values=[1.0])
    merged = [
        models.PointVectors(id=61, vector={"image": vec(rnd, "image")}),
        models.PointVectors(id=61, vector={"text": vec(rnd, "text"), "bm25": sparse}),
        models.PointVectors(id=61, vector={"image": vec(rnd, "image")}),
    ]
    for c in both:
        c.update_vectors("m", points=new_text)
        c.update_vectors("m", points=new_image)  # (its other vectors stay)
        c.update_vectors("m", points=merged)
        c.delete_vectors("m", vectors=["tiny", "text"], points=list(range(2, 60, 3)))
        c.delete_vectors(
            "m", vectors=["text"], points=models.Filter(must=[models.HasIdCondition(has_id=[5, 8])])
        )
        c.upsert("m", points=[models.PointStruct(id=4, vector={"image": [1, 2, 3, 4]})])
    ours, theirs = (c.retrieve("m", list(range(70)), with_vectors=True) for c in both)
    assert checks.vectors_of(ours) == checks.vectors_of(theirs)
    for name in ("text", "tiny"):
        has = models.Filter(must=[models.HasVectorCondition(has_vector=name)])
        assert (
            both[0].count("m", count_filter=has).count == both[1].count("m", count_filter=has).count
        )
        query = vec(rnd, name)
        ours_hits, theirs_hits = (
            c.query_points("m", query=query, using=name, limit=20, search_params=EXACT).points
            for c in both
        )
        same_hits(ours_hits, theirs_hits)


def test_a_distance_matrix_of_a_named_vector(client: QdrantClient) -> None:
    make(client)
    pairs = client.search_matrix_pairs("m", sample=20, limit=2, using="tiny")
    assert len(pairs.pairs) == 40
    drawn = {p.a for p in pairs.pairs}
    records = client.retrieve("m", list(drawn), with_vectors=["tiny"])
    assert all(r.vector for r in records)  # only points that have the vector


def test_named_vectors_survive_kill_9_and_snapshots(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    srv = server_factory(data_dir=tmp_path / "data").start()
    client = QdrantClient(url=srv.url, prefix="qdrant", check_compatibility=False, timeout=60)
    make(client)
    client.update_vectors("m", points=[models.PointVectors(id=0, vector={"text": [1.0] * 8})])
    snapshot = client.create_snapshot("m")  # (the node's snapshot: named vectors' files)
    assert snapshot is not None
    ids = list(range(0, N, 7)) + [0, 1, N]
    at_snapshot = client.retrieve("m", ids, with_vectors=True)
    client.delete_vectors("m", vectors=["text"], points=[0])  # (after it: from the log)
    new = {"image": [1, 0, 0, 0], "tiny": [1, 2, 3]}
    client.upsert("m", points=[models.PointStruct(id=N, vector=new)])
    before = client.retrieve("m", ids, with_vectors=True)
    assert before != at_snapshot
    query = vec(random.Random(4), "text")
    hits = client.query_points("m", query=query, using="text", limit=20).points
    srv.kill()  # (SIGKILL)
    srv = server_factory(data_dir=tmp_path / "data", port=srv.port).start()
    assert client.retrieve("m", ids, with_vectors=True) == before
    again = client.query_points("m", query=query, using="text", limit=20).points
    assert [h.id for h in again] == [h.id for h in hits]
    # a collection recovered from the snapshot file holds what the collection held then
    location = f"{srv.url}/qdrant/collections/m/snapshots/{snapshot.name}"
    assert client.recover_snapshot("copy", location=location, checksum=snapshot.checksum)
    params = client.get_collection("copy").config.params
    assert isinstance(params.vectors, dict) and set(params.vectors) == set(VECTORS)
    assert client.retrieve("copy", ids, with_vectors=True) == at_snapshot
    again = client.query_points("copy", query=query, using="text", limit=20).points
    assert len(again) == 20
    client.close()


def upserting(vector: dict[str, Any]) -> Callable[[QdrantClient], Any]:
    return lambda c: c.upsert("m", points=[models.PointStruct(id=1, vector=vector)])


BAD: list[tuple[Callable[[QdrantClient], Any], bytes]] = [
    (
        upserting({"image": [1.0] * 4, "text": [1.0] * 3}),
        b"points[0].vector.text: expected a vector of dimension 8",
    ),
    (
        upserting([1.0] * 4),  # (named vectors only: a point names each of its vectors)
        b"points[0]: collection 'm' has no dense vector of its own (it has 'image', 'text'",
    ),
    (
        upserting({"": [1.0] * 4, "image": [1.0] * 4}),
        b"points[0]: collection 'm' has no dense vector of its own",
    ),
    (
        upserting({"image": [1.0] * 4, "text": models.SparseVector(indices=[1], values=[1.0])}),
        b"'text' is a dense vector: give a list of numbers",
    ),
    (upserting({"image": [1.0] * 4, "bm25": [1.0, 2.0]}), b"'bm25' is a sparse vector"),
    (
        upserting({"image": [1.0] * 4, "other": [1.0]}),
        b"collection 'm' has no dense vector named 'other'",
    ),
    (
        upserting({"image": [1.0] * 4, "text": [[1.0] * 8]}),
        b"'text' is a dense vector, not a multivector",
    ),
    (
        lambda c: c.query_points("m", query=[1.0] * 8, using="nope"),
        b"using: collection 'm' has no dense vector named 'nope'",
    ),
    (
        lambda c: c.query_points("m", query=[1.0] * 4, using="text"),
        b"expected a vector of dimension 8",
    ),
    (
        lambda c: c.query_points(
            "m", query=models.SparseVector(indices=[1], values=[1.0]), using="text"
        ),
        b"'text' is a dense vector",
    ),
    (
        lambda c: c.query_points("m", query=[1.0] * 4),  # (no "using": the default vector)
        b"using: collection 'm' has no dense vector of its own",
    ),
    (lambda c: c.retrieve("m", [1], with_vectors=["nope"]), b"with_vector: collection 'm' has no"),
    (
        lambda c: c.update_collection(
            "m",
            vectors_config={
                "text": models.VectorParamsDiff(hnsw_config=models.HnswConfigDiff(m=4))
            },
        ),
        b"m of an existing collection cannot change",
    ),
    (
        lambda c: c.update_collection("m", vectors_config={"new": models.VectorParamsDiff()}),
        b"no dense vector named 'new'",
    ),
]


@pytest.mark.parametrize(("call", "needle"), BAD)
def test_bad_input_is_a_400_and_changes_nothing(
    client: QdrantClient, call: Callable[[QdrantClient], Any], needle: bytes
) -> None:
    client.create_collection("m", vectors_config=VECTORS, sparse_vectors_config=SPARSE)
    rnd = random.Random(2)
    client.upsert(
        "m", points=[models.PointStruct(id=i, vector=point_vectors(rnd)) for i in range(50)]
    )
    checks.refused_unchanged(client, call, needle, "m", list(range(50)))


def test_a_collection_with_bad_vectors_is_not_created(client: QdrantClient) -> None:
    for config, needle in (
        (
            {
                "a": models.VectorParams(size=2, distance="Dot"),
                "b/c": models.VectorParams(size=2, distance="Dot"),
            },
            b"vectors",
        ),
        (
            {
                "a": models.VectorParams(size=2, distance="Dot"),
                "b": models.VectorParams(size=0, distance="Dot"),
            },
            b"vectors.b.size",
        ),
        (
            {
                "a": models.VectorParams(size=2, distance="Dot"),
                "b": models.VectorParams(size=2, distance="Manhattan"),
            },
            b"vectors.b.distance",
        ),
    ):
        with pytest.raises(UnexpectedResponse) as exc:
            client.create_collection("bad", vectors_config=config)
        assert exc.value.status_code == 400 and needle in exc.value.content, exc.value.content
        assert not client.collection_exists("bad")
    with pytest.raises(UnexpectedResponse) as exc:
        client.create_collection(
            "bad",
            vectors_config={"a": models.VectorParams(size=2, distance="Dot")},
            sparse_vectors_config={"a": models.SparseVectorParams()},
        )
    assert exc.value.status_code == 400 and not client.collection_exists("bad")


def test_vectors_added_to_and_removed_from_a_collection_as_in_local_mode(
    both: tuple[QdrantClient, QdrantClient],
) -> None:
    client, local = both
    has_extra = models.Filter(must=[models.HasVectorCondition(has_vector="extra")])
    assert client.count("m", count_filter=has_extra).count == 0  # (a filter bound before)
    rnd = random.Random(5)
    extra = models.DenseVectorNameConfig(
        dense=models.DenseVectorConfig(size=3, distance=models.Distance.EUCLID)
    )
    keywords = models.SparseVectorNameConfig(
        sparse=models.SparseVectorConfig(modifier=models.Modifier.IDF)
    )
    updates = [
        models.PointVectors(
            id=i,
            vector={
                "extra": [rnd.randrange(-64, 64) / 8 for _ in range(3)],
                "kw": models.SparseVector(indices=[i % 7, 10 + i % 3], values=[1.0, 2.0]),
            },
        )
        for i in range(0, 400, 3)
    ]
    for c in both:
        c.create_vector_name("m", "extra", extra)
        c.create_vector_name("m", "kw", keywords)
        c.update_vectors("m", points=updates)
        c.delete_vector_name("m", "text")
        c.delete_vector_name("m", "nothing")  # (none: nothing to do, as in Qdrant)
    ours, theirs = (c.get_collection("m").config.params for c in both)
    assert isinstance(ours.vectors, dict) and isinstance(theirs.vectors, dict)
    assert set(ours.vectors) == set(theirs.vectors) == {"image", "tiny", "extra"}
    assert set(ours.sparse_vectors or {}) == set(theirs.sparse_vectors or {}) == {"bm25", "kw"}
    assert client.count("m", count_filter=has_extra).count == len(updates)
    ids = list(range(0, 60))
    ours_r, theirs_r = (c.retrieve("m", ids, with_vectors=True) for c in both)
    assert checks.vectors_of(ours_r) == checks.vectors_of(theirs_r)
    for using, query in (
        ("extra", [0.5, -1.0, 2.0]),
        ("kw", models.SparseVector(indices=[3, 11], values=[1.0, 1.0])),
    ):
        ours_h, theirs_h = (
            c.query_points("m", query=query, using=using, limit=15).points for c in both
        )
        if using == "kw":  # (IDF ties: the same scores, tied points in either order)
            assert [h.score for h in ours_h] == pytest.approx([h.score for h in theirs_h])
        else:
            same_hits(ours_h, theirs_h)
    with pytest.raises(UnexpectedResponse) as exc:
        client.query_points("m", query=[1.0] * 8, using="text")
    assert exc.value.status_code == 400 and b"no dense vector named 'text'" in exc.value.content
    for c in both:  # the same vector again: nothing to do, as in Qdrant
        c.create_vector_name("m", "extra", extra)
        c.create_vector_name("m", "kw", keywords)
    assert client.count("m", count_filter=has_extra).count == len(updates)
    other = models.DenseVectorNameConfig(
        dense=models.DenseVectorConfig(size=3, distance=models.Distance.DOT)
    )
    for call, needle in (
        (lambda: client.create_vector_name("m", "extra", other), b"another configuration"),
        (lambda: client.create_vector_name("m", "image", extra), b"already has a vector"),
        (lambda: client.create_vector_name("m", "kw", extra), b"already has a vector"),
    ):
        with pytest.raises(UnexpectedResponse) as exc:
            call()
        assert exc.value.status_code == 400 and needle in exc.value.content, exc.value.content
    # any named vector may go, the first one too (every point had it)
    for c in both:
        c.delete_vector_name("m", "image")
    ours, theirs = (c.get_collection("m").config.params for c in both)
    assert set(ours.vectors or {}) == set(theirs.vectors or {}) == {"tiny", "extra"}  # type: ignore[arg-type]
    ours_r, theirs_r = (c.retrieve("m", ids, with_vectors=True) for c in both)
    assert checks.vectors_of(ours_r) == checks.vectors_of(theirs_r)
    ours_h, theirs_h = (
        c.query_points("m", query=[0.5, -1.0, 2.0], using="extra", limit=15).points for c in both
    )
    same_hits(ours_h, theirs_h)


def test_added_vectors_survive_kill_9_and_snapshots(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    srv = server_factory(data_dir=tmp_path / "data").start()
    client = QdrantClient(url=srv.url, prefix="qdrant", check_compatibility=False, timeout=60)
    client.create_collection("a", vectors_config=models.VectorParams(size=2, distance="Dot"))
    client.upsert("a", points=[models.PointStruct(id=i, vector=[1.0, i]) for i in range(20)])
    config = models.DenseVectorNameConfig(dense=models.DenseVectorConfig(size=2, distance="Dot"))
    client.create_vector_name("a", "x", config)
    client.update_vectors("a", points=[models.PointVectors(id=1, vector={"x": [2.0, 3.0]})])
    client.create_snapshot("a")  # (a node snapshot holds the added vector's files)
    client.create_vector_name("a", "y", config)
    client.update_vectors("a", points=[models.PointVectors(id=2, vector={"y": [4.0, 5.0]})])
    client.delete_vector_name("a", "x")
    client.create_vector_name("a", "x", config)  # (again: empty)
    before = client.retrieve("a", list(range(20)), with_vectors=True)
    assert before[2].vector == {"": [1.0, 2.0], "y": [4.0, 5.0]}
    assert before[1].vector == [1.0, 1.0]
    srv.kill()  # (SIGKILL)
    srv = server_factory(data_dir=tmp_path / "data", port=srv.port).start()
    assert client.retrieve("a", list(range(20)), with_vectors=True) == before
    params = client.get_collection("a").config.params
    assert isinstance(params.vectors, dict) and set(params.vectors) == {"", "y", "x"}
    client.close()


def test_an_added_vector_takes_the_collections_index(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    """A vector added to an exact collection (HNSW ``m = 0``) is searched exactly too, as
    in Qdrant (it had a graph of its own); in a collection with a graph it gets one with
    the collection's parameters."""
    srv = server_factory(data_dir=tmp_path / "data").start()
    client = QdrantClient(url=srv.url, prefix="qdrant", check_compatibility=False, timeout=60)
    config = models.DenseVectorNameConfig(dense=models.DenseVectorConfig(size=2, distance="Dot"))
    for name, m in (("exact", 0), ("graph", 8)):
        client.create_collection(
            name,
            vectors_config=models.VectorParams(size=2, distance="Dot"),
            hnsw_config=models.HnswConfigDiff(m=m),
        )
        client.create_vector_name(name, "x", config)
        client.create_vector_name(name, "x", config)  # (the same again: nothing to do)
    named = {
        name: srv.request("GET", f"/collections/{name}")[1]["collection"]["named_vectors"]["x"]
        for name in ("exact", "graph")
    }
    assert named["exact"]["index"] == "exact"
    assert named["graph"]["index"] == "hnsw" and named["graph"]["hnsw"]["m"] == 8
    client.upsert(
        "exact", points=[models.PointStruct(id=1, vector={"": [1.0, 0.0], "x": [0.0, 2.0]})]
    )
    hits = client.query_points("exact", query=[0.0, 1.0], using="x", limit=1).points
    assert [(h.id, h.score) for h in hits] == [(1, 2.0)]
    client.close()


async def test_concurrent_searches_answered_together_each_get_their_own_answer(
    client: QdrantClient, server: ServerProcess
) -> None:
    """Plain searches in flight together share one graph pass (``SearchBatcher``), as do
    those of one batch request; each still gets the answer it gets alone, whatever
    vector, limit, offset, threshold, payload selector or vectors it asks for (the
    legacy search too)."""
    make(client)
    rnd = random.Random(11)
    asks: list[tuple[str, dict[str, Any]]] = []
    for i in range(48):
        using = ("image", "text", "tiny")[i % 3]
        body: dict[str, Any] = {
            "query": vec(rnd, using),
            "using": using,
            "limit": (3, 10)[i % 2],
            "offset": (0, 2)[i % 5 == 0],
            "with_payload": (True, False, ["group"])[i % 3 - 1],
            "with_vector": (False, True, ["text"])[i % 4 % 3],
        }
        if i % 7 == 0:
            body["score_threshold"] = 0.0
        if i % 11 == 0:
            body["filter"] = {"must": [{"key": "group", "match": {"value": 1}}]}
        asks.append(("query", body))
        if i % 6 == 0:
            legacy = {"vector": {"name": using, "vector": vec(rnd, using)}, "limit": 5}
            asks.append(("search", legacy))

    async def ask(http: httpx.AsyncClient, route: str, body: dict[str, Any]) -> Any:
        answer = await http.post(f"{server.url}/qdrant/collections/m/points/{route}", json=body)
        assert answer.status_code == 200, answer.text
        return answer.json()["result"]

    limits = httpx.Limits(max_connections=len(asks))
    async with httpx.AsyncClient(limits=limits, timeout=60) as http:
        together = await asyncio.gather(*(ask(http, route, body) for route, body in asks))
        alone = [await ask(http, route, body) for route, body in asks]
        # a batch request's plain searches are answered in one pass too
        for route in ("query", "search"):
            batch = [body for r, body in asks if r == route]
            answers = await ask(http, f"{route}/batch", {"searches": batch})
            assert answers == [a for (r, _), a in zip(asks, alone, strict=True) if r == route]
    assert together == alone
    for (route, body), answer in zip(asks, together, strict=True):
        hits = answer["points"] if route == "query" else answer
        if "score_threshold" not in body:  # (each vector is on hundreds of points)
            assert len(hits) == body["limit"]
