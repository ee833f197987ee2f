"""Recommendations by best_score and sum_scores, and MMR queries, through the official
qdrant-client against a real ``vectorizer serve``; each answer checked against numpy
with the formulas written out again here."""

from __future__ import annotations

import numpy as np
import pytest
from qdrant_client import QdrantClient, models

from tests.servers import ServerProcess

DIM = 6
N = 1500


def _load(client: QdrantClient, name: str, distance: models.Distance) -> np.ndarray:
    v = np.random.default_rng(7).standard_normal((N, DIM)).astype(np.float32)
    if distance == models.Distance.COSINE:
        v /= np.linalg.norm(v, axis=1, keepdims=True)
    client.create_collection(name, vectors_config=models.VectorParams(size=DIM, distance=distance))
    payloads = [{"odd": i % 2} for i in range(N)]
    client.upsert(
        name, points=models.Batch(ids=list(range(N)), vectors=v.tolist(), payloads=payloads)
    )
    return v


def _sim(rows: np.ndarray, examples: np.ndarray, euclid: bool) -> np.ndarray:
    if not euclid:
        return rows.astype(np.float64) @ examples.T.astype(np.float64)
    diff = rows[:, None, :].astype(np.float64) - examples[None, :, :]
    return -(diff**2).sum(axis=2)


def _expected(
    data: np.ndarray, pos: list[int], neg: list[int], strategy: str, euclid: bool, keep=None
) -> list[tuple[int, float]]:
    p = _sim(data, data[pos], euclid) if pos else np.empty((len(data), 0))
    n = _sim(data, data[neg], euclid) if neg else np.empty((len(data), 0))
    if strategy == "sum_scores":
        scores = p.sum(axis=1) - n.sum(axis=1)
    else:
        bp = p.max(axis=1) if pos else np.full(len(data), -np.inf)
        bn = n.max(axis=1) if neg else np.full(len(data), -np.inf)
        sig = lambda x: 0.5 * (x / (1 + np.abs(x)) + 1)  # noqa: E731
        with np.errstate(invalid="ignore"):  # (a side without examples: -inf, not used)
            scores = np.where(bp > bn, sig(bp), -sig(bn))
    ranked = [
        (int(i), float(scores[i]))
        for i in np.argsort(-scores, kind="stable")
        if int(i) not in pos + neg and (keep is None or keep(int(i)))
    ]
    return ranked


@pytest.mark.parametrize("distance", [models.Distance.COSINE, models.Distance.EUCLID])
@pytest.mark.parametrize(
    "strategy", [models.RecommendStrategy.BEST_SCORE, models.RecommendStrategy.SUM_SCORES]
)
def test_recommend_strategies_score_every_point_against_the_examples(
    server: ServerProcess,
    client: QdrantClient,
    distance: models.Distance,
    strategy: models.RecommendStrategy,
) -> None:
    data = _load(client, "c", distance)
    euclid = distance == models.Distance.EUCLID
    for pos, neg in (([3, 10], [7]), ([3], []), ([], [7, 8])):
        got = client.query_points(
            "c",
            query=models.RecommendQuery(
                recommend=models.RecommendInput(positive=pos, negative=neg, strategy=strategy)
            ),
            limit=10,
            offset=2,
        ).points
        want = _expected(data, pos, neg, strategy.value, euclid)[2:12]
        assert [int(p.id) for p in got] == [i for i, _ in want], (pos, neg)
        assert [p.score for p in got] == pytest.approx([s for _, s in want], rel=1e-4, abs=1e-6)
    # with a filter and a threshold, and through the legacy route older clients call
    only_odd = models.Filter(
        must=[models.FieldCondition(key="odd", match=models.MatchValue(value=1))]
    )
    want = _expected(data, [3, 10], [7], strategy.value, euclid, keep=lambda i: i % 2 == 1)
    threshold = want[5][1]
    got = client.query_points(
        "c",
        query=models.RecommendQuery(
            recommend=models.RecommendInput(positive=[3, 10], negative=[7], strategy=strategy)
        ),
        query_filter=only_odd,
        score_threshold=threshold,
        limit=50,
    ).points
    assert [int(p.id) for p in got] == [i for i, s in want if s >= threshold]
    body = {
        "positive": [3, 10],
        "negative": [7],
        "strategy": strategy.value,
        "limit": 4,
        "filter": only_odd.model_dump(exclude_none=True),
    }
    status, legacy = server.request("POST", "/qdrant/collections/c/points/recommend", body)
    assert status == 200, legacy
    assert [p["id"] for p in legacy["result"]] == [i for i, _ in want[:4]]


