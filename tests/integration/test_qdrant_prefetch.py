"""Queries over prefetches through the official qdrant-client against a real
``vectorizer serve``: rescoring, RRF and DBSF fusion, nesting, filters that hold in
every prefetch; each answer checked against numpy over the same data."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

from tests.servers import ServerProcess

DIM = 8
N = 2000
EXACT = models.SearchParams(exact=True)


@pytest.fixture
def data(client: QdrantClient) -> np.ndarray:
    v = np.random.default_rng(3).standard_normal((N, DIM)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    client.create_collection(
        "c", vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE)
    )
    client.upsert(
        "c",
        points=models.Batch(
            ids=list(range(N)),
            vectors=v.tolist(),
            payloads=[{"city": ["Paris", "Oslo"][i % 2], "price": i % 100} for i in range(N)],
        ),
    )
    return v


def _unit(seed: int) -> np.ndarray:
    q = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return q / np.linalg.norm(q)


def _top(
    data: np.ndarray, q: np.ndarray, n: int, keep: Callable[[int], bool] = lambda i: True
) -> list[tuple[int, float]]:
    """The n best (id, score) among the points ``keep`` accepts, by numpy."""
    scores = data @ q
    order = [int(i) for i in np.argsort(-scores, kind="stable") if keep(int(i))]
    return [(i, float(scores[i])) for i in order[:n]]


def _ids(points: list[models.ScoredPoint]) -> list[int]:
    return [int(p.id) for p in points]


def test_a_vector_query_ranks_only_what_its_prefetches_found(
    client: QdrantClient, data: np.ndarray
) -> None:
    q1, q2 = _unit(1), _unit(2)
    got = client.query_points(
        "c",
        prefetch=[
            models.Prefetch(query=q1.tolist(), limit=30, params=EXACT),
            models.Prefetch(
                query=q1.tolist(),
                limit=30,
                params=EXACT,
                filter=models.Filter(
                    must=[models.FieldCondition(key="city", match=models.MatchValue(value="Oslo"))]
                ),
            ),
        ],
        query=q2.tolist(),
        limit=10,
        with_payload=True,
    ).points
    found = {i for i, _ in _top(data, q1, 30)} | {
        i for i, _ in _top(data, q1, 30, lambda i: i % 2 == 1)
    }
    want = _top(data, q2, 10, lambda i: i in found)
    assert _ids(got) == [i for i, _ in want]
    assert [p.score for p in got] == pytest.approx([s for _, s in want], abs=1e-5)
    assert got[0].payload == {"city": ["Paris", "Oslo"][want[0][0] % 2], "price": want[0][0] % 100}


def test_rrf_and_dbsf_fuse_the_prefetch_lists(client: QdrantClient, data: np.ndarray) -> None:
    q1, q2 = _unit(4), _unit(5)
    prefetch = [
        models.Prefetch(query=q1.tolist(), limit=25, params=EXACT),
        models.Prefetch(query=q2.tolist(), limit=25, params=EXACT),
    ]
    lists = [_top(data, q1, 25), _top(data, q2, 25)]

    def rrf(k: int, weights: list[float]) -> list[tuple[int, float]]:
        fused: dict[int, float] = {}
        for w, ranked in zip(weights, lists, strict=True):
            for pos, (i, _) in enumerate(ranked):
                fused[i] = fused.get(i, 0.0) + 1 / ((pos + 1) / w + k - 1)
        return sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))

    def dbsf() -> list[tuple[int, float]]:
        fused: dict[int, float] = {}
        for ranked in lists:
            s = np.array([x for _, x in ranked], dtype=np.float64)
            lo, hi = s.mean() - 3 * s.std(ddof=1), s.mean() + 3 * s.std(ddof=1)
            for i, x in ranked:
                fused[i] = fused.get(i, 0.0) + (x - lo) / (hi - lo)
        return sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))

    cases: list[tuple[Any, list[tuple[int, float]]]] = [
        (models.FusionQuery(fusion=models.Fusion.RRF), rrf(2, [1.0, 1.0])),
        (models.RrfQuery(rrf=models.Rrf(k=60, weights=[3.0, 1.0])), rrf(60, [3.0, 1.0])),
        (models.FusionQuery(fusion=models.Fusion.DBSF), dbsf()),
    ]
    for query, want in cases:
        got = client.query_points("c", prefetch=prefetch, query=query, limit=12, offset=3).points
        assert _ids(got) == [i for i, _ in want[3:15]], query
        assert [p.score for p in got] == pytest.approx([s for _, s in want[3:15]], rel=1e-4)
    # score_threshold holds for the fused score
    above = client.query_points(
        "c",
        prefetch=prefetch,
        query=models.FusionQuery(fusion=models.Fusion.RRF),
        score_threshold=0.3,
        limit=50,
    ).points
    assert _ids(above) == [i for i, s in rrf(2, [1.0, 1.0]) if s >= 0.3]


def test_the_query_filter_holds_in_nested_prefetches_and_query_points_are_left_out(
    client: QdrantClient, data: np.ndarray
) -> None:
    cheap = models.Filter(must=[models.FieldCondition(key="price", range=models.Range(lt=20))])
    inner = models.Prefetch(query=7, limit=40, params=EXACT)  # by point 7's vector
    outer = models.Prefetch(prefetch=[inner], query=_unit(8).tolist(), limit=15, params=EXACT)
    got = client.query_points(
        "c",
        prefetch=outer,
        query=models.FusionQuery(fusion=models.Fusion.RRF),
        query_filter=cheap,
        limit=15,
        with_payload=True,
    ).points
    keep: Callable[[int], bool] = lambda i: i % 100 < 20 and i != 7  # noqa: E731
    found = {i for i, _ in _top(data, data[7], 40, keep)}
    ranked = _top(data, _unit(8), 15, lambda i: i in found)
    assert _ids(got) == [i for i, _ in ranked]  # one list: its order
    assert all(p.payload is not None and p.payload["price"] < 20 for p in got)
    # ordered by a payload value over what the prefetch found
    listed = client.query_points(
        "c",
        prefetch=models.Prefetch(query=_unit(9).tolist(), limit=20, params=EXACT),
        query=models.OrderByQuery(order_by=models.OrderBy(key="price", direction="desc")),
        limit=20,
    ).points
    found = {i for i, _ in _top(data, _unit(9), 20)}
    assert _ids(listed) == sorted(found, key=lambda i: (i % 100, i), reverse=True)  # ties: ids


def test_grouped_queries_take_prefetches(client: QdrantClient, data: np.ndarray) -> None:
    q = _unit(10)
    found = _top(data, q, 40 * 3)  # a grouped query's prefetch takes group_size x its limit
    got = client.query_points_groups(
        "c",
        group_by="city",
        prefetch=models.Prefetch(query=q.tolist(), limit=40, params=EXACT),
        query=_unit(11).tolist(),
        group_size=3,
        limit=2,
    ).groups
    ranked = _top(data, _unit(11), 40, lambda i: i in {j for j, _ in found})
    for group in got:
        want = [i for i, _ in ranked if ["Paris", "Oslo"][i % 2] == group.id][:3]
        assert [int(h.id) for h in group.hits] == want
    assert {g.id for g in got} == {"Paris", "Oslo"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prefetch": [{"query": [0.1] * DIM}]}, "query"),
        ({"query": {"fusion": "rrf"}}, "query"),
        (
            {"prefetch": [{"prefetch": {"query": [0.1] * DIM}}], "query": {"fusion": "rrf"}},
            "prefetch[0].query",
        ),
        (
            {"prefetch": [{"query": [0.1] * DIM}], "query": {"rrf": {"weights": [1, 2]}}},
            "query.rrf.weights",
        ),
        ({"prefetch": [{"query": [0.1] * DIM}], "query": {"rrf": {"k": 0}}}, "query.rrf.k"),
        ({"prefetch": [{"query": [0.1] * DIM}], "query": {"fusion": "max"}}, "query.fusion"),
        (
            {"prefetch": [{"query": [0.1] * DIM, "limit": "x"}], "query": {"fusion": "rrf"}},
            "prefetch[0].limit",
        ),
        (
            {"prefetch": [{"query": [0.1] * DIM, "using": "text"}], "query": {"fusion": "rrf"}},
            "prefetch[0].using",
        ),
        (
            {"prefetch": [{"query": [0.1] * DIM, "offset": 3}], "query": {"fusion": "rrf"}},
            "prefetch[0].offset",
        ),
        (
            {"prefetch": [{"query": [0.1] * (DIM + 1)}], "query": {"fusion": "rrf"}},
            "prefetch[0].query",
        ),
        (  # (Qdrant: "Fusion queries cannot be combined with the 'using' field")
            {"prefetch": [{"query": [0.1] * DIM}], "query": {"fusion": "rrf"}, "using": "a"},
            "using",
        ),
        ({"query": {"order_by": "price"}, "score_threshold": 0.5}, "score_threshold"),
    ],
)
def test_bad_prefetches_name_the_field(
    server: ServerProcess, data: np.ndarray, body: dict[str, Any], field: str
) -> None:
    status, answer = server.request("POST", "/qdrant/collections/c/points/query", body)
    assert status == 400, answer
    assert field in answer["status"]["error"], answer


def test_prefetches_nest_at_most_64_deep_and_count_toward_the_batch_bounds(
    server: ServerProcess, data: np.ndarray
) -> None:
    leaf: dict[str, Any] = {"query": [0.1] * DIM}
    for _ in range(64):
        leaf = {"prefetch": leaf, "query": [0.1] * DIM}
    status, answer = server.request(
        "POST", "/qdrant/collections/c/points/query", {"prefetch": leaf, "query": [0.1] * DIM}
    )
    assert status == 400 and "64" in answer["status"]["error"], answer
    many = {"prefetch": [{"query": [0.1] * DIM, "limit": 10_000}] * 11, "query": {"fusion": "rrf"}}
    status, answer = server.request("POST", "/qdrant/collections/c/points/query", many)
    assert status == 400 and "prefetch" in answer["status"]["error"], answer
    with pytest.raises(UnexpectedResponse):  # (and the installed client says so too)
        QdrantClient(url=server.url, prefix="qdrant", check_compatibility=False).query_points(
            "c", query=models.FusionQuery(fusion=models.Fusion.RRF)
        )


def test_dbsf_reads_scores_of_examples_as_higher_better_on_euclid(
    client: QdrantClient,
) -> None:
    """Recommendations by best_score/sum_scores, context and discovery queries score
    higher-better for every metric: DBSF over them on a Euclid vector ranks as
    qdrant-client's local mode does (it read them as distances: the worst hits first)."""
    local = QdrantClient(":memory:")
    euclid = {"b": models.VectorParams(size=2, distance=models.Distance.EUCLID)}
    for c in (client, local):
        c.create_collection("e", vectors_config=euclid)
        c.upsert(
            "e", [models.PointStruct(id=i, vector={"b": [float(i), 0.0]}) for i in range(1, 9)]
        )
    pair = models.ContextPair(positive=[1.0, 0.0], negative=[8.0, 0.0])
    queries: list[Any] = [
        models.RecommendQuery(
            recommend=models.RecommendInput(positive=[[1.0, 0.0]], strategy=strategy)
        )
        for strategy in (models.RecommendStrategy.BEST_SCORE, models.RecommendStrategy.SUM_SCORES)
    ]
    queries += [
        models.ContextQuery(context=[pair]),
        models.DiscoverQuery(discover=models.DiscoverInput(target=[2.2, 0.0], context=[pair])),
    ]
    try:
        for query in queries:
            prefetch = [models.Prefetch(query=query, using="b", limit=5)]
            fused = models.FusionQuery(fusion=models.Fusion.DBSF)
            got, want = (
                c.query_points("e", prefetch=prefetch, query=fused, limit=5).points
                for c in (client, local)
            )
            assert _ids(got) == _ids(want), query
            assert [p.score for p in got] == pytest.approx([p.score for p in want], abs=1e-4)
    finally:
        local.close()


def test_a_random_sample_takes_a_score_threshold(client: QdrantClient, data: np.ndarray) -> None:
    """As Qdrant (which refuses a threshold only without a query or with order_by) and
    its local mode: the sample is drawn as without one."""
    sample = models.SampleQuery(sample=models.Sample.RANDOM)
    got = client.query_points("c", query=sample, score_threshold=0.5, limit=7).points
    assert len(got) == 7 and len(set(_ids(got))) == 7
