"""Updated vectors wait in the HNSW index's delta buffer: searched exactly at once, folded
into the graph in batches, never lost across snapshots, restarts or concurrent reads."""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vectorizer.engine import exact, hnsw
from vectorizer.engine.collection import EXACT_BELOW, Collection
from vectorizer.engine.config import CollectionConfig, HnswParams, Metric
from vectorizer.engine.delta import DELTA_CAPACITY, DeltaBuffer
from vectorizer.engine.filters import compile_filter
from vectorizer.engine.store import Store, StoreOptions
from vectorizer.engine.wal import FsyncPolicy
from vectorizer.server import batching
from vectorizer.server.batching import SearchBatcher

N = EXACT_BELOW + 1000  # large enough that searches walk the graph


def batch_params(**overrides: Any) -> dict[str, Any]:
    """``SearchBatcher.search`` parameters: an unfiltered search without payloads."""
    params: dict[str, Any] = {
        "offset": 0,
        "ef": None,
        "exact_search": False,
        "threshold": None,
        "with_payload": False,
        "with_vector": False,
        "using": "",
    }
    return params | overrides


def make(
    metric: Metric = Metric.COSINE, n: int = N, seed: int = 0
) -> tuple[Collection, np.ndarray]:
    rng = np.random.default_rng(seed)
    vecs = metric.prepare(rng.normal(size=(n, 16)).astype(np.float32))
    coll = Collection("t", CollectionConfig(16, metric, hnsw=HnswParams(16, 100, 64)))
    coll.upsert(list(range(n)), vecs, [{"i": i, "even": i % 2 == 0} for i in range(n)])
    return coll, vecs


def fresh_vectors(metric: Metric, n: int, seed: int = 99) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return metric.prepare(rng.normal(size=(n, 16)).astype(np.float32) * 3)


@pytest.mark.parametrize("metric", list(Metric))
def test_buffer_scores_match_exact_scores(metric: Metric) -> None:
    rng = np.random.default_rng(1)
    vecs = rng.normal(size=(40, 8)).astype(np.float32)
    buf = DeltaBuffer(8, hnsw._SPACE[metric], capacity=64)
    for slot, v in enumerate(vecs):
        buf.add(v[None, :], slot + 100)
    assert buf.remove(105) and not buf.remove(105) and 105 not in buf
    held = [s for s in range(100, 140) if s != 105]
    assert sorted(buf.slots()) == held
    queries = rng.normal(size=(3, 8)).astype(np.float32)
    labels, distances = buf.nearest(queries, 1000)
    assert buf.nearest(queries, 3)[0].shape == (3, 3)
    for q, slots, row in zip(queries, labels, distances, strict=True):
        assert sorted(slots.tolist()) == held and list(row) == sorted(row)
        truth = exact.scores(vecs[slots.astype(np.int64) - 100], q[None, :], metric)
        if metric is Metric.EUCLIDEAN:
            assert np.sqrt(row) == pytest.approx(truth, abs=1e-4)
        else:
            assert 1 - row == pytest.approx(truth, abs=1e-4)
    drained, drained_slots = buf.drain()
    assert len(buf) == 0 and sorted(drained_slots) == held
    assert np.array_equal(drained[drained_slots.index(139)], vecs[39])


def test_the_buffer_answers_for_exactly_the_rows_it_holds_through_adds_and_removals() -> None:
    # hnswlib's brute-force index breaks when its last row is deleted (hnswlib 0.8): the
    # buffer never deletes from it, it builds it again after a removal.
    rng = np.random.default_rng(2)
    buf = DeltaBuffer(8, "l2", capacity=32)
    held: dict[int, np.ndarray] = {}
    for step in range(600):
        slot = int(rng.integers(40))
        if slot in held and rng.random() < 0.5:
            assert buf.remove(slot)
            del held[slot]
        elif len(held) < 32 or slot in held:
            held[slot] = rng.normal(size=8).astype(np.float32)
            buf.add(held[slot][None, :], slot)
        if held and step % 5 == 0:
            q = rng.normal(size=(1, 8)).astype(np.float32)
            labels, distances = buf.nearest(q, 1000)
            truth = sorted(held, key=lambda s: float(np.sum((held[s] - q[0]) ** 2)))
            assert sorted(labels[0].tolist()) == sorted(held)
            assert labels[0].tolist()[:3] == truth[:3]


