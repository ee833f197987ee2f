from __future__ import annotations

import numpy as np
import pytest

from vectorizer.engine import collection, exact
from vectorizer.engine.collection import EXACT_BELOW, Collection
from vectorizer.engine.config import CollectionConfig, HnswParams, IndexKind, Metric
from vectorizer.engine.filters import compile_filter


def make(
    n: int,
    dim: int = 16,
    metric: Metric = Metric.COSINE,
    index: IndexKind = IndexKind.HNSW,
    seed: int = 0,
) -> tuple[Collection, np.ndarray]:
    rng = np.random.default_rng(seed)
    vecs = metric.prepare(rng.normal(size=(n, dim)).astype(np.float32))
    coll = Collection(
        "t", CollectionConfig(dim, metric, index, HnswParams(16, 100, 64)), capacity=64
    )
    coll.upsert(list(range(n)), vecs, [{"g": i % 10, "i": i} for i in range(n)])
    return coll, vecs


@pytest.mark.parametrize("metric", list(Metric))
def test_hnsw_matches_exact_scores(metric: Metric) -> None:
    coll, vecs = make(3000, metric=metric)
    q = metric.prepare(vecs[:1] + 0.01)
    got = coll.search(q, 10)
    truth = exact.top_k(vecs, np.arange(3000), q, metric, 10)
    assert [p.id for p in got][:5] == [s for s, _ in truth][:5]
    assert got[0].score == pytest.approx(truth[0][1], abs=1e-4)
    scores = [p.score for p in got]
    assert scores == sorted(scores, reverse=metric.higher_is_better)


def test_capacity_grows_and_deleted_slots_are_reused() -> None:
    coll, vecs = make(512)
    assert coll.info()["capacity"] == 512  # grown from 64 by doubling
    assert coll.delete([1, 2, 3, 999]) == 3
    assert len(coll) == 509 and 2 not in coll
    coll.upsert(["a", "b", "c"], vecs[:3], [None, None, None])
    assert coll.info()["capacity"] == 512  # re-used the freed slots, no growth
    assert coll.get("a") is not None and coll.get(2) is None
    assert [h.id for h in coll.search(vecs[1:2], 1)] == ["b"]
    coll.upsert(["d", "e"], vecs[:2], [None, None])
    assert coll.info()["capacity"] == 1024 and len(coll) == 514


def test_replacing_vectors_keeps_the_id_and_finds_the_new_vector() -> None:
    coll, vecs = make(EXACT_BELOW + 200)
    for round_ in range(3):  # enough replacements to go through fresh and re-used slots
        coll.upsert(list(range(200)), vecs[1000:1200], [{"r": round_}] * 200)
    assert len(coll) == EXACT_BELOW + 200
    hit = coll.search(vecs[1005:1006], 2)
    assert {h.id for h in hit} == {5, 1005}
    assert coll.get(5).payload == {"r": 2}  # type: ignore[union-attr]


def test_update_in_place_changes_vector_and_payload() -> None:
    coll, vecs = make(EXACT_BELOW + 500)
    target = vecs[7:8]
    coll.update(0, target, {"new": True})
    hits = coll.search(target, 2)
    assert {h.id for h in hits} == {0, 7}
    p = coll.get(0)
    assert p is not None and p.payload == {"new": True}
    assert np.allclose(p.vector, target[0])


def test_duplicate_ids_in_one_batch_last_wins() -> None:
    coll = Collection("t", CollectionConfig(2))
    v = Metric.COSINE.prepare(np.array([[1, 0], [0, 1]], dtype=np.float32))
    coll.upsert([5, 5], v, [{"n": 1}, {"n": 2}])
    assert len(coll) == 1
    p = coll.get(5)
    assert p is not None and p.payload == {"n": 2}


