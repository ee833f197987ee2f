"""Multivectors (Qdrant's ``multivector_config`` with the ``max_sim`` comparator, as
ColBERT's late interaction) through the official qdrant-client against a real
``vectorizer serve``, each answer checked against qdrant-client's local mode given the
same writes: MaxSim searches (filtered, paged, by point, reranking a prefetch), the
shapes they are shown in, updates and deletes, a kill -9 and a snapshot, and bad input
refused with nothing changed."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import QdrantClient, models

from tests import qdrant_checks as checks
from tests.servers import ServerProcess

N = 500
MAX_SIM = models.MultiVectorConfig(comparator=models.MultiVectorComparator.MAX_SIM)
VECTORS = {
    "dense": models.VectorParams(size=6, distance=models.Distance.COSINE),
    "colbert": models.VectorParams(
        size=4,
        distance=models.Distance.COSINE,
        multivector_config=MAX_SIM,
        hnsw_config=models.HnswConfigDiff(m=0),
    ),
    "late": models.VectorParams(size=3, distance=models.Distance.DOT, multivector_config=MAX_SIM),
}


def rows(rnd: random.Random, n: int, dim: int) -> list[list[float]]:
    return [[rnd.randrange(-64, 64) / 16 or 0.25 for _ in range(dim)] for _ in range(n)]


def make(client: QdrantClient, seed: int = 1) -> None:
    client.create_collection("c", vectors_config=VECTORS)
    rnd = random.Random(seed)
    points = []
    for i in range(N):
        vector: dict[str, Any] = {"dense": rows(rnd, 1, 6)[0]}
        if i % 5:
            vector["colbert"] = rows(rnd, rnd.randint(1, 6), 4)
        if i % 3:
            vector["late"] = rows(rnd, rnd.randint(1, 4), 3)
        points.append(models.PointStruct(id=i, vector=vector, payload={"g": i % 4}))
    client.upsert("c", points=points)


@pytest.fixture
def both(client: QdrantClient) -> tuple[QdrantClient, QdrantClient]:
    return checks.with_local(client, make)


def same_hits(ours: list[models.ScoredPoint], theirs: list[models.ScoredPoint]) -> None:
    checks.same_hits(ours, theirs, rel=1e-4, abs_tol=1e-4)


GROUP = models.Filter(must=[models.FieldCondition(key="g", match=models.MatchValue(value=2))])


def test_the_collection_reports_its_multivectors(client: QdrantClient) -> None:
    make(client)
    params = client.get_collection("c").config.params
    assert isinstance(params.vectors, dict)
    assert params.vectors["colbert"].multivector_config == MAX_SIM
    assert params.vectors["dense"].multivector_config is None


@pytest.mark.parametrize("using", ["colbert", "late"])
def test_max_sim_searches_match_local_mode(
    both: tuple[QdrantClient, QdrantClient], using: str
) -> None:
    rnd = random.Random(8)
    dim = VECTORS[using].size
    for n in (1, 3, 8):
        query = rows(rnd, n, dim)
        for kwargs in ({}, {"query_filter": GROUP}, {"offset": 5}):
            ours, theirs = (
                c.query_points("c", query=query, using=using, limit=10, **kwargs).points
                for c in both
            )
            same_hits(ours, theirs)
    best = both[1].query_points("c", query=query, using=using, limit=5).points
    cut = (best[3].score + best[4].score) / 2
    for c in both:
        kept = c.query_points("c", query=query, using=using, limit=50, score_threshold=cut)
        assert len(kept.points) == 4
    for pid in (1, 7):  # by a point's multivector (never a hit itself)
        ours, theirs = (c.query_points("c", query=pid, using=using, limit=10).points for c in both)
        same_hits(ours, theirs)
        assert pid not in {h.id for h in ours}


def test_a_prefetch_reranked_by_a_multivector_matches_local_mode(
    both: tuple[QdrantClient, QdrantClient],
) -> None:
    """The ColBERT recipe: dense candidates, reranked by MaxSim."""
    rnd = random.Random(4)
    for _ in range(5):
        prefetch = models.Prefetch(query=rows(rnd, 1, 6)[0], using="dense", limit=40)
        query = rows(rnd, 4, 4)
        ours, theirs = (
            c.query_points("c", prefetch=prefetch, query=query, using="colbert", limit=10).points
            for c in both
        )
        same_hits(ours, theirs)


def test_multivectors_are_shown_updated_and_deleted_as_in_local_mode(
    both: tuple[QdrantClient, QdrantClient],
) -> None:
    rnd = random.Random(2)
    updates = [
        models.PointVectors(id=i, vector={"colbert": rows(rnd, 2, 4)}) for i in range(0, 40, 4)
    ]
    for c in both:
        c.update_vectors("c", points=updates)
        c.delete_vectors("c", vectors=["late"], points=list(range(1, 40, 4)))
        c.update_vectors("c", points=[models.PointVectors(id=2, vector={"dense": [1.0] * 6})])
    for with_vectors in (True, ["colbert"], ["late", "dense"]):
        ours, theirs = (c.retrieve("c", list(range(40)), with_vectors=with_vectors) for c in both)
        assert checks.vectors_of(ours) == checks.vectors_of(theirs)
    has = models.Filter(must=[models.HasVectorCondition(has_vector="late")])
    assert both[0].count("c", count_filter=has).count == both[1].count("c", count_filter=has).count
    query = rows(rnd, 3, 4)
    ours_h, theirs_h = (
        c.query_points("c", query=query, using="colbert", limit=20).points for c in both
    )
    same_hits(ours_h, theirs_h)


def test_multivectors_survive_kill_9_and_snapshots(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    srv = server_factory(data_dir=tmp_path / "data").start()
    client = QdrantClient(url=srv.url, prefix="qdrant", check_compatibility=False, timeout=60)
    make(client)
    snapshot = client.create_snapshot("c")
    assert snapshot is not None
    ids = list(range(N))
    at_snapshot = client.retrieve("c", ids, with_vectors=True)
    rnd = random.Random(3)
    client.update_vectors(
        "c", points=[models.PointVectors(id=0, vector={"colbert": rows(rnd, 3, 4)})]
    )
    before = client.retrieve("c", ids, with_vectors=True)
    query = rows(rnd, 2, 4)
    hits = client.query_points("c", query=query, using="colbert", limit=10).points
    srv.kill()  # (SIGKILL)
    srv = server_factory(data_dir=tmp_path / "data", port=srv.port).start()
    assert client.retrieve("c", ids, with_vectors=True) == before
    again = client.query_points("c", query=query, using="colbert", limit=10).points
    assert [(h.id, h.score) for h in again] == [(h.id, h.score) for h in hits]
    location = f"{srv.url}/qdrant/collections/c/snapshots/{snapshot.name}"
    assert client.recover_snapshot("copy", location=location, checksum=snapshot.checksum)
    assert client.retrieve("copy", ids, with_vectors=True) == at_snapshot
    client.close()


def upserting(vector: dict[str, Any]) -> Callable[[QdrantClient], Any]:
    return lambda c: c.upsert("c", points=[models.PointStruct(id=1, vector=vector)])


DENSE = [1.0] * 6
BAD: list[tuple[Callable[[QdrantClient], Any], bytes]] = [
    (upserting({"dense": DENSE, "colbert": [1.0] * 4}), b"a multivector is a list of vectors"),
    (upserting({"dense": DENSE, "colbert": [[1.0] * 3]}), b"points[0].vector.colbert"),
    (
        lambda c: c.query_points("c", query=[1.0] * 4, using="colbert"),
        b"'colbert' is a multivector: query it with a list of vectors",
    ),
    (
        lambda c: c.query_points("c", query=[[1.0] * 6], using="dense"),
        b"'dense' is a dense vector",
    ),
    (lambda c: c.query_points("c", query=[[1.0] * 3], using="colbert"), b"dimension 4"),
    (
        lambda c: c.query_points(
            "c",
            query=models.RecommendQuery(recommend=models.RecommendInput(positive=[1])),
            using="colbert",
        ),
        b"recommend queries search dense vectors, and 'colbert' is a multivector",
    ),
    (
        lambda c: c.query_points("c", query=0, using="colbert"),  # (0 has none)
        b"point 0 has no vector 'colbert'",
    ),
]


@pytest.mark.parametrize(("call", "needle"), BAD)
def test_bad_multivector_input_is_a_400_and_changes_nothing(
    client: QdrantClient, call: Callable[[QdrantClient], Any], needle: bytes
) -> None:
    make(client)
    checks.refused_unchanged(client, call, needle, "c", list(range(50)))


def test_a_multivector_added_to_a_collection(client: QdrantClient) -> None:
    client.create_collection("a", vectors_config=models.VectorParams(size=2, distance="Dot"))
    client.upsert("a", points=[models.PointStruct(id=i, vector=[1.0, i]) for i in range(5)])
    config = models.DenseVectorNameConfig(
        dense=models.DenseVectorConfig(size=2, distance="Dot", multivector_config=MAX_SIM)
    )
    client.create_vector_name("a", "m", config)
    client.update_vectors(
        "a", points=[models.PointVectors(id=3, vector={"m": [[1.0, 0.0], [0.0, 2.0]]})]
    )
    hits = client.query_points("a", query=[[1.0, 1.0]], using="m").points
    assert [(h.id, h.score) for h in hits] == [(3, 2.0)]