@pytest.mark.parametrize("metric", list(Metric))
def test_an_updated_vector_is_found_at_once_and_the_old_one_is_gone(metric: Metric) -> None:
    coll, vecs = make(metric)
    new = fresh_vectors(metric, 5)
    for pid, v in zip(range(5), new, strict=True):
        coll.update(pid, v[None, :], None)
    assert coll.staged == 5
    for pid, v in zip(range(5), new, strict=True):
        assert coll.search(v[None, :], 1)[0].id == pid
        old_hits = coll.search(vecs[pid : pid + 1], 3)
        assert all(h.id != pid or h.score != pytest.approx(1.0) for h in old_hits)
        point = coll.get(pid)
        assert point is not None and np.allclose(point.vector, v)  # type: ignore[arg-type]
        assert point.payload == {"i": pid, "even": pid % 2 == 0}  # payload kept
    assert coll.fold() == 5 and coll.staged == 0
    for pid, v in zip(range(5), new, strict=True):
        assert coll.search(v[None, :], 1)[0].id == pid
    assert len(coll) == N


def test_merged_results_equal_exact_search_over_the_same_points() -> None:
    coll, vecs = make()
    new = fresh_vectors(Metric.COSINE, 40)
    current = vecs.copy()
    for pid, v in zip(range(0, 400, 10), new, strict=True):
        coll.update(pid, v[None, :], {"moved": True})
        current[pid] = v
    q = new[3:4] + 0.05
    got = coll.search(q, 10)
    truth = exact.top_k(current, np.arange(N), q, Metric.COSINE, 10)
    assert [h.id for h in got][:5] == [s for s, _ in truth][:5]
    assert [h.score for h in got] == sorted((h.score for h in got), reverse=True)
    many = coll.search_many(np.vstack([q, new[7:8]]), 10)
    assert [h.id for h in many[0]] == [h.id for h in got]
    assert many[1][0].id == 70
    # Scored as alone to the last bit (a product of many queries rounded otherwise).
    queries = np.vstack([new[i : i + 1] + 0.01 * i for i in range(40)])
    together = coll.search_many(queries, 10)
    assert together == [coll.search(queries[i : i + 1], 10) for i in range(40)]


@pytest.mark.parametrize("metric", list(Metric))
def test_a_staged_vector_scores_the_same_to_the_last_bit_once_folded(metric: Metric) -> None:
    # Scores do not move by an ulp when the idle fold runs between two equal searches.
    coll, _ = make(metric)
    new = fresh_vectors(metric, 30)
    for pid, v in enumerate(new):
        coll.update(pid, v[None, :], None)
    queries = new[:10] + 0.1
    staged = [coll.search(q[None, :], 10) for q in queries]
    assert coll.staged == 30
    coll.fold()
    coll.settle()
    assert coll.staged == 0
    assert [coll.search(q[None, :], 10) for q in queries] == staged


def test_filters_apply_to_staged_vectors() -> None:
    coll, _ = make()
    new = fresh_vectors(Metric.COSINE, 2)
    coll.update(3, new[0:1], None)  # odd
    coll.update(4, new[1:2], None)  # even
    broad = compile_filter({"must": [{"key": "even", "match": {"value": True}}]})
    hits = coll.search(new[0:1], 5, predicate=broad)
    assert len(hits) == 5 and 3 not in {h.id for h in hits}
    assert coll.search(new[1:2], 1, predicate=broad)[0].id == 4
    selective = compile_filter({"must": [{"key": "i", "range": {"lt": 5}}]})
    assert coll.search(new[0:1], 1, predicate=selective)[0].id == 3


def test_the_buffer_is_bounded_and_folds_when_full() -> None:
    coll, _ = make()
    n = DELTA_CAPACITY + 50
    new = fresh_vectors(Metric.COSINE, n)
    for pid, v in enumerate(new):
        coll.update(pid, v[None, :], None)
        assert coll.staged <= DELTA_CAPACITY
    assert coll.staged == 50
    found = sum(coll.search(v[None, :], 1)[0].id == pid for pid, v in enumerate(new))
    assert found >= n - 2  # the graph is approximate; the buffer part is exact
    assert all(coll.search(v[None, :], 1)[0].id == pid for pid, v in list(enumerate(new))[-50:])


