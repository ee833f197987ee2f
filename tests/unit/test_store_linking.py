"""A large batch of new points is linked into its graph on another thread
(``HnswIndex.add``): the write is acknowledged meanwhile, writes to other collections go
on, a write to the same collection and a snapshot wait for the link without holding the
loop, and a search (after ``graphs_settled``) finds every point of the batch."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from vectorizer.engine.collection import Collection
from vectorizer.engine.config import CollectionConfig, HnswParams
from vectorizer.engine.hnsw import LINK_AWAY_FLOATS
from vectorizer.engine.store import Store, StoreOptions
from vectorizer.engine.wal import FsyncPolicy

DIM, BATCH = 64, 30_000  # (linked in a second or more: seen in progress)


async def test_a_large_batch_is_linked_while_other_work_goes_on(tmp_path: Path) -> None:
    assert BATCH * DIM >= LINK_AWAY_FLOATS
    s = Store(tmp_path, StoreOptions(fsync=FsyncPolicy("never"), snapshot_interval_s=0))
    await s.open()
    try:
        await s.create_collection("a", {"dimension": DIM, "metric": "euclidean"})
        await s.create_collection("b", {"dimension": 2})
        rng = np.random.default_rng(3)
        # (of a few dimensions' worth of information, like embeddings: found as their own
        # nearest by HNSW nearly always, where it misses several percent of 64-d noise)
        batch = (rng.normal(size=(BATCH, 8)) @ rng.normal(size=(8, DIM))).astype(np.float32)
        await s.upsert("a", list(range(BATCH)), batch, [None] * BATCH)
        a = s.collection("a")
        assert a.linking() is not None  # acknowledged, still being linked
        assert len(a) == BATCH  # (its points stored whole: read by id, counted, scrolled)

        await s.upsert("b", [1], np.ones((1, 2), np.float32), [None])  # goes on meanwhile
        assert a.linking() is not None

        same = asyncio.create_task(s.upsert("a", [BATCH], batch[:1] + 1, [None]))
        snap = asyncio.create_task(s.snapshot())
        await asyncio.sleep(0.05)
        assert not same.done() and not snap.done()  # both wait for the link (the loop not)
        assert a.linking() is not None
        # The snapshot waits for the link with writes going on: another collection's
        # still go through (paused first, they waited for the link too).
        await s.upsert("b", [2], np.ones((1, 2), np.float32), [None])
        assert a.linking() is not None

        await a.graphs_settled()
        assert a.linking() is None
        await same
        info = await snap
        assert info.sequence >= s.sequence - 1
        # Each its own nearest (points left out of the graph would all be missed).
        sample = range(0, BATCH, 97)
        found = sum(a.search(batch[i : i + 1], 1)[0].id == i for i in sample)
        assert found >= 0.95 * len(sample)
    finally:
        await s.close()


def test_points_with_twins_written_again_leave_the_link_in_the_background() -> None:
    """Points of equal vectors (twins, see ``twins.py``) written again in a large batch:
    each retired node's twin takes its place before the batch's link starts, so the
    write does not wait for the link (it read the node's row from a graph being linked,
    holding the loop for as long as the link took)."""
    config = CollectionConfig.parse({"dimension": DIM, "metric": "euclidean"}, HnswParams())
    coll = Collection("c", config)
    rng = np.random.default_rng(4)
    basis = rng.normal(size=(8, DIM))  # (of few dimensions' information: see above)
    base = (rng.normal(size=(500, 8)) @ basis).astype(np.float32)
    coll.upsert(list(range(1000)), np.vstack([base, base]), [None] * 1000)  # i, i + 500 twins
    new = (rng.normal(size=(BATCH, 8)) @ basis).astype(np.float32)
    coll.upsert(list(range(BATCH)), new, [None] * BATCH)  # ids 0..499: the groups' nodes
    assert coll.linking() is not None
    coll.settle()
    assert len(coll) == BATCH
    for i in (0, 499, 500, 999):  # the twins of the nodes written again, and others
        assert coll.search(new[i : i + 1], 1)[0].id == i
