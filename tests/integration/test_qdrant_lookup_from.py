"""``lookup_from``: ids in a query stand for another collection's points. Through the
official qdrant-client on a real ``vectorizer serve``, held to qdrant-client's local
mode: recommendations, discovery, context and nearest-by-id queries, plain, legacy,
batched, grouped and in prefetches; the searched collection's point of the same id is a
result like any other; a missing collection, another size or a vector name refused."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

from tests.servers import ServerProcess

DIM = 4
USERS = models.LookupLocation(collection="users")
EXACT = models.SearchParams(exact=True)


def _load(client: QdrantClient) -> None:
    rng = random.Random(11)
    for name, n in (("items", 60), ("users", 12)):
        client.create_collection(
            name, vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE)
        )
        client.upsert(
            name,
            points=[
                models.PointStruct(
                    id=i, vector=[rng.uniform(-1, 1) for _ in range(DIM)], payload={"n": i % 5}
                )
                for i in range(n)
            ],
        )
    client.create_collection(
        "wide", vectors_config=models.VectorParams(size=DIM + 1, distance=models.Distance.DOT)
    )
    client.upsert("wide", points=[models.PointStruct(id=1, vector=[1.0] * (DIM + 1))])


Ask = Callable[[QdrantClient], Any]


def _hits(found: Any) -> list[tuple[Any, float]]:
    points = found.points if hasattr(found, "points") else found
    return [(p.id, round(p.score, 4)) for p in points]


ASKS: list[tuple[str, Ask]] = [
    (
        "recommend average",
        lambda c: c.query_points(
            "items",
            query=models.RecommendQuery(
                recommend=models.RecommendInput(positive=[1, 2], negative=[3])
            ),
            lookup_from=USERS,
            limit=8,
            search_params=EXACT,
        ),
    ),
    (
        "recommend best_score",
        lambda c: c.query_points(
            "items",
            query=models.RecommendQuery(
                recommend=models.RecommendInput(
                    positive=[4], negative=[5], strategy=models.RecommendStrategy.BEST_SCORE
                )
            ),
            lookup_from=USERS,
            limit=8,
        ),
    ),
    (
        "nearest by id",
        lambda c: c.query_points("items", query=2, lookup_from=USERS, limit=8, search_params=EXACT),
    ),
    (
        "discover",
        lambda c: c.query_points(
            "items",
            query=models.DiscoverQuery(
                discover=models.DiscoverInput(
                    target=6, context=[models.ContextPair(positive=7, negative=8)]
                )
            ),
            lookup_from=USERS,
            limit=8,
        ),
    ),
    (
        "context",
        lambda c: c.query_points(
            "items",
            query=models.ContextQuery(context=[models.ContextPair(positive=9, negative=10)]),
            lookup_from=USERS,
            limit=8,
        ),
    ),
    (
        "in a prefetch, fused",
        lambda c: c.query_points(
            "items",
            prefetch=[
                models.Prefetch(query=1, lookup_from=USERS, limit=10, params=EXACT),
                models.Prefetch(query=1, limit=10, params=EXACT),
            ],
            query=models.FusionQuery(fusion=models.Fusion.RRF),
            limit=10,
        ),
    ),
]


@pytest.mark.parametrize(("label", "ask"), ASKS, ids=[label for label, _ in ASKS])
def test_answers_as_local_mode(client: QdrantClient, label: str, ask: Ask) -> None:
    local = QdrantClient(":memory:")
    for c in (client, local):
        _load(c)
    want = _hits(ask(local))
    got = _hits(ask(client))
    assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=1e-3), label
    # the same points at each score; ties are ordered differently (ours by id), and the
    # last score's points may be cut anywhere by the limit
    last = want[-1][1] if want else None
    for score in {s for _, s in want if s != last}:
        assert {i for i, s in got if s == score} == {i for i, s in want if s == score}, label
    assert len(got) == len(want)
    local.close()


def test_the_legacy_routes_look_up_too(server: ServerProcess, client: QdrantClient) -> None:
    """(qdrant-client 1.20 no longer sends them, so over plain HTTP, held to the query
    API's answers.)"""
    _load(client)
    lookup = {"collection": "users"}
    flt = models.Filter(must=[models.FieldCondition(key="n", match=models.MatchAny(any=[1, 2]))])
    status, legacy = server.request(
        "POST",
        "/qdrant/collections/items/points/recommend",
        {"positive": [1, 11], "lookup_from": lookup, "filter": flt.model_dump(), "limit": 6},
    )
    assert status == 200, legacy
    query = models.RecommendQuery(recommend=models.RecommendInput(positive=[1, 11]))
    want = client.query_points("items", query=query, lookup_from=USERS, query_filter=flt, limit=6)
    assert [p["id"] for p in legacy["result"]] == [p.id for p in want.points]
    status, found = server.request(
        "POST",
        "/qdrant/collections/items/points/discover",
        {
            "target": 3,
            "context": [{"positive": 4, "negative": 5}],
            "lookup_from": lookup,
            "limit": 10,
        },
    )
    assert status == 200, found
    discover = models.DiscoverQuery(
        discover=models.DiscoverInput(
            target=3, context=[models.ContextPair(positive=4, negative=5)]
        )
    )
    want = client.query_points("items", query=discover, lookup_from=USERS, limit=10)
    assert [p["score"] for p in found["result"]] == pytest.approx([p.score for p in want.points])


def test_the_same_id_is_not_excluded_and_batches_and_groups_look_up_too(
    client: QdrantClient,
) -> None:
    _load(client)
    # users' point 2 stands for a vector; items' point 2 is a result like any other
    own = client.query_points("items", query=2, limit=60, search_params=EXACT).points
    other = client.query_points(
        "items", query=2, lookup_from=USERS, limit=60, search_params=EXACT
    ).points
    assert 2 not in {p.id for p in own} and 2 in {p.id for p in other}
    batch = client.query_batch_points(
        "items",
        requests=[
            models.QueryRequest(query=2, lookup_from=USERS, limit=5, params=EXACT),
            models.QueryRequest(query=2, limit=5, params=EXACT),
        ],
    )
    assert [p.id for p in batch[0].points] == [p.id for p in other[:5]]
    assert [p.id for p in batch[1].points] == [p.id for p in own[:5]]
    groups = client.query_points_groups(
        "items", "n", query=2, lookup_from=USERS, limit=3, group_size=2, search_params=EXACT
    )
    best = [hit.id for g in groups.groups for hit in g.hits]
    assert best and best[0] == other[0].id


@pytest.mark.parametrize(
    ("lookup", "says"),
    [
        ({"collection": "nowhere"}, "nowhere"),
        ({"collection": "wide"}, "dimension"),
        ({"collection": "users", "vector": "image"}, "no dense vector named 'image'"),
        ({"collection": "users", "vector": 3}, "lookup_from.vector"),
        ({"collection": 5}, "lookup_from"),
        ({"collection": "users", "shard": 1}, "lookup_from"),
    ],
)
def test_bad_lookups_are_refused(
    server: ServerProcess, client: QdrantClient, lookup: dict[str, Any], says: str
) -> None:
    _load(client)
    body = {"query": 1, "lookup_from": lookup}
    status, got = server.request("POST", "/qdrant/collections/items/points/query", body)
    assert status in (400, 404), got
    assert says in got["status"]["error"], got


def test_a_lookup_from_beside_a_vector_query_is_still_checked(
    server: ServerProcess, client: QdrantClient
) -> None:
    """(A query by vector has no ids to look up; the collection it names must exist all
    the same, as on the searches that have some.)"""
    _load(client)
    body = {"query": [0.5] * DIM, "lookup_from": {"collection": "nowhere"}}
    status, got = server.request("POST", "/qdrant/collections/items/points/query", body)
    assert status == 404 and "nowhere" in got["status"]["error"], got


def _named(client: QdrantClient) -> None:
    """ "docs" and "queries" of named vectors only: "text" in both, "title" in
    "queries" (the same size), "kw" a sparse one; some "queries" lack "title"."""
    rng = random.Random(12)

    def vec() -> list[float]:
        return [rng.uniform(-1, 1) for _ in range(DIM)]

    text = models.VectorParams(size=DIM, distance=models.Distance.COSINE)
    client.create_collection("docs", vectors_config={"text": text})
    client.upsert(
        "docs", points=[models.PointStruct(id=i, vector={"text": vec()}) for i in range(40)]
    )
    client.create_collection(
        "queries",
        vectors_config={"text": text, "title": text},
        sparse_vectors_config={"kw": models.SparseVectorParams()},
    )
    points = []
    for i in range(8):
        vector: dict[str, Any] = {
            "text": vec(),
            "kw": models.SparseVector(indices=[i], values=[1.0]),
        }
        if i % 2:
            vector["title"] = vec()
        points.append(models.PointStruct(id=i, vector=vector))
    client.upsert("queries", points=points)


def test_named_vectors_of_another_collection_as_in_local_mode(client: QdrantClient) -> None:
    """``lookup_from.vector`` names the other collection's vector; without it, the one
    searched (as local mode reads it)."""
    local = QdrantClient(":memory:")
    for c in (client, local):
        _named(c)
    for lookup in (
        models.LookupLocation(collection="queries"),
        models.LookupLocation(collection="queries", vector="title"),
    ):
        for query in (
            1,
            models.RecommendQuery(recommend=models.RecommendInput(positive=[1, 3], negative=[5])),
        ):
            ours, theirs = (
                _hits(
                    c.query_points("docs", query=query, using="text", lookup_from=lookup, limit=6)
                )
                for c in (client, local)
            )
            assert ours == theirs, (lookup, query)
    for lookup, says in (
        ({"collection": "queries", "vector": "title"}, b"query: point 2 has no vector 'title'"),
        ({"collection": "queries", "vector": "kw"}, b"'kw' of collection 'queries' is not a dense"),
        (
            {"collection": "queries", "vector": ""},
            b"lookup_from.vector: collection 'queries' has no dense vector of its own",
        ),
        (
            {"collection": "docs", "vector": "nope"},  # (the searched collection itself)
            b"lookup_from.vector: collection 'docs' has no dense vector named 'nope'",
        ),
    ):
        with pytest.raises(UnexpectedResponse) as exc:
            client.query_points(
                "docs", query=2, using="text", lookup_from=models.LookupLocation(**lookup)
            )
        assert exc.value.status_code == 400 and says in exc.value.content, exc.value.content
    local.close()
