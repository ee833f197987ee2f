"""Sparse vectors in the engine: validation, scoring (plain and IDF) against a brute
force, every write that carries them, the log and snapshots."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.logs import logged
from vectorizer.engine import records, sparse
from vectorizer.engine.collection import Collection
from vectorizer.engine.config import CollectionConfig, HnswParams, IndexKind
from vectorizer.engine.filters import compile_filter
from vectorizer.engine.sparse import SparseIndex, SparseParams, SparseVector
from vectorizer.engine.store import Store, StoreOptions
from vectorizer.engine.wal import FsyncPolicy
from vectorizer.errors import ValidationError


def sv(pairs: dict[int, float]) -> SparseVector:
    return sparse.vector({"indices": list(pairs), "values": list(pairs.values())}, "v")


def random_pairs(rnd: random.Random, vocabulary: int = 40, most: int = 8) -> dict[int, float]:
    picked = rnd.sample(range(vocabulary), rnd.randint(1, most))
    return {i: round(rnd.uniform(0.1, 2.0), 3) for i in picked}


def brute(
    rows: dict[Any, dict[int, float]], query: dict[int, float], idf: bool = False
) -> dict[Any, float]:
    """Scores of the rows sharing an index with the query (Qdrant's rule and formula)."""
    n = len(rows)
    weights = dict(query)
    if idf:
        for i in weights:
            df = sum(1 for r in rows.values() if i in r)
            weights[i] *= math.log((n - df + 0.5) / (df + 0.5) + 1)
    out = {}
    for pid, row in rows.items():
        shared = [weights[i] * row[i] for i in weights if i in row]
        if shared:
            out[pid] = sum(shared)
    return out


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ([1, 2], "v"),
        ({"indices": [1]}, "v"),
        ({"indices": [1, 2], "values": [1.0]}, "v"),
        ({"indices": [-1], "values": [1.0]}, "v.indices[0]"),
        ({"indices": [2**32], "values": [1.0]}, "v.indices[0]"),
        ({"indices": [True], "values": [1.0]}, "v.indices[0]"),
        ({"indices": [1.5], "values": [1.0]}, "v.indices[0]"),
        ({"indices": [1], "values": [float("nan")]}, "v.values[0]"),
        ({"indices": [1], "values": ["1"]}, "v.values[0]"),
        ({"indices": [1], "values": [1e39]}, "v.values"),
        ({"indices": [3, 1, 3], "values": [1, 2, 3]}, "v.indices"),
        ({"indices": [1], "values": [1], "extra": 1}, "v"),
    ],
)
def test_bad_sparse_vectors_are_refused_naming_the_field(raw: Any, field: str) -> None:
    with pytest.raises(ValidationError) as exc:
        sparse.vector(raw, "v")
    assert exc.value.field == field


def test_a_sparse_vector_is_sorted_by_index_and_kept_as_float32() -> None:
    vec = sparse.vector({"indices": [9, 2, 5], "values": [0.1, 2, -3]}, "v")
    assert vec.to_json() == {"indices": [2, 5, 9], "values": [2.0, -3.0, pytest.approx(0.1)]}
    assert SparseVector.from_record(vec.to_record()) == vec
    assert len(sparse.vector({"indices": [], "values": []}, "v")) == 0


def test_configs_and_names() -> None:
    assert sparse.parse_configs({"bm25": {"modifier": "idf"}, "s": {}}) == {
        "bm25": SparseParams("idf"),
        "s": SparseParams(),
    }
    for bad, field in (
        ({"": {}}, "sparse_vectors"),
        ({"a/b": {}}, "sparse_vectors"),
        ({"a": {"modifier": "bm42"}}, "sparse_vectors.a.modifier"),
        ({"a": {"index": {}}}, "sparse_vectors.a"),
        ([], "sparse_vectors"),
    ):
        with pytest.raises(ValidationError) as exc:
            sparse.parse_configs(bad)
        assert exc.value.field == field
    config = CollectionConfig.parse(
        {"dimension": 4, "sparse_vectors": {"bm25": {"modifier": "idf"}}}, HnswParams()
    )
    assert config.to_dict()["sparse_vectors"] == {"bm25": {"modifier": "idf"}}
    assert CollectionConfig.parse(config.to_dict(), HnswParams()) == config


