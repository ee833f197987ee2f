"""Points with equal vectors: one graph node per vector, the others its twins.

Without that, many copies of one vector became an island of the HNSW graph that every
search ended on (recall 0); these tests fail on an index that links every copy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vectorizer.engine.collection import Collection, NamedRows
from vectorizer.engine.config import CollectionConfig, HnswParams, Metric
from vectorizer.engine.hnsw import HnswIndex
from vectorizer.engine.twins import NONE, NodeTable
from vectorizer.engine.validation import PointId

Array = np.ndarray[Any, Any]
FAR = 50.0  # the copies' value in every dimension, far from the other points


def collection(metric: Metric, dim: int = 8, **raw: Any) -> Collection:
    config = {"dimension": dim, "metric": metric.value, "hnsw": {"m": 16, "ef_construction": 150}}
    return Collection("t", CollectionConfig.parse(config | raw, HnswParams()))


def insert(coll: Collection, first_id: int, vectors: Array, metric: Metric) -> None:
    prepared = metric.prepare(vectors.astype(np.float32))
    for i in range(0, len(prepared), 1000):
        part = prepared[i : i + 1000]
        ids: list[PointId] = list(range(first_id + i, first_id + i + len(part)))
        coll.upsert(ids, part, [{"i": pid} for pid in ids])


def recall(coll: Collection, queries: Array, metric: Metric, using: str = "") -> float:
    found = 0
    for q in metric.prepare(queries.astype(np.float32)):
        graph = coll.search(q[None], 10, with_payload=False, using=using)
        exact = coll.search(q[None], 10, exact_search=True, with_payload=False, using=using)
        found += len({p.id for p in graph} & {p.id for p in exact})
    return found / (10 * len(queries))


@pytest.mark.parametrize("metric", [Metric.EUCLIDEAN, Metric.COSINE])
@pytest.mark.parametrize("copies_first", [True, False])
def test_thousands_of_copies_of_one_vector_do_not_trap_searches(
    metric: Metric, copies_first: bool
) -> None:
    # The concurrency probe's case: 1,500 points, 8,000 copies of one far vector (recall
    # was 0 either way round: the entry point lands among the copies).
    rng = np.random.default_rng(1)
    coll = collection(metric)
    others, copies = rng.normal(size=(1500, 8)), np.full((8000, 8), FAR)
    parts = [(copies, 10_000), (others, 0)] if copies_first else [(others, 0), (copies, 10_000)]
    for vectors, first_id in parts:
        insert(coll, first_id, vectors, metric)
    assert recall(coll, rng.normal(size=(100, 8)), metric) >= 0.95
    # The copies themselves are all found, with one score.
    hits = coll.search(metric.prepare(np.full((1, 8), FAR, np.float32)), 8000)
    assert {p.id for p in hits} == set(range(10_000, 18_000))
    assert len({p.score for p in hits}) == 1


def test_half_the_points_one_vector_inserted_first() -> None:
    # hnswlib alone: recall 0.0 with 50% copies inserted first (2 seeds of 2).
    rng = np.random.default_rng(7)
    coll = collection(Metric.EUCLIDEAN, dim=32)
    insert(coll, 0, np.repeat(rng.normal(size=(1, 32)), 5000, axis=0), Metric.EUCLIDEAN)
    insert(coll, 5000, rng.normal(size=(5000, 32)), Metric.EUCLIDEAN)
    assert recall(coll, rng.normal(size=(100, 32)), Metric.EUCLIDEAN) >= 0.95


def copies_collection(n_copies: int = 60) -> tuple[Collection, Array]:
    """3,000 random points (ids 0..) and ``n_copies`` copies of one vector (ids 10,000..)."""
    rng = np.random.default_rng(3)
    coll = collection(Metric.EUCLIDEAN)
    insert(coll, 0, rng.normal(size=(3000, 8)), Metric.EUCLIDEAN)
    insert(coll, 10_000, np.full((n_copies, 8), 2.0), Metric.EUCLIDEAN)
    return coll, np.full((1, 8), 2.0, np.float32)


def test_deleting_copies_one_by_one_keeps_the_others_found() -> None:
    # The first copy is the group's node: deleting it puts a twin in its place (staged,
    # then folded), and so on down to the last.
    coll, v = copies_collection()
    left = set(range(10_000, 10_060))
    for n, pid in enumerate(sorted(left)):
        coll.delete([pid])
        left.discard(pid)
        if n % 7 == 3:
            coll.fold()
        hits = coll.search(v, max(len(left), 1), with_payload=False)
        assert {p.id for p in hits[: len(left)]} == left
        assert all(p.score == 0.0 for p in hits[: len(left)])
    assert coll.search(v, 1, with_payload=False)[0].score > 0


def test_updating_the_node_of_a_group_moves_it_and_keeps_its_twins() -> None:
    coll, v = copies_collection()
    new = np.full((1, 8), -3.0, np.float32)
    coll.update(10_000, new, None)  # the group's node gets another vector
    coll.update(10_001, None, {"tag": "kept"})  # a twin's payload only
    coll.fold()
    coll.settle()
    hits = coll.search(v, 59, with_payload=True)
    assert {p.id for p in hits} == set(range(10_001, 10_060))
    assert next(p.payload for p in hits if p.id == 10_001) == {"tag": "kept"}
    assert coll.search(new, 1, with_payload=False)[0].id == 10_000


def test_updates_to_one_vector_become_twins_as_they_are_folded() -> None:
    # Updates wait in the delta buffer (256 rows) and are sorted out when folded.
    rng = np.random.default_rng(6)
    coll = collection(Metric.EUCLIDEAN)
    insert(coll, 0, rng.normal(size=(6000, 8)), Metric.EUCLIDEAN)
    copy = np.full((1, 8), FAR, np.float32)
    for pid in range(1000, 5000):
        coll.update(pid, copy, None)
    coll.fold()
    coll.settle()
    assert recall(coll, rng.normal(size=(100, 8)), Metric.EUCLIDEAN) >= 0.95
    assert {p.id for p in coll.search(copy, 4000, with_payload=False)} == set(range(1000, 5000))


def test_a_filter_passes_a_group_whose_node_it_refuses() -> None:
    # On the index itself: the filter accepts one twin only, never the node.
    rng = np.random.default_rng(5)
    index = HnswIndex(8, Metric.EUCLIDEAN, HnswParams(16, 100, 64), 4096)
    index.add(rng.normal(size=(3000, 8)).astype(np.float32), list(range(3000)))
    index.add(np.full((50, 8), 2.0, np.float32), list(range(3000, 3050)))
    q = np.full((1, 8), 2.0, np.float32)

    def wanted(slot: int) -> bool:
        return slot == 3037 or slot < 3000

    hits = index.search(q, 5, None, wanted)
    assert hits is not None and hits[0] == (3037, 0.0)
    assert all(slot < 3000 for slot, _ in hits[1:])
    many = index.search_many(np.vstack([q, q]), 50, None)
    assert many is not None and all({s for s, _ in hits} == set(range(3000, 3050)) for hits in many)


def test_more_wanted_than_distinct_vectors() -> None:
    # 3,000 points, 3 distinct vectors: a search for 10 finds 10 (from 3 graph nodes).
    index = HnswIndex(4, Metric.EUCLIDEAN, HnswParams(16, 100, 64), 4096)
    vectors = np.repeat(np.eye(4, dtype=np.float32)[:3], 1000, axis=0)
    index.add(vectors, list(range(3000)))
    hits = index.search(np.eye(4, dtype=np.float32)[:1], 10, None, None)
    assert hits is not None and len(hits) == 10 and all(s < 1000 for s, _ in hits)


def test_groups_are_found_again_after_a_snapshot(tmp_path: Path) -> None:
    coll, v = copies_collection()
    coll.delete([10_000, 10_001])  # the node and its first heir gone before the snapshot
    coll.fold()
    coll.settle()
    coll.export(tmp_path)
    back = Collection.restore(tmp_path, "t", coll.config)
    assert {p.id for p in back.search(v, 58, with_payload=False)} == set(range(10_002, 10_060))
    for pid in range(10_002, 10_059):  # and deletes after it promote twins as before
        back.delete([pid])
    assert back.search(v, 1, with_payload=False)[0].id == 10_059


def test_a_group_missing_from_a_loaded_graph_is_linked_again(tmp_path: Path) -> None:
    vectors = np.zeros((4096, 4), np.float32)
    vectors[:3000] = np.random.default_rng(2).normal(size=(3000, 4))
    vectors[3000:3020] = 5.0  # a group the saved graph never held
    index = HnswIndex(4, Metric.EUCLIDEAN, HnswParams(16, 100, 64), 4096)
    index.add(vectors[:3000], list(range(3000)))
    index.save(tmp_path / "g.bin")
    back = HnswIndex.load(
        tmp_path / "g.bin", 4, Metric.EUCLIDEAN, HnswParams(16, 100, 64), vectors, list(range(3020))
    )
    assert back.staged == 1
    hits = back.search(vectors[3000:3001], 20, None, None)
    assert hits is not None and {s for s, _ in hits} == set(range(3000, 3020))


def test_named_vectors_keep_groups_too() -> None:
    rng = np.random.default_rng(4)
    raw = {"named_vectors": {"t": {"dimension": 8, "metric": "euclidean"}}}
    coll = collection(Metric.DOT, dim=2, **raw)
    n = 9000
    text = np.vstack([rng.normal(size=(1500, 8)), np.full((n - 1500, 8), FAR)]).astype(np.float32)
    named: list[NamedRows] = [{"t": text[i : i + 1]} for i in range(n)]
    coll.upsert(list(range(n)), rng.normal(size=(n, 2)).astype(np.float32), [{}] * n, named)
    assert recall(coll, rng.normal(size=(100, 8)), Metric.EUCLIDEAN, using="t") >= 0.95
    # A copy given another named vector leaves the group; the others stay found.
    coll.update_vectors([1500], None, [{"t": np.zeros((1, 8), np.float32)}])
    hits = coll.search(np.full((1, 8), FAR, np.float32), n - 1501, using="t")
    assert {p.id for p in hits} == set(range(1501, n))
    assert coll.search(np.zeros((1, 8), np.float32), 1, using="t")[0].id == 1500


def test_the_node_table_answers_as_a_dict_would_across_merges() -> None:
    rng = np.random.default_rng(8)
    table, model = NodeTable(), dict[int, int]()
    keys = rng.integers(-(2**63), 2**63 - 1, size=3000, dtype=np.int64).tolist()
    for step in range(30_000):
        key = keys[int(rng.integers(len(keys)))]
        if rng.random() < 0.3:
            table.pop(key)
            model.pop(key, None)
        else:
            table.put(key, step)
            model[key] = step
        if step % 997 == 0:
            probe = keys[:500]
            assert table.get_many(probe) == [model.get(k, NONE) for k in probe]
    assert [table.get(k) for k in keys] == [model.get(k, NONE) for k in keys]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_writes_over_few_distinct_vectors_keep_every_point_findable(
    seed: int, tmp_path: Path
) -> None:
    # Inserts, updates, deletes, folds and a snapshot round trip over points drawn from
    # 40 distinct vectors (groups form, lose their nodes, move): after each step a search
    # for each vector finds exactly the live points holding it, all at its score.
    rng = np.random.default_rng(seed)
    palette = rng.normal(size=(40, 8)).astype(np.float32)
    coll = collection(Metric.EUCLIDEAN)
    insert(coll, 0, rng.normal(size=(3000, 8)), Metric.EUCLIDEAN)  # (past exact search)
    held: dict[int, int] = {}  # point id -> its palette row
    for step in range(60):
        ids = [int(i) for i in rng.choice(np.arange(10_000, 10_400), size=20, replace=False)]
        action = rng.random()
        if action < 0.45:
            rows = rng.integers(40, size=len(ids))
            coll.upsert(list(ids), palette[rows], [{}] * len(ids))  # type: ignore[arg-type]
            held.update(zip(ids, rows.tolist(), strict=True))
        elif action < 0.7:
            for pid in (i for i in ids if i in held):
                held[pid] = int(rng.integers(40))
                coll.update(pid, palette[held[pid] : held[pid] + 1], None)
        else:
            coll.delete(ids)  # type: ignore[arg-type]
            for pid in ids:
                held.pop(pid, None)
        if step % 9 == 4:
            coll.fold()
        if step == 30:
            coll.fold()
            coll.settle()
            coll.export(tmp_path)
            coll = Collection.restore(tmp_path, "t", coll.config)
        index = coll._index  # (the graph itself: a search falling back to exact would pass)
        assert index is not None
        for row in set(held.values()):
            want = {pid for pid, r in held.items() if r == row}
            hits = index.search(palette[row : row + 1], len(want), None, None)
            assert hits is not None, (seed, step, row)
            assert {coll._ids[slot] for slot, _ in hits} == want, (seed, step, row)
            assert {score for _, score in hits} == {0.0}
