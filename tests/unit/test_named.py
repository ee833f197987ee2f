"""Named dense vectors beside a collection's own: config, the engine (searches of each
vector, every write, graphs and exact search, growth), the log and snapshots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.logs import logged
from vectorizer.engine import records
from vectorizer.engine.collection import EXACT_BELOW, Collection, NamedRows
from vectorizer.engine.config import CONFIG_KEYS, CollectionConfig, HnswParams, IndexKind, Metric
from vectorizer.engine.filters import compile_filter
from vectorizer.engine.named import MultiVector
from vectorizer.engine.sparse import SparseVector
from vectorizer.engine.store import Store, StoreOptions
from vectorizer.engine.wal import FsyncPolicy
from vectorizer.errors import ValidationError

DIM, TEXT = 4, 6


def config(index: str = "hnsw", **extra: Any) -> CollectionConfig:
    raw = {
        "dimension": DIM,
        "metric": "dot",
        "named_vectors": {
            "text": {"dimension": TEXT, "metric": "cosine", "index": index},
            "e": {"dimension": 2, "metric": "euclidean", "index": "exact"},
        },
        **extra,
    }
    return CollectionConfig.parse(raw, HnswParams())


def rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray[Any, Any]:
    return rng.standard_normal((n, dim)).astype(np.float32)


def unit(m: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    out: np.ndarray[Any, Any] = m / np.linalg.norm(m, axis=1, keepdims=True)
    return out


def fill(c: Collection, n: int, seed: int = 0) -> dict[int, np.ndarray[Any, Any]]:
    """``n`` points; even ids have "text" (unit rows, as the store prepares them)."""
    rng = np.random.default_rng(seed)
    text = unit(rows(rng, n, TEXT))
    named: list[NamedRows] = [{"text": text[i : i + 1]} if i % 2 == 0 else {} for i in range(n)]
    c.upsert(list(range(n)), rows(rng, n, DIM), [{"i": i} for i in range(n)], named)
    return {i: text[i] for i in range(0, n, 2)}


def brute(text: dict[int, np.ndarray[Any, Any]], q: np.ndarray[Any, Any], k: int) -> list[int]:
    ids = sorted(text)
    scores = np.asarray([text[i] @ q for i in ids])
    return [ids[j] for j in np.argsort(-scores, kind="stable")[:k]]


def test_config_round_trips_and_refuses_clashes() -> None:
    c = config()
    assert CollectionConfig.parse(c.to_dict(), HnswParams()) == c
    full = config(
        payload_indexes={"k": "keyword"}, sparse_vectors={"sp": {}}, vector_name="own"
    ).to_dict()
    assert set(full) == CONFIG_KEYS  # (a recovered file's keys are checked against them)
    assert c.named_vectors["e"].index is IndexKind.EXACT and c.main.metric is Metric.DOT
    for raw, field in (
        ({"named_vectors": {"a/b": {"dimension": 2}}}, "named_vectors"),
        ({"named_vectors": {"t": {"dimension": 0}}}, "named_vectors.t.dimension"),
        ({"named_vectors": {"t": {"dimension": 2, "metric": "l1"}}}, "named_vectors.t.metric"),
        ({"named_vectors": {"t": {"dimension": 2, "hnsw": {"m": 1}}}}, "named_vectors.t.hnsw.m"),
        ({"named_vectors": {"t": {"dimension": 2, "colour": 1}}}, "named_vectors.t.colour"),
        (
            {"named_vectors": {"t": {"dimension": 2}}, "sparse_vectors": {"t": {}}},
            "sparse_vectors.t",
        ),
        ({"named_vectors": {"t": {"dimension": 2}}, "vector_name": "t"}, "named_vectors.t"),
        ({"named_vectors": [1]}, "named_vectors"),
    ):
        with pytest.raises(ValidationError) as exc:
            CollectionConfig.parse({"dimension": 2, **raw}, HnswParams())
        assert exc.value.field == field, raw


@pytest.mark.parametrize(("index", "n"), [("hnsw", 5000), ("exact", 300), ("hnsw", 300)])
def test_a_search_of_a_named_vector_sees_the_points_that_have_it(index: str, n: int) -> None:
    """(5,000 points: 2,500 with "text", past the exact-search threshold: its graph)"""
    c = Collection("c", config(index))
    text = fill(c, n)
    assert (len(text) > EXACT_BELOW) == (n == 5000)
    rng = np.random.default_rng(9)
    found = 0
    for q in unit(rows(rng, 20, TEXT)):
        want = brute(text, q, 10)
        got = c.search(q[None, :], 10, using="text")
        exact = c.search(q[None, :], 10, using="text", exact_search=True)
        assert [p.id for p in exact] == want
        assert all(p.id % 2 == 0 for p in got)  # (only points with "text")
        found += len({p.id for p in got} & set(want))
        evens = compile_filter({"must": [{"key": "i", "range": {"lt": n // 2}}]})
        filtered = c.search(q[None, :], 10, using="text", predicate=evens)
        assert all(p.id % 2 == 0 and p.id < n // 2 for p in filtered) and len(filtered) == 10
    assert found >= 0.95 * 200
    many = c.search_many(unit(rows(rng, 3, TEXT)), 5, using="text", exact_search=True)
    assert all(len(hits) == 5 for hits in many)
    assert len(c.search(unit(rows(rng, 1, TEXT)), n, using="text")) == len(text)
    with pytest.raises(ValidationError):  # (the views check the name first, too)
        c.search(unit(rows(rng, 1, TEXT)), 3, using="nope")


def test_every_write_keeps_a_points_named_vectors_as_it_should() -> None:
    c = Collection("c", config())
    fill(c, 3000)  # (with graphs: an update of the own vector moves a point's slot)
    rng = np.random.default_rng(4)
    t0 = c.named_of(0)["text"]
    c.update(0, rows(rng, 1, DIM), None)  # its own vector: "text" moves with it
    assert np.array_equal(c.named_of(0)["text"], t0)
    assert c.search(t0, 1, using="text")[0].id == 0
    new = unit(rows(rng, 1, TEXT))
    c.update_vectors([2], None, [{"text": new}])  # "text" alone, in place
    assert np.array_equal(c.named_of(2)["text"], new)
    assert c.search(new, 1, using="text")[0].id == 2
    c.update_vectors([4], rows(rng, 1, DIM), [{"e": rows(rng, 1, 2)}])  # own + "e": "text" kept
    assert set(c.named_of(4)) == {"text", "e"}
    c.delete_vectors([0, 4], ["text"])
    assert "text" not in c.named_of(0) and set(c.named_of(4)) == {"e"}
    assert all(p.id not in (0, 4) for p in c.search(t0, 50, using="text"))
    c.upsert([6], rows(rng, 1, DIM), [None])  # an upsert replaces: its named vectors gone
    assert c.named_of(6) == {}
    c.delete([8])
    assert all(p.id != 8 for p in c.search(t0, 3000, using="text"))
    has = compile_filter({"must": [{"has_vector": "text"}]})
    assert c.count(has) == 1500 - 4  # (0, 4, 6 and 8 lost it)


def test_an_empty_sparse_vector_and_a_named_dense_one_side_by_side() -> None:
    c = Collection("c", config(sparse_vectors={"s": {}}))
    fill(c, 10)
    c.delete_vectors([0, 1], ["s", "text"])  # (no point has "s" yet)
    assert "text" not in c.named_of(0)
    c.update_vectors(
        [1], None, [{"s": SparseVector(np.array([1], np.uint32), np.ones(1, np.float32))}]
    )
    assert set(c.named_of(1)) == {"s"}


def test_growing_past_capacity_keeps_named_vectors(tmp_path: Path) -> None:
    c = Collection("c", config(), capacity=8)
    text = fill(c, 100)
    assert all(np.array_equal(c.named_of(i)["text"][0], v) for i, v in text.items())
    export = tmp_path / "x"
    export.mkdir()
    c.export(export)
    assert {p.name for p in export.iterdir()} >= {
        "named-0.vectors.npy",
        "named-0.present.npy",
        "named-0.hnsw.bin",
        "named-1.vectors.npy",
        "named-1.present.npy",
    }
    copy = Collection.restore(export, "c", c.config)
    q = unit(rows(np.random.default_rng(1), 1, TEXT))
    assert copy.search(q, 10, using="text") == c.search(q, 10, using="text")
    assert all(np.array_equal(copy.named_of(i)["text"][0], v) for i, v in text.items())


def dense(n: int) -> list[list[float]]:
    return [[1.0, float(i), 0.0, 1.0] for i in range(n)]


async def test_named_vectors_survive_the_log_and_snapshots_under_a_new_kind(
    tmp_path: Path,
) -> None:
    """Records with named dense vectors go under kinds older code refuses (v3): code
    from before would drop them silently."""
    options = StoreOptions(fsync=FsyncPolicy("never"), snapshot_interval_s=0)
    s = Store(tmp_path, options)
    await s.open()
    await s.create_collection("c", config().to_dict())
    await s.upsert_if("c", [1, 2], dense(2), [None, None], named=[{"text": [1.0] * TEXT}, {}])
    await s.upsert_if("c", [3], dense(1), [None])
    await s.update_vectors("c", [2], [None], named=[{"e": [3.0, 4.0]}])
    await s.delete_vectors("c", [1], None, ["text"])
    log = logged(s)
    kinds = [records.decode(body)[0]["op"] for _, body in log]
    assert kinds == [
        "create_collection_v3",
        "upsert_v3",
        "upsert",
        "update_vectors_v3",
        "delete_vectors",
    ]
    await s.close(take_snapshot=False)
    r = Store(tmp_path, options)
    await r.open()  # the log replayed
    assert r.collection("c").named_of(1) == {}
    assert r.collection("c").named_of(2)["e"].tolist() == [[3.0, 4.0]]
    await r.snapshot()
    await r.update_vectors("c", [3], [None], named=[{"text": [0.0, 2.0, 0, 0, 0, 0]}])
    await r.close(take_snapshot=False)
    r = Store(tmp_path, options)
    await r.open()  # the snapshot, then the log after it
    assert r.collection("c").named_of(2)["e"].tolist() == [[3.0, 4.0]]
    assert r.collection("c").named_of(3)["text"].tolist() == [[0.0, 1.0, 0, 0, 0, 0]]
    await r.close(take_snapshot=False)


async def test_named_vectors_are_checked_against_their_config(tmp_path: Path) -> None:
    s = Store(tmp_path, StoreOptions(fsync=FsyncPolicy("never"), snapshot_interval_s=0))
    await s.open()
    await s.create_collection("c", config().to_dict())
    sv = SparseVector(np.array([1], np.uint32), np.ones(1, np.float32))
    for given, field in (
        ({"text": [1.0] * 3}, "points[0].vector.text"),
        ({"e": [float("nan"), 1.0]}, "points[0].vector.e"),
        ({"text": sv}, "points[0].vector.text"),
        ({"nope": [1.0]}, "points[0].vector.nope"),
    ):
        with pytest.raises(ValidationError) as exc:
            await s.upsert_if("c", [1], dense(1), [None], field="points", named=[given])
        assert exc.value.field is not None and exc.value.field.startswith(field), given
    assert len(s.collection("c")) == 0
    await s.close(take_snapshot=False)


async def test_vectors_added_and_dropped_are_logged_and_replayed(tmp_path: Path) -> None:
    options = StoreOptions(fsync=FsyncPolicy("never"), snapshot_interval_s=0)
    s = Store(tmp_path, options)
    await s.open()
    await s.create_collection("c", {"dimension": 2, "vector_name": "own"})
    await s.upsert_if("c", [1, 2], [[1.0, 0.0], [0.0, 1.0]], [None, None])
    has_x = compile_filter({"must": [{"has_vector": "x"}]})
    assert has_x is not None and s.collection("c").count(has_x) == 0
    await s.add_vector("c", "x", {"dimension": 3, "metric": "dot"}, None)
    await s.add_vector("c", "kw", None, {"modifier": "idf"})
    await s.update_vectors("c", [1], [None], named=[{"x": [1.0, 2.0, 3.0]}])
    assert s.collection("c").count(has_x) == 1  # (the same filter, bound again)
    for args, field in (
        (("x", {"dimension": 3}, None), "vector_name"),  # (taken)
        (("own", {"dimension": 3}, None), "vector_name"),  # (the collection's own)
        (("y", {"dimension": 0}, None), "dense.dimension"),
        (("y", None, {"modifier": "bm42"}), "sparse.modifier"),
        (("y", None, None), "config"),
        (("a/b", {"dimension": 3}, None), "vector_name"),
    ):
        with pytest.raises(ValidationError) as exc:
            await s.add_vector("c", *args)
        assert exc.value.field == field, args
    with pytest.raises(ValidationError):
        await s.drop_vector("c", "")  # (the collection's own)
    before = s.sequence
    assert await s.drop_vector("c", "nothing") == before  # (nothing logged)
    await s.drop_vector("c", "kw")
    log = logged(s)
    kinds = [records.decode(body)[0]["op"] for _, body in log]
    assert kinds[-4:] == ["add_vector", "add_vector", "update_vectors_v3", "drop_vector"]
    await s.close(take_snapshot=False)
    r = Store(tmp_path, options)
    await r.open()
    c = r.collection("c")
    assert list(c.config.named_vectors) == ["x"] and not c.config.sparse_vectors
    assert c.named_of(1)["x"].tolist() == [[1.0, 2.0, 3.0]]
    await r.close(take_snapshot=False)


def test_a_batch_of_a_vector_dropped_meanwhile_is_a_validation_error() -> None:
    """A batched search is checked when it joins and run a loop turn later: the vector
    may be gone by then, which is the caller's 4xx, not a KeyError."""
    c = Collection("c", config())
    fill(c, 40)
    c.drop_vector("text")
    with pytest.raises(ValidationError, match="no dense vector named 'text'") as exc:
        c.search_many(unit(rows(np.random.default_rng(1), 2, TEXT)), 5, using="text")
    assert exc.value.field == "using"