@pytest.mark.parametrize("selective", [True, False])
def test_filtered_search_returns_true_top_k(selective: bool) -> None:
    coll, vecs = make(6000, seed=1)
    spec = (
        {"must": [{"key": "i", "range": {"lt": 30}}]}
        if selective
        else {"must": [{"key": "g", "match": {"any": [1, 2, 3, 4, 5, 6, 7, 8]}}]}
    )
    pred = compile_filter(spec)
    q = vecs[100:101]
    got = coll.search(q, 20, predicate=pred)
    matching = np.array([i for i in range(6000) if pred(i, {"g": i % 10, "i": i})])  # type: ignore[misc]
    truth = [s for s, _ in exact.top_k(vecs, matching, q, Metric.COSINE, 20)]
    assert len(got) == 20
    if selective:
        assert [p.id for p in got] == truth
    else:
        assert len({p.id for p in got} & set(truth)) >= 18


class Counted:
    """A predicate that counts the payloads it reads."""

    def __init__(self, spec: dict[str, object]) -> None:
        self.pred, self.calls = compile_filter(spec), 0

    def __call__(self, pid: object, payload: object) -> bool:
        self.calls += 1
        return self.pred(pid, payload)  # type: ignore[arg-type]


def test_a_broad_filter_takes_the_matches_among_the_nearest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A filter matching most points: the matches among the nearest of an unfiltered walk
    (a few payloads read), the same top k as exactly over the matches."""
    monkeypatch.setattr(collection, "EXACT_FILTER_MAX", 2000)
    coll, vecs = make(6000, seed=3)
    spec = {"must": [{"key": "g", "match": {"any": [1, 2, 3, 4, 5, 6, 7, 8]}}]}  # 80%
    matching = np.array([i for i in range(6000) if 0 < i % 10 < 9])
    found = 0
    for q in range(0, 600, 30):
        pred = Counted(spec)
        got = coll.search(vecs[q : q + 1], 10, predicate=pred)  # type: ignore[arg-type]
        truth = [s for s, _ in exact.top_k(vecs, matching, vecs[q : q + 1], Metric.COSINE, 10)]
        assert len(got) == 10 and all(0 < p.id % 10 < 9 for p in got)  # type: ignore[operator]
        found += len({p.id for p in got} & set(truth))
        assert pred.calls <= 256 + 10 * 3 * 2  # the sample, the nearest 3k / share (~80%)
    assert found >= 0.99 * 200


@pytest.mark.parametrize("deleted", [0, 9000])
def test_a_filters_share_is_estimated_from_a_sample_of_live_points(deleted: int) -> None:
    """Sampled among the live points whether most slots are live (drawn at random, the
    free ones passed over) or most were freed by deletes (drawn from the live ones)."""
    coll, _ = make(12000, seed=5)
    coll.delete(list(range(deleted)))
    live = 12000 - deleted
    for share in (0.1, 0.5, 0.9):
        cut = int(10 * share)  # the payloads' "g" is i % 10
        estimates = [
            coll._estimated_matches(compile_filter({"must": [{"key": "g", "range": {"lt": cut}}]}))
            for _ in range(20)
        ]
        assert abs(np.mean(estimates) / live - share) < 0.05, (share, np.mean(estimates))


def test_a_broad_filter_far_from_the_query_is_searched_exactly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A filter matching half the points, those of the clusters farthest from the
    query: the graph walked with the filter filled its candidates with the first matches
    it met and stopped (recall@10 0.5-0.9 on clustered data, whatever ef). Far fewer
    matches than the filter's share among the nearest points: exactly instead."""
    monkeypatch.setattr(collection, "EXACT_FILTER_MAX", 2000)
    rng = np.random.default_rng(8)
    centers = rng.normal(size=(100, 32)).astype(np.float32)
    cluster = rng.integers(0, 100, 20000)
    vecs = Metric.COSINE.prepare(centers[cluster] + 0.35 * rng.normal(size=(20000, 32)))
    coll = Collection("t", CollectionConfig(32, Metric.COSINE, IndexKind.HNSW), capacity=64)
    coll.upsert(list(range(20000)), vecs, [{"c": int(c)} for c in cluster])
    unit = centers / np.linalg.norm(centers, axis=1, keepdims=True)
    found = 0
    for q in range(20):
        query = Metric.COSINE.prepare(centers[q] + 0.3 * rng.normal(size=(1, 32)))
        far = [int(c) for c in np.argsort(unit @ unit[q])[:45]]  # the 45 farthest clusters
        pred = compile_filter({"must": [{"key": "c", "match": {"any": far}}]})
        got = coll.search(query, 10, predicate=pred)
        matching = np.flatnonzero(np.isin(cluster, far))
        truth = {s for s, _ in exact.top_k(vecs, matching, query, Metric.COSINE, 10)}
        assert len(got) == 10 and all(cluster[p.id] in far for p in got)  # type: ignore[index]
        found += len({p.id for p in got} & truth)
    assert found == 200