@pytest.mark.parametrize("idf", [False, True])
def test_index_scores_as_a_brute_force_through_puts_and_removes(idf: bool) -> None:
    rnd = random.Random(7)
    index = SparseIndex(SparseParams("idf" if idf else "none"))
    rows: dict[int, dict[int, float]] = {}
    for step in range(600):
        slot = rnd.randrange(80)
        if rnd.random() < 0.2:
            index.remove(slot)
            rows.pop(slot, None)
        else:
            pairs = random_pairs(rnd)
            index.put(slot, sv(pairs))
            rows[slot] = pairs
        if step % 50 == 0:
            query = random_pairs(rnd)
            slots, scores = index.scores(sv(query))
            got = dict(zip(slots.tolist(), scores.tolist(), strict=True))
            want = brute(rows, query, idf)
            assert got.keys() == want.keys()
            for slot_, score in want.items():
                assert got[slot_] == pytest.approx(score, rel=1e-5)
    assert index.postings == sum(len(r) for r in rows.values())
    assert len(index) == len(rows)


@pytest.mark.parametrize("idf", [False, True])
def test_posting_arrays_take_in_writes_between_reads(idf: bool) -> None:
    """Long posting lists read after a few writes each time: the changes are merged
    into the arrays (not made again), and the scores stay those of a brute force."""
    rnd = random.Random(3)
    index = SparseIndex(SparseParams("idf" if idf else "none"))
    rows: dict[int, dict[int, float]] = {}
    for slot in range(2000):
        rows[slot] = {0: rnd.uniform(0.1, 2)} | random_pairs(rnd, vocabulary=8)
        index.put(slot, sv(rows[slot]))
    index.scores(sv({0: 1.0, 1: 1.0}))  # (the arrays of 0 and 1 made)
    made = index._arrays[0]
    for step in range(200):
        slot = rnd.randrange(2100)
        kind = rnd.random()
        if kind < 0.3:
            index.remove(slot)
            rows.pop(slot, None)
        elif kind < 0.4:  # removed and given again before the next read
            index.put(slot, None)
            rows[slot] = {0: 1.5}
            index.put(slot, sv(rows[slot]))
        else:
            rows[slot] = {0: rnd.uniform(0.1, 2)} | random_pairs(rnd, vocabulary=8)
            index.put(slot, sv(rows[slot]))
        if step % 3 == 0:
            query = {0: 1.0, 1: 0.5, rnd.randrange(8): 2.0}
            slots, scores = index.scores(sv(query))
            got = dict(zip(slots.tolist(), scores.tolist(), strict=True))
            want = brute(rows, query, idf)
            assert got.keys() == want.keys()
            assert all(got[k] == pytest.approx(v, rel=1e-5) for k, v in want.items())
            assert not index._arrays[0].changes
    assert index._arrays[0] is not made  # (merged many times over)
    assert index._arrays[0].slots.size == sum(1 for r in rows.values() if 0 in r)


def collection(index: IndexKind = IndexKind.HNSW, modifier: str = "none") -> Collection:
    params = SparseParams(modifier)  # type: ignore[arg-type]
    config = CollectionConfig(
        2, index=index, hnsw=HnswParams(8, 32, 32), sparse_vectors={"s": params, "t": params}
    )
    return Collection("c", config, capacity=8)


def dense(n: int) -> np.ndarray:
    return np.tile(np.asarray([[1.0, 0.0]], dtype=np.float32), (n, 1))