def _mmr_by_numpy(
    data: np.ndarray, q: np.ndarray, candidates: int, limit: int, diversity: float
) -> list[int]:
    rel = data.astype(np.float64) @ q
    pool = [int(i) for i in np.argsort(-rel, kind="stable")[:candidates]]
    chosen: list[int] = []
    while pool and len(chosen) < limit:

        def value(i: int) -> float:
            near = max((float(data[i] @ data[j]) for j in chosen), default=-np.inf)
            return (1 - diversity) * rel[i] - diversity * near if chosen else rel[i]

        best = max(pool, key=value)  # (ties: the first, as the server breaks them)
        chosen.append(best)
        pool.remove(best)
    return chosen


def test_mmr_picks_relevant_points_unlike_those_picked(client: QdrantClient) -> None:
    data = _load(client, "c", models.Distance.COSINE)
    q = data[0] + data[1]
    q /= np.linalg.norm(q)
    for diversity, candidates in ((0.0, 40), (0.5, 40), (0.9, 100)):
        got = client.query_points(
            "c",
            query=models.NearestQuery(
                nearest=q.tolist(), mmr=models.Mmr(diversity=diversity, candidates_limit=candidates)
            ),
            limit=8,
            offset=2,
        ).points
        want = _mmr_by_numpy(data, q, candidates, 10, diversity)[2:]
        assert [int(p.id) for p in got] == want, diversity
        # each keeps its similarity to the query as its score
        assert [p.score for p in got] == pytest.approx([float(data[i] @ q) for i in want], abs=1e-5)
    plain = client.query_points("c", query=q.tolist(), limit=8).points
    relevance_only = client.query_points(
        "c", query=models.NearestQuery(nearest=q.tolist(), mmr=models.Mmr(diversity=0.0)), limit=8
    ).points
    assert [p.id for p in relevance_only] == [p.id for p in plain]


def _pair_sims(
    data: np.ndarray, pairs: list[tuple[int, int]], euclid: bool
) -> tuple[np.ndarray, np.ndarray]:
    pos = _sim(data, data[[p for p, _ in pairs]], euclid)
    neg = _sim(data, data[[n for _, n in pairs]], euclid)
    return pos, neg


@pytest.mark.parametrize("distance", [models.Distance.COSINE, models.Distance.EUCLID])
def test_context_and_discover_queries_score_the_pairs(
    client: QdrantClient, distance: models.Distance
) -> None:
    data = _load(client, "c", distance)
    euclid = distance == models.Distance.EUCLID
    pairs = [(3, 10), (20, 30)]
    pos, neg = _pair_sims(data, pairs, euclid)
    named = {3, 10, 20, 30}

    x = np.minimum(0.0, pos - neg - float(np.finfo(np.float32).eps))
    ctx = (x / (1 + np.abs(x))).sum(axis=1)
    order = [int(i) for i in np.argsort(-ctx, kind="stable") if int(i) not in named]
    worst = order[::-1][:5]  # the clearly outside (the inside all score 0: ties)
    got = client.query_points(
        "c",
        query=models.ContextQuery(
            context=[models.ContextPair(positive=p, negative=n) for p, n in pairs]
        ),
        limit=N,
    ).points
    assert len(got) == N - len(named) and not named & {int(p.id) for p in got}
    assert [int(p.id) for p in got[-5:]][::-1] == worst
    scores = {int(p.id): p.score for p in got}
    assert [scores[i] for i in worst] == pytest.approx([ctx[i] for i in worst], rel=1e-4)
    assert sum(1 for s in scores.values() if s == 0) == sum(1 for i in order if ctx[i] == 0)

    target = 5
    t = _sim(data, data[[target]], euclid)[:, 0]
    rank = np.sign(pos - neg).sum(axis=1)
    disc = rank + 0.5 * (t / (1 + np.abs(t)) + 1)
    want = [int(i) for i in np.argsort(-disc, kind="stable") if int(i) not in named | {target}]
    got = client.query_points(
        "c",
        query=models.DiscoverQuery(
            discover=models.DiscoverInput(
                target=target,
                context=[models.ContextPair(positive=p, negative=n) for p, n in pairs],
            )
        ),
        limit=10,
        offset=1,
    ).points
    assert [int(p.id) for p in got] == want[1:11]
    assert [p.score for p in got] == pytest.approx([disc[i] for i in want[1:11]], rel=1e-4)


