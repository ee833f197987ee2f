"""A store stopped while it replays its log at start-up ends the replay at a record
boundary, and writes a snapshot of what it replayed (the log after it kept): the next
start loads that and replays only the rest, with nothing lost."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vectorizer.engine import snapshot
from vectorizer.engine.store import Store, StoreOptions
from vectorizer.engine.wal import FsyncPolicy

RECORDS = 40
OPTIONS = StoreOptions(fsync=FsyncPolicy("never"), snapshot_interval_s=0)


async def _logged(data: Path) -> int:
    """A data directory with a collection and ``RECORDS`` upserts, all in the log."""
    s = Store(data, OPTIONS)
    await s.open()
    await s.create_collection("c", {"dimension": 4})
    rng = np.random.default_rng(0)
    for r in range(RECORDS):
        await s.upsert("c", list(range(r * 10, r * 10 + 10)), rng.normal(size=(10, 4)), [None] * 10)
    seq = s.sequence
    await s.close(take_snapshot=False)
    return seq


async def _stopped_while_replaying(
    data: Path, monkeypatch: pytest.MonkeyPatch, **open_args: Any
) -> Store:
    """A store cancelled (as SIGTERM cancels it) after its replay applied a few records."""
    store = Store(data, OPTIONS)
    applying = store._apply
    started = threading.Event()
    applied = 0

    def slowly(*args: Any) -> None:
        nonlocal applied
        applying(*args)
        applied += 1
        if applied == 5:
            started.set()
        time.sleep(0.02)

    monkeypatch.setattr(store, "_apply", slowly)
    opening = asyncio.create_task(store.open(**open_args))
    assert await asyncio.get_running_loop().run_in_executor(None, started.wait, 30)
    opening.cancel()
    began = time.monotonic()
    with pytest.raises(asyncio.CancelledError):
        await opening
    assert time.monotonic() - began < 0.5 * RECORDS * 0.02  # (not replayed to the end)
    assert not store.ready
    return store


async def test_a_stop_during_replay_snapshots_what_was_replayed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    last = await _logged(tmp_path)
    store = await _stopped_while_replaying(tmp_path, monkeypatch)
    snaps = snapshot.list_snapshots(tmp_path / "snapshots")
    assert [s.sequence for s in snaps] == [store.sequence]
    assert 5 <= store.sequence < last
    again = Store(tmp_path, OPTIONS)
    await again.open()
    assert again.sequence == last
    assert len(again.collection("c")) == RECORDS * 10  # the snapshot, then the rest
    await again.upsert("c", [10_000], np.ones((1, 4)), [None])  # and it takes writes
    await again.close(take_snapshot=False)
    final = Store(tmp_path, OPTIONS)
    await final.open()
    assert final.sequence == last + 1 and len(final.collection("c")) == RECORDS * 10 + 1
    await final.close(take_snapshot=False)


async def test_a_stop_during_replay_without_shutdown_snapshots_leaves_the_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    last = await _logged(tmp_path)
    await _stopped_while_replaying(tmp_path, monkeypatch, snapshot_if_stopped=False)
    assert snapshot.list_snapshots(tmp_path / "snapshots") == []
    again = Store(tmp_path, OPTIONS)
    await again.open()
    assert again.sequence == last and len(again.collection("c")) == RECORDS * 10
    await again.close(take_snapshot=False)