def test_only_searches_showing_no_named_vector_are_batched() -> None:
    """Named vectors are read after the search: a batched one (which waits loop turns,
    writes landing meanwhile) would show them newer than its hits' payloads."""
    import msgspec

    from vectorizer.qdrant import models, schemas, searching

    c = Collection("c", config())
    fill(c, 40)
    plain = Collection("p", CollectionConfig.parse({"dimension": DIM}, HnswParams()))
    for coll, with_vector, batched in (
        (c, False, True),
        (c, [""], True),  # its own vector comes with the hits
        (c, True, False),
        (c, ["text"], False),
        (plain, True, True),  # no named vector to read
    ):
        raw = {"query": [1.0] * DIM, "limit": 3, "with_vector": with_vector}
        search = models.query_request(msgspec.convert(raw, schemas.QueryRequest), 10_000)
        assert (searching.plain_nearest(coll, search) is not None) == batched, with_vector


def multi_config() -> CollectionConfig:
    raw = {
        "dimension": 2,
        "named_vectors": {"m": {"dimension": 3, "metric": "dot", "multivector": True}},
    }
    return CollectionConfig.parse(raw, HnswParams())


def test_a_multivector_is_scored_by_max_sim_as_a_brute_force(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    c = Collection("c", multi_config(), capacity=4)  # (and grows)
    docs = {i: rows(rng, int(rng.integers(1, 5)), 3) for i in range(0, 60, 2)}
    named: list[NamedRows] = [{"m": MultiVector(docs[i])} if i in docs else {} for i in range(60)]
    c.upsert(list(range(60)), rows(rng, 60, 2), [{"i": i} for i in range(60)], named)
    query = rows(rng, 4, 3)

    def max_sim(d: np.ndarray[Any, Any]) -> float:
        return float((query @ d.T).max(axis=1).sum())

    want = sorted(docs, key=lambda i: -max_sim(docs[i]))
    got = c.search_multi("m", query, 10)
    assert [p.id for p in got] == want[:10]
    assert [p.score for p in got] == pytest.approx([max_sim(docs[i]) for i in want[:10]], rel=1e-5)
    evens = compile_filter({"must": [{"key": "i", "range": {"lt": 30}}]})
    assert [p.id for p in c.search_multi("m", query, 5, predicate=evens)] == [
        i for i in want if i < 30
    ][:5]
    assert [p.id for p in c.search_multi("m", query, 5, offset=3)] == want[3:8]
    c.delete_vectors([want[0]], ["m"])
    c.update(want[1], rows(rng, 1, 2), None)  # (its own vector: the multivector moves along)
    assert c.search_multi("m", query, 1)[0].id == want[1]
    assert len(c.search_multi("m", query, 100)) == len(docs) - 1
    export = tmp_path / "x"
    export.mkdir()
    c.fold()  # (as the store does before a snapshot)
    c.settle()
    c.export(export)
    copy = Collection.restore(export, "c", c.config)
    assert copy.search_multi("m", query, 100) == c.search_multi("m", query, 100)
    assert copy.named_of(want[1]) == c.named_of(want[1])
    with pytest.raises(ValidationError):
        c.search(query[:1], 3, using="m")  # (not a single vector's search)


async def test_multivectors_are_checked_and_logged(tmp_path: Path) -> None:
    options = StoreOptions(fsync=FsyncPolicy("never"), snapshot_interval_s=0)
    s = Store(tmp_path, options)
    await s.open()
    await s.create_collection("c", multi_config().to_dict())
    two = [[1.0, 2.0, 3.0], [0.0, 1.0, 0.5]]
    await s.upsert_if("c", [1], [[1.0, 0.0]], [None], named=[{"m": two}])
    for given, needle in (
        ([1.0, 2.0, 3.0], "a multivector is a list of vectors"),
        ([], "a multivector is a list of vectors"),
        ([[1.0, 2.0]], "dimension"),
        ([[1.0, float("inf"), 2.0]], "finite"),
    ):
        with pytest.raises(ValidationError) as exc:
            await s.upsert_if("c", [2], [[1.0, 0.0]], [None], named=[{"m": given}])
        assert needle in str(exc.value), given
    await s.close(take_snapshot=False)
    r = Store(tmp_path, options)
    await r.open()  # (replayed from the log)
    assert r.collection("c").named_of(1) == {"m": MultiVector(np.asarray(two, np.float32))}
    assert 2 not in r.collection("c")
    await r.close(take_snapshot=False)
    with pytest.raises(ValidationError):  # (Euclidean: MaxSim takes similarities)
        CollectionConfig.parse(
            {
                "dimension": 2,
                "named_vectors": {
                    "m": {"dimension": 2, "metric": "euclidean", "multivector": True}
                },
            },
            HnswParams(),
        )


def vectorless_config() -> CollectionConfig:
    """No vector of its own: "text" (with a graph) and "e" (exact), both optional."""
    return config(dimension=0)


def test_a_collection_without_its_own_vector_moves_points_its_graphs_hold() -> None:
    """Without a vector of its own, a point written again moves to a fresh slot when a
    graph holds its vectors (as with one: a fresh node costs a fraction of hnswlib's
    in-place relinking), its named vectors with it, kept where not given; a search of a
    named vector sees exactly the points that have it, through its graph too. Without
    graphs it stays in its slot."""
    c = Collection("c", vectorless_config())
    n = EXACT_BELOW + 600  # (the graph of "text")
    rng = np.random.default_rng(3)
    text = unit(rows(rng, n, TEXT))
    none = np.zeros((n, 0), np.float32)
    c.upsert(list(range(n)), none, [None] * n, [{"text": text[i : i + 1]} for i in range(n)])
    slot = c._id_slots[5]
    moved = unit(rows(rng, 1, TEXT))
    e = rows(rng, 1, 2)
    c.upsert([5], none[:1], [{"p": 1}], [{"text": moved, "e": e}])
    assert c._id_slots[5] != slot and slot in c._free
    c.update_vectors([5], None, [{"e": 2 * e}])  # ("text" kept, moved along)
    c.update_vectors([6], None, [{"text": -text[7:8]}])
    c.delete_vectors([8], ["text"])
    assert c.named_of(5)["text"].tolist() == moved.tolist()
    assert c.named_of(5)["e"].tolist() == (2 * e).tolist()
    assert c.named_of(6)["text"].tolist() == (-text[7:8]).tolist()
    hits = c.search(moved, 3, using="text")
    assert hits[0].id == 5 and hits[0].payload == {"p": 1}
    assert all(h.id != 8 for h in c.search(text[8:9], 20, using="text"))
    assert c.search(text[7:8] * -1, 1, using="text")[0].id == 6
    assert c.search(2 * e, 1, using="e")[0].id == 5
    with pytest.raises(ValidationError) as exc:
        c.search(text[:1], 3)
    assert exc.value.field == "using" and "no dense vector of its own" in exc.value.message
    assert c.get(5) is not None and c.get(5).vector is None  # type: ignore[union-attr]
    exact = Collection("x", config(index="exact", dimension=0))
    exact.upsert([1], none[:1], [None], [{"text": moved}])
    slot = exact._id_slots[1]
    exact.upsert([1], none[:1], [None], [{"text": -moved}])
    assert exact._id_slots[1] == slot and exact.search(-moved, 1, using="text")[0].id == 1


async def test_a_collection_without_its_own_vector_is_logged_under_a_new_kind(
    tmp_path: Path,
) -> None:
    """Code from before would read ``dimension: 0`` as a broken record: v4 is refused
    as a kind it does not know, like the other versions."""
    options = StoreOptions(fsync=FsyncPolicy("never"), snapshot_interval_s=0)
    s = Store(tmp_path, options)
    await s.open()
    await s.create_collection("c", vectorless_config().to_dict())
    await s.upsert_if("c", [1, 2], [None, None], [None, {"k": 1}], named=[{"e": [1.0, 2.0]}, {}])
    with pytest.raises(ValidationError) as exc:
        await s.upsert_if("c", [3, 4], [None, [1.0] * DIM], [None, None])
    assert exc.value.field == "vectors[1]"
    with pytest.raises(ValidationError) as exc:
        await s.update_point("c", 1, [1.0] * DIM, None)
    assert exc.value.field == "vector"
    log = logged(s)
    assert [records.decode(body)[0]["op"] for _, body in log] == [
        "create_collection_v4",
        "upsert_v3",
    ]
    await s.close(take_snapshot=False)
    r = Store(tmp_path, options)
    await r.open()  # (replayed from the log)
    assert r.collection("c").named_of(1)["e"].tolist() == [[1.0, 2.0]]
    await r.snapshot()
    await r.close(take_snapshot=False)
    r = Store(tmp_path, options)
    await r.open()  # (from the snapshot)
    assert not r.collection("c").config.has_own
    assert r.collection("c").get(2) is not None and r.collection("c").named_of(2) == {}
    await r.close(take_snapshot=False)


async def test_a_vector_added_again_as_it_is_is_nothing_to_do(tmp_path: Path) -> None:
    """A vector added to a collection takes the collection's graph parameters (not the
    node's defaults), and adding it again with the same size and metric is nothing to
    do, whatever graph parameters it holds: a request cannot say them. Compared whole,
    a collection of m 32, or a vector of its own m 8, refused every such request."""
    s = Store(tmp_path, StoreOptions(fsync=FsyncPolicy("never"), snapshot_interval_s=0))
    await s.open()
    config = {"dimension": 0, "hnsw": {"m": 32}}
    config["named_vectors"] = {"own": {"dimension": 3, "hnsw": {"m": 8}}}
    await s.create_collection("c", config)
    await s.add_vector("c", "x", {"dimension": 3, "metric": "dot"}, None)
    assert s.collection("c").config.named_vectors["x"].hnsw.m == 32
    before = s.sequence
    for vector_name in ("x", "own"):
        metric = "dot" if vector_name == "x" else "cosine"
        got = await s.add_vector("c", vector_name, {"dimension": 3, "metric": metric}, None)
        assert got == s.sequence == before
    with pytest.raises(ValidationError):
        await s.add_vector("c", "x", {"dimension": 3, "metric": "cosine"}, None)
    await s.close(take_snapshot=False)