def test_the_legacy_discover_routes_answer_as_the_query_api(
    server: ServerProcess, client: QdrantClient
) -> None:
    _load(client, "c", models.Distance.COSINE)
    pairs = [{"positive": 3, "negative": 10}, {"positive": 20, "negative": 30}]
    odd = {"must": [{"key": "odd", "match": {"value": 1}}]}
    legacy = {"target": 5, "context": pairs, "limit": 6, "offset": 1, "filter": odd}
    status, old = server.request("POST", "/qdrant/collections/c/points/discover", legacy)
    assert status == 200, old
    current = {"query": {"discover": {"target": 5, "context": pairs}}, "limit": 6, "offset": 1}
    status, new = server.request(
        "POST", "/qdrant/collections/c/points/query", {**current, "filter": odd}
    )
    assert [p["id"] for p in old["result"]] == [p["id"] for p in new["result"]["points"]]
    assert all(p["id"] % 2 == 1 for p in old["result"])
    batch = {"searches": [legacy, {"context": pairs[:1], "limit": 3}]}
    status, both = server.request("POST", "/qdrant/collections/c/points/discover/batch", batch)
    assert status == 200 and [len(r) for r in both["result"]] == [6, 3], both
    for bad, field in (
        ({"limit": 3}, "target"),
        ({"target": 5, "limit": 3, "context": [{"positive": 1}]}, "context[0]"),
    ):
        status, answer = server.request("POST", "/qdrant/collections/c/points/discover", bad)
        assert status == 400 and field in answer["status"]["error"], answer


def test_average_vector_averages_the_examples_as_given(client: QdrantClient) -> None:
    """As in Qdrant (and its local mode): a raw example is averaged as given with the
    stored ones and only the average is normalized for cosine (normalizing each example
    first weighed a long one like a short one)."""
    local = QdrantClient(":memory:")
    for c in (client, local):
        c.create_collection("a", vectors_config=models.VectorParams(size=2, distance="Cosine"))
        c.upsert(
            "a",
            [
                models.PointStruct(id=1, vector=[1.0, 0.0]),
                models.PointStruct(id=2, vector=[1.0, 0.1]),
                models.PointStruct(id=3, vector=[0.1, 1.0]),
                models.PointStruct(id=4, vector=[0.7, 0.6]),
            ],
        )
    asked = [
        models.RecommendInput(positive=[1, [0.0, 10.0]]),
        models.RecommendInput(positive=[[0.0, 10.0], [1.0, 0.0]], negative=[[0.0, 0.5]]),
        models.RecommendInput(positive=[2], negative=[[30.0, 1.0]]),
    ]
    try:
        for recommend in asked:
            query = models.RecommendQuery(recommend=recommend)
            got, want = (c.query_points("a", query=query, limit=3).points for c in (client, local))
            assert [p.id for p in got] == [p.id for p in want], recommend
            assert [p.score for p in got] == pytest.approx([p.score for p in want], abs=1e-5)
    finally:
        local.close()