@pytest.mark.parametrize("metric", list(Metric))
def test_a_selective_filter_reads_payloads_in_score_order(metric: Metric) -> None:
    """Every point scored, then payloads read best first until k pass: the exact top k of
    the matches (whichever way the metric ranks), and only the payloads of the points
    that score better than the k-th match are read."""
    coll, vecs = make(6000, metric=metric, seed=6)
    coll.delete(list(range(1, 6000, 7)))  # (freed slots are never hits)
    spec = {"must": [{"key": "i", "range": {"gte": 3000}}]}  # half, but few enough: exact
    for q in (3000, 4500, 10):
        pred = Counted(spec)
        got = coll.search(vecs[q : q + 1], 10, predicate=pred)  # type: ignore[arg-type]
        live = np.array([i for i in range(3000, 6000) if i % 7 != 1])
        truth = exact.top_k(vecs, live, vecs[q : q + 1], metric, 10)
        assert [(p.id, round(p.score, 4)) for p in got] == [(s, round(x, 4)) for s, x in truth]
        everything = exact.top_k(vecs, np.arange(6000), vecs[q : q + 1], metric, 6000)
        kth = [s for s, _ in everything if s % 7 != 1].index(truth[-1][0])  # its rank
        assert pred.calls <= 256 + max(kth + 1, 4 * 10)  # (the sample, then in order)


def test_filter_never_returns_fewer_than_limit_while_enough_match() -> None:
    coll, vecs = make(5000, seed=2)
    pred = compile_filter({"must": [{"key": "i", "match": {"any": [4999, 17, 2500]}}]})
    got = coll.search(vecs[:1], 10, predicate=pred)
    assert sorted(p.id for p in got) == [17, 2500, 4999]


def test_threshold_offset_and_exact_mode() -> None:
    coll, vecs = make(300, index=IndexKind.EXACT)
    hits = coll.search(vecs[:1], 5, threshold=0.999)
    assert [h.id for h in hits] == [0]
    all5 = coll.search(vecs[:1], 5)
    assert [h.id for h in coll.search(vecs[:1], 3, offset=2)] == [h.id for h in all5[2:5]]


def test_euclidean_threshold_is_a_maximum_distance() -> None:
    coll, vecs = make(200, metric=Metric.EUCLIDEAN)
    hits = coll.search(vecs[:1], 10, threshold=0.0001)
    assert [h.id for h in hits] == [0]


def test_scroll_pages_in_id_order() -> None:
    coll, vecs = make(25)
    coll.upsert(["b", "a"], vecs[:2], [None, None])
    seen = []
    offset = None
    while True:
        page, offset = coll.scroll(10, offset)
        seen += [p.id for p in page]
        if offset is None:
            break
    assert seen == [*range(25), "a", "b"]
    assert coll.count(compile_filter({"must": [{"key": "g", "match": {"value": 3}}]})) == 3


def test_search_many_matches_one_search_each() -> None:
    coll, vecs = make(EXACT_BELOW + 1500, seed=3)
    queries = vecs[[5, 77, 900]] + 0.01
    many = coll.search_many(queries, 7, offset=1, threshold=0.5, with_vector=True)
    for q, got in zip(queries, many, strict=True):
        one = coll.search(q[None, :], 7, offset=1, threshold=0.5, with_vector=True)
        assert [h.id for h in got] == [h.id for h in one]
        assert [h.score for h in got] == pytest.approx([h.score for h in one], abs=1e-5)
    small, small_vecs = make(10)
    assert [len(r) for r in small.search_many(small_vecs[:2], 20)] == [10, 10]