@pytest.mark.parametrize("index", list(IndexKind))
def test_sparse_vectors_follow_every_write(index: IndexKind) -> None:
    c = collection(index)
    c.upsert([1, 2, 3], dense(3), [{"k": 1}, {"k": 2}, None], [{"s": sv({1: 1.0})}, {}, {}])
    assert c.named_of(1) == {"s": sv({1: 1.0})} and c.named_of(2) == {}
    c.update(1, dense(1), {"k": 9})  # a new dense vector (a new slot): its sparse ones go along
    assert c.named_of(1) == {"s": sv({1: 1.0})}
    c.update_vectors([1, 2], dense(2), [{"t": sv({2: 2.0})}, {"s": sv({1: 3.0})}])
    assert c.named_of(1) == {"s": sv({1: 1.0}), "t": sv({2: 2.0})}  # the rest kept
    c.update_vectors([3], None, [{"t": sv({1: 5.0})}])  # sparse only: no new slot
    assert [p.id for p in c.search_sparse("s", sv({1: 1.0}), 10)] == [2, 1]
    assert [(p.id, p.score) for p in c.search_sparse("t", sv({1: 1.0, 2: 1.0}), 10)] == [
        (3, 5.0),
        (1, 2.0),
    ]
    c.delete_vectors([1, 3], ["t"])
    assert c.named_of(1) == {"s": sv({1: 1.0})} and c.named_of(3) == {}
    c.upsert([1], dense(1), [None])  # an upsert replaces the whole point
    assert c.named_of(1) == {}
    c.delete([2])
    assert c.search_sparse("s", sv({1: 1.0}), 10) == []
    assert all(i.postings == 0 for i in c._sparse.values())


def test_search_sparse_filters_thresholds_offsets_and_ties_to_overlap() -> None:
    c = collection(IndexKind.EXACT)
    rnd = random.Random(3)
    rows = {pid: random_pairs(rnd) for pid in range(200)}
    c.upsert(
        list(rows),
        dense(200),
        [{"even": pid % 2 == 0} for pid in rows],
        [{"s": sv(r)} for r in rows.values()],
    )
    query = random_pairs(rnd)
    want = sorted(brute(rows, query).items(), key=lambda kv: -kv[1])
    got = c.search_sparse("s", sv(query), 10, offset=5)
    assert [p.score for p in got] == pytest.approx([s for _, s in want[5:15]], rel=1e-5)
    evens = compile_filter({"must": [{"key": "even", "match": {"value": True}}]})
    got = c.search_sparse("s", sv(query), 1000, predicate=evens)
    assert {p.id for p in got} == {pid for pid, _ in want if pid % 2 == 0}
    cut = float(np.float32(want[20][1]))  # (scores are float32, compared as such)
    kept = c.search_sparse("s", sv(query), 1000, threshold=cut)
    assert len(kept) >= 21 and all(p.score >= cut for p in kept)
    assert c.search_sparse("s", sv({999: 1.0}), 10) == []  # no point shares an index
    with pytest.raises(ValidationError) as exc:
        c.has_sparse("u", "using")
    assert exc.value.field == "using" and "sparse: 's', 't'" in str(exc.value)


def test_idf_collection_search_matches_the_brute_force() -> None:
    c = collection(IndexKind.EXACT, "idf")
    rnd = random.Random(11)
    rows = {pid: random_pairs(rnd, vocabulary=15) for pid in range(100)}
    c.upsert(list(rows), dense(100), [None] * 100, [{"s": sv(r)} for r in rows.values()])
    c.upsert([500], dense(1), [None])  # without the vector: not counted in n
    query = random_pairs(rnd, vocabulary=15)
    want = brute(rows, query, idf=True)
    got = {p.id: p.score for p in c.search_sparse("s", sv(query), 1000)}
    assert got.keys() == want.keys()
    assert all(got[k] == pytest.approx(v, rel=1e-5) for k, v in want.items())