def test_deleting_or_updating_a_staged_point_again() -> None:
    coll, _ = make()
    new = fresh_vectors(Metric.COSINE, 3)
    coll.update(1, new[0:1], None)
    coll.update(1, new[1:2], None)  # the first new vector is retired from the buffer
    assert coll.staged == 1
    assert coll.search(new[1:2], 1)[0].id == 1
    assert all(h.score < 0.999 for h in coll.search(new[0:1], 3) if h.id == 1)
    coll.update(2, new[2:3], None)
    assert coll.delete([2]) == 1 and coll.staged == 1
    assert 2 not in {h.id for h in coll.search(new[2:3], 10)}
    coll.fold()
    assert coll.search(new[1:2], 1)[0].id == 1 and len(coll) == N - 1


class SlowFold:
    """Holds the fold thread until released: what a search, a delete or a snapshot does
    while a fold is still linking its batch, made deterministic."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.started = threading.Event()

    def __enter__(self) -> SlowFold:
        def hold() -> None:
            self.started.set()
            self.release.wait(10)

        hnsw._folder().submit(hold)  # the fold thread takes one task at a time
        assert self.started.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()


def test_a_fold_links_in_the_background_and_every_use_of_the_graph_waits_for_it(
    tmp_path: Path,
) -> None:
    coll, vecs = make()
    new = fresh_vectors(Metric.COSINE, 30)
    with SlowFold() as slow:
        for pid, v in zip(range(30), new, strict=True):
            coll.update(pid, v[None, :], None)
        assert coll.fold() == 30 and coll.staged == 0  # handed to the (busy) fold thread
        # Updates go on while the batch waits to be linked; their old slots are
        # retired without waiting for the fold (deletes are deferred).
        again = fresh_vectors(Metric.COSINE, 2, seed=7)
        coll.update(0, again[0:1], None)  # its previous slot is in the pending batch
        assert coll.delete([1]) == 1  # so is this one's
        assert coll.staged == 1
        threading.Timer(0.2, slow.release.set).start()
        started = time.perf_counter()
        hits = coll.search(new[5:6], 1)  # waits for the fold, then sees the graph whole
        assert time.perf_counter() - started >= 0.15
    assert hits[0].id == 5
    assert coll.search(again[0:1], 1)[0].id == 0  # the staged newest vector
    assert all(h.score < 0.999 for h in coll.search(new[0:1], 5) if h.id == 0)
    assert 1 not in {h.id for h in coll.search(new[1:2], 10)}  # the deferred delete
    for pid, v in zip(range(2, 30), new[2:], strict=True):
        assert coll.search(v[None, :], 1)[0].id == pid
    assert coll.search(vecs[40:41], 1)[0].id == 40
    coll.fold()
    coll.settle()
    coll.export(tmp_path)  # saving waits for nothing now and keeps every point
    assert len(coll) == N - 1


def test_deletes_deferred_by_a_fold_apply_before_any_thread_uses_the_graph() -> None:
    """A snapshot's worker thread and the event loop both meet a finished fold: one
    applies the deletes deferred during it, the other waits for that, so no search ever
    walks a graph that still holds retired slots (they would come back without an id)."""
    coll, vecs = make(n=EXACT_BELOW + 7000)
    index = coll._index
    assert index is not None
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # hand the GIL between the two threads at every chance
    try:
        for round_ in range(16):  # without the lock, about one round in eight failed
            gone = list(range(round_ * 400, round_ * 400 + 400))
            with SlowFold() as slow:
                coll.update(len(vecs) - 1, fresh_vectors(Metric.COSINE, 1, seed=round_), None)
                assert coll.fold() == 1
                folding = index._folding
                assert folding is not None
                assert coll.delete(gone) == len(gone)  # deferred: the fold is pending
                saver = threading.Thread(target=coll.settle)
                saver.start()
                slow.release.set()
                concurrent.futures.wait([folding])  # the saver is applying the deletes
                hits = coll.search_many(vecs[gone[-20:]], 5)  # the last ones to be marked
                saver.join()
            ids = {h.id for row in hits for h in row}
            assert None not in ids and not ids & set(gone), round_
    finally:
        sys.setswitchinterval(switch)


def test_a_failed_fold_surfaces_at_the_next_use_of_the_graph() -> None:
    coll, _ = make()
    coll.update(0, fresh_vectors(Metric.COSINE, 1), None)
    index = coll._index
    assert index is not None
    with SlowFold():
        index.fold()
        real = index._folding
        assert real is not None
        bad: concurrent.futures.Future[None] = concurrent.futures.Future()
        bad.set_exception(RuntimeError("the graph is full"))
        index._folding = bad  # as if hnswlib had refused the batch
        index._deferred.append(10**6)  # a slot the failed batch would have linked
        with pytest.raises(RuntimeError, match="full"):
            coll.search(fresh_vectors(Metric.COSINE, 1), 1)
    real.result()  # (the stand-in's batch, really linked)
    assert coll.search(fresh_vectors(Metric.COSINE, 1), 1)  # then the graph is usable


def test_saving_a_graph_with_staged_vectors_is_refused(tmp_path: Path) -> None:
    coll, _ = make()
    coll.update(0, fresh_vectors(Metric.COSINE, 1), None)
    with pytest.raises(RuntimeError, match="fold"):
        coll.export(tmp_path)


def opts() -> StoreOptions:
    return StoreOptions(fsync=FsyncPolicy("never"), snapshot_interval_s=0)


async def seeded_store(path: Path) -> tuple[Store, np.ndarray]:
    s = Store(path, opts())
    await s.open()
    await s.create_collection("c", {"dimension": 16})
    vecs = np.random.default_rng(5).normal(size=(N, 16)).astype(np.float32)
    await s.upsert("c", list(range(N)), vecs, [None] * N)
    return s, vecs


@pytest.mark.parametrize("how", ["replay", "snapshot"])
async def test_staged_updates_survive_a_restart(tmp_path: Path, how: str) -> None:
    s, _ = await seeded_store(tmp_path)
    new = fresh_vectors(Metric.COSINE, DELTA_CAPACITY + 20)
    for pid, v in enumerate(new):
        await s.update_point("c", pid, v.tolist(), {"rev": 1})
    assert s.collection("c").staged == 20
    if how == "snapshot":
        await s.snapshot()
        assert s.collection("c").staged == 0  # folded so that the graph is saved whole
    await s.close(take_snapshot=False)

    r = Store(tmp_path, opts())
    await r.open()
    coll = r.collection("c")
    assert len(coll) == N
    for pid, v in list(enumerate(new))[-40:]:
        p = coll.get(pid)
        assert p is not None and p.payload == {"rev": 1}
        assert np.allclose(p.vector, v, atol=1e-6)  # type: ignore[arg-type]
        assert coll.search(v[None, :], 1)[0].id == pid
    await r.close(take_snapshot=False)


async def test_the_idle_fold_skips_while_a_snapshot_is_written(tmp_path: Path) -> None:
    s, _ = await seeded_store(tmp_path)
    await s.update_point("c", 1, fresh_vectors(Metric.COSINE, 1)[0].tolist(), None)
    s._writable.clear()  # as while a snapshot is written: graphs must not change
    assert s.fold() == 0 and s.collection("c").staged == 1
    s._writable.set()
    assert s.fold() == 1 and s.collection("c").staged == 0
    await s.close(take_snapshot=False)


async def test_concurrent_readers_never_miss_an_updated_point(tmp_path: Path) -> None:
    s, vecs = await seeded_store(tmp_path)
    coll = s.collection("c")
    batcher = SearchBatcher()
    rng = np.random.default_rng(11)
    current = {pid: Metric.COSINE.prepare(vecs[pid : pid + 1])[0] for pid in range(N)}
    params = batch_params(limit=5)
    stop = False
    misses: list[int] = []

    version = dict.fromkeys(range(N), 0)

    async def reader() -> None:
        while not stop:
            pid = int(rng.integers(0, 600))
            seen, want = version[pid], current[pid]
            hits = await batcher.search(coll, want[None, :], **params)
            # Unless the point changed meanwhile, its own vector must find it.
            if pid not in {h.id for h in hits} and version[pid] == seen:
                misses.append(pid)

    readers = [asyncio.create_task(reader()) for _ in range(8)]
    for step, v in enumerate(fresh_vectors(Metric.COSINE, 2 * DELTA_CAPACITY)):
        pid = step % 600
        await s.update_point("c", pid, v.tolist(), None)
        stored = coll.get(pid)
        assert stored is not None and stored.vector is not None
        current[pid] = np.asarray(stored.vector, dtype=np.float32)
        version[pid] += 1
        await asyncio.sleep(0)
    stop = True
    await asyncio.gather(*readers)
    assert misses == []
    await s.close(take_snapshot=False)


async def test_batched_searches_match_single_searches_and_survive_a_cancelled_leader() -> None:
    coll, vecs = make(n=N)
    batcher = SearchBatcher()
    params = batch_params(with_payload=True)
    queries = [vecs[i : i + 1] + 0.01 for i in range(6)]
    leader = asyncio.ensure_future(batcher.search(coll, queries[0], limit=5, **params))
    await asyncio.sleep(0)  # the leader is now waiting for joiners
    joiners = [
        asyncio.ensure_future(batcher.search(coll, q, limit=5 if i % 2 else 3, **params))
        for i, q in enumerate(queries[1:], start=1)
    ]
    leader.cancel()
    results = await asyncio.gather(*joiners)
    with pytest.raises(asyncio.CancelledError):
        await leader
    for i, got in enumerate(results, start=1):
        one = coll.search(queries[i], 5 if i % 2 else 3)
        assert [h.id for h in got] == [h.id for h in one]
        assert got[0].payload == {"i": i, "even": i % 2 == 0}


async def test_lone_searches_skip_the_loop_turn_until_others_join_a_probe() -> None:
    coll, vecs = make(n=N)
    batcher = SearchBatcher()
    params = batch_params(limit=3)
    loop = asyncio.get_running_loop()
    turns = 0

    def tick() -> None:  # counts loop turns while it keeps rescheduling itself
        nonlocal turns
        turns += 1
        if ticking:
            loop.call_soon(tick)

    ticking = True
    loop.call_soon(tick)
    await asyncio.sleep(0)
    for _ in range(batching.QUIET_AFTER):  # leaders nobody joins: each waits a turn
        before = turns
        await batcher.search(coll, vecs[0:1], **params)
        assert turns > before
    assert batcher.quiet
    waited = 0
    for _ in range(batching.PROBE_EVERY * 2):  # quiet: only the probes wait
        before = turns
        got = await batcher.search(coll, vecs[1:2], **params)
        waited += turns > before
        assert [h.id for h in got] == [h.id for h in coll.search(vecs[1:2], 3)]
    assert waited == 2
    # Concurrent searches: the next probe is joined, and batching is back on.
    for _ in range(batching.PROBE_EVERY):  # four at a time: a probe is among the first few
        if not batcher.quiet:
            break
        found = await asyncio.gather(
            *(batcher.search(coll, vecs[i : i + 1], **params) for i in range(4))
        )
        for i, got in enumerate(found):
            assert [h.id for h in got] == [h.id for h in coll.search(vecs[i : i + 1], 3)]
    ticking = False
    assert not batcher.quiet


async def test_a_batch_takes_in_searches_while_they_keep_arriving_within_a_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    coll, vecs = make(n=N)
    batcher = SearchBatcher()
    params = batch_params(limit=3)
    passes: list[int] = []  # queries per graph pass
    search_many = Collection.search_many

    def counted(self: Collection, queries: np.ndarray, *args: Any, **kwargs: Any) -> Any:
        passes.append(len(queries))
        return search_many(self, queries, *args, **kwargs)

    monkeypatch.setattr(Collection, "search_many", counted)
    loop = asyncio.get_running_loop()

    async def arriving(count: int) -> list[list[int]]:
        """``count`` searches: two at once, then one more each loop turn (a wave of
        clients' requests read from their sockets turn by turn)."""
        tasks: list[asyncio.Future[Any]] = []
        all_arrived: asyncio.Future[None] = loop.create_future()

        def arrive() -> None:
            i = len(tasks)
            tasks.append(asyncio.ensure_future(batcher.search(coll, vecs[i : i + 1], **params)))
            if len(tasks) < count:
                loop.call_soon(arrive)
            else:
                all_arrived.set_result(None)

        tasks.append(asyncio.ensure_future(batcher.search(coll, vecs[0:1], **params)))
        arrive()
        await all_arrived
        return [[h.id for h in hits] for hits in await asyncio.gather(*tasks)]

    # Arrivals over four turns: all in the leader's batch (a fixed two turns took three).
    found = await arriving(5)
    assert passes == [5]
    assert found == [[h.id for h in coll.search(vecs[i : i + 1], 3)] for i in range(5)]
    # Arrivals that never stop: the leader stops waiting after MAX_TURNS turns.
    passes.clear()
    total = 4 * batching.MAX_TURNS
    found = await arriving(total)
    assert sum(passes) == total and len(passes) > 1
    assert max(passes) <= batching.MAX_TURNS + 1
    assert found == [[h.id for h in coll.search(vecs[i : i + 1], 3)] for i in range(total)]