async def test_sparse_vectors_survive_the_log_and_snapshots(tmp_path: Path) -> None:
    options = StoreOptions(fsync=FsyncPolicy("never"), snapshot_interval_s=0)
    s = Store(tmp_path, options)
    await s.open()
    await s.create_collection("c", {"dimension": 2, "sparse_vectors": {"s": {}, "t": {}}})
    rows = [{"s": sv({1: 1.0, 7: 0.5})}, {"t": sv({2: 2.0})}, {}]
    await s.upsert_if("c", [1, 2, 3], dense(3), [None] * 3, named=rows)
    await s.update_vectors("c", [2, 3], [None, [0.0, 1.0]], named=[{"s": sv({1: 4.0})}, {}])
    await s.delete_vectors("c", [2], None, ["t"])
    snap = await s.snapshot()
    await s.upsert_if("c", [4], dense(1), [None], named=[{"t": sv({9: 1.0})}])
    with pytest.raises(ValidationError) as exc:
        await s.upsert_if("c", [5], dense(1), [None], named=[{"u": sv({1: 1.0})}])
    assert exc.value.field == "vectors[0].vector.u"
    with pytest.raises(ValidationError):
        await s.delete_vectors("c", [1], None, [""])
    await s.close(take_snapshot=False)
    expected = {1: rows[0], 2: {"s": sv({1: 4.0})}, 3: {}, 4: {"t": sv({9: 1.0})}}

    r = Store(tmp_path, options)
    await r.open()  # the snapshot, then the log after it
    assert snap.sequence < r.sequence
    c = r.collection("c")
    assert {pid: c.named_of(pid) for pid in expected} == expected
    assert c.get(3) is not None and c.get(3).vector == [0.0, 1.0]  # type: ignore[union-attr]
    await r.snapshot()
    await r.close(take_snapshot=False)
    r = Store(tmp_path, options)
    await r.open()  # the snapshot alone
    c = r.collection("c")
    assert {pid: c.named_of(pid) for pid in expected} == expected
    assert [p.id for p in c.search_sparse("s", sv({1: 1.0}), 10)] == [2, 1]
    await r.close(take_snapshot=False)


async def test_a_collection_snapshot_file_carries_the_sparse_vectors(tmp_path: Path) -> None:
    options = StoreOptions(fsync=FsyncPolicy("never"), snapshot_interval_s=0)
    s = Store(tmp_path, options)
    await s.open()
    await s.create_collection("c", {"dimension": 2, "sparse_vectors": {"s": {"modifier": "idf"}}})
    rnd = random.Random(5)
    rows = [{"s": sv(random_pairs(rnd))} if i % 3 else {} for i in range(2500)]
    await s.upsert_if("c", list(range(2500)), dense(2500), [None] * 2500, named=rows)
    made = await s.snapshot_collection("c")
    await s.recover_collection("copy", s.collection_snapshots_dir / "c" / made.name)
    copy, original = s.collection("copy"), s.collection("c")
    assert copy.config == original.config
    assert all(copy.named_of(pid) == rows[pid] for pid in range(2500))
    query = sv(random_pairs(rnd))
    assert copy.search_sparse("s", query, 20) == original.search_sparse("s", query, 20)
    await s.close(take_snapshot=False)


async def test_records_with_sparse_vectors_go_under_kinds_older_code_refuses(
    tmp_path: Path,
) -> None:
    """Code before sparse vectors ignores fields it does not know (it would drop the
    vectors); it refuses kinds it does not know (a replica holds until upgraded)."""
    s = Store(tmp_path, StoreOptions(fsync=FsyncPolicy("never"), snapshot_interval_s=0))
    await s.open()
    await s.create_collection("plain", {"dimension": 2})
    await s.create_collection("c", {"dimension": 2, "sparse_vectors": {"s": {}}})
    await s.create_collection("n", {"dimension": 2, "vector_name": "text-dense"})
    await s.upsert_if("c", [1], dense(1), [None])
    await s.upsert_if("c", [2], dense(1), [None], named=[{"s": sv({1: 1.0})}])
    await s.update_vectors("c", [1], [[0.0, 1.0]])
    await s.update_vectors("c", [1], [None], named=[{"s": sv({2: 1.0})}])
    await s.delete_vectors("c", [1], None, ["s"])
    log = logged(s)
    kinds = [records.decode(body)[0]["op"] for _, body in log]
    assert kinds == [
        "create_collection",
        "create_collection_v2",
        "create_collection_v2",
        "upsert",
        "upsert_v2",
        "update_vectors",
        "update_vectors_v2",
        "delete_vectors",
    ]
    await s.close(take_snapshot=False)
    r = Store(tmp_path, StoreOptions(fsync=FsyncPolicy("never"), snapshot_interval_s=0))
    await r.open()  # (and the new code replays them)
    assert r.collection("c").named_of(2) == {"s": sv({1: 1.0})}
    assert r.collection("n").config.vector_name == "text-dense"
    await r.close(take_snapshot=False)
