"""What a deletion of a snapshot cut short (a kill -9 while pruning) leaves, what a full
sync wipes, what a shutdown snapshot that does not fit still does, and that a directory
made for snapshots is fsynced into its parent.

A kill cannot be made in-process, nor a full disk without root: both are injected at
the edge (``shutil.rmtree`` stopped partway through a folder, ``os.fsync`` failing with
ENOSPC); a full disk is real in tests/integration/test_full_disk_edges.py.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vectorizer.engine import snapshot
from vectorizer.engine.store import Store, StoreOptions
from vectorizer.engine.wal import FsyncPolicy


def opts(**kw: Any) -> StoreOptions:
    return StoreOptions(fsync=FsyncPolicy("never"), snapshot_interval_s=0, **kw)


async def fresh(path: Path, **kw: Any) -> Store:
    s = Store(path, opts(**kw))
    await s.open()
    return s


def without_manifest(snaps: Path) -> list[str]:
    """Snapshot folders (by their name) that have no manifest."""
    return sorted(
        p.name
        for p in snaps.iterdir()
        if p.is_dir() and p.name.isdigit() and not (p / snapshot.MANIFEST).exists()
    )


def unusable_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "unusable" in r.getMessage()]


def real(path: Path) -> Path:
    """``path`` as the kernel names it (``/proc/self/fd`` names what a descriptor opens)."""
    return path.resolve()


class Killed(BaseException):
    """A kill -9, as far as the code that was running can tell."""


class Fsyncs:
    """``os.fsync`` that records the path of what it fsynced, and fails with ENOSPC for
    whatever lies under ``full`` (a disk that has no room left for it)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._real = os.fsync
        self.paths: list[Path] = []
        self.full: Path | None = None
        monkeypatch.setattr(os, "fsync", self)

    def __call__(self, fd: Any) -> None:
        fd = fd if isinstance(fd, int) else fd.fileno()
        path = Path(os.readlink(f"/proc/self/fd/{fd}"))
        if self.full is not None and path.is_relative_to(self.full):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._real(fd)
        self.paths.append(path)


# ---- a prune cut short ------------------------------------------------------------------


async def test_a_prune_killed_midway_leaves_no_snapshot_without_its_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Killed while it deletes the old snapshot's files (its manifest gone, the rest
    not): the folder was deleted in place and stayed, without its manifest, an unusable
    snapshot at every start that no prune ever counted or removed."""
    s = await fresh(tmp_path, snapshots_retained=1)
    await s.create_collection("a", {"dimension": 4})
    await s.upsert("a", [1], np.ones((1, 4)), [None])
    await s.snapshot()
    await s.upsert("a", [2], np.ones((1, 4)), [None])
    snaps = tmp_path / "snapshots"
    real_rmtree: Callable[..., None] = shutil.rmtree

    def killed_midway(path: Any, *args: Any, **kwargs: Any) -> None:
        path = Path(path)
        if path.parent == snaps and (path / snapshot.MANIFEST).exists():
            (path / snapshot.MANIFEST).unlink()  # the first files are gone...
            raise Killed  # ...and the process with them
        real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", killed_midway)
    with pytest.raises(Killed):
        await s.snapshot()  # the second prunes the first
    monkeypatch.undo()
    await s.close(take_snapshot=False)
    assert without_manifest(snaps) == []

    caplog.set_level(logging.INFO)
    again = await fresh(tmp_path, snapshots_retained=1)
    assert sorted(p.id for p in again.collection("a").scroll(10)[0]) == [1, 2]
    assert [p.name for p in snaps.iterdir()] == [f"{again.sequence:020d}"]  # nothing else
    assert unusable_errors(caplog) == []
    await again.close(take_snapshot=False)


async def test_a_snapshot_left_without_its_manifest_behind_the_one_that_loads_is_removed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """What earlier code left of a prune cut short (a folder, older than the snapshot
    that loads, without its manifest) goes at the next start: it was logged as an
    unusable snapshot at every start, for ever."""
    s = await fresh(tmp_path, snapshots_retained=2)
    await s.create_collection("a", {"dimension": 4})
    await s.upsert("a", [1], np.ones((1, 4)), [None])
    old = await s.snapshot()
    await s.upsert("a", [2], np.ones((1, 4)), [None])
    await s.snapshot()
    await s.close(take_snapshot=False)
    (old.path / snapshot.MANIFEST).unlink()

    caplog.set_level(logging.INFO)
    again = await fresh(tmp_path, snapshots_retained=2)
    assert sorted(p.id for p in again.collection("a").scroll(10)[0]) == [1, 2]
    assert not old.path.exists()
    assert not list((tmp_path / "snapshots").glob(".*"))  # (not set aside either)
    assert unusable_errors(caplog) == []
    await again.close(take_snapshot=False)


async def test_a_prune_removes_snapshots_left_without_their_manifest(tmp_path: Path) -> None:
    s = await fresh(tmp_path, snapshots_retained=3)
    await s.create_collection("a", {"dimension": 4})
    infos = []
    for i in range(3):
        await s.upsert("a", [i], np.ones((1, 4)), [None])
        infos.append(await s.snapshot())
    await s.close(take_snapshot=False)
    snaps = tmp_path / "snapshots"
    (infos[0].path / snapshot.MANIFEST).unlink()

    kept = snapshot.prune(snaps, 3)
    assert [k.sequence for k in kept] == [infos[2].sequence, infos[1].sequence]
    assert sorted(p.name for p in snaps.iterdir()) == [i.path.name for i in infos[1:]]


# ---- a full sync wipes every snapshot -----------------------------------------------------


async def test_a_full_sync_wipes_every_snapshot_folder_whatever_it_holds(
    tmp_path: Path,
) -> None:
    """A former primary synced in full from a new primary at a lower sequence: a folder
    of its own snapshots without a manifest (left by a prune cut short) survived the
    wipe, and counted at its next start as an unusable snapshot newer than the one that
    loads: it refused to start."""
    primary = await fresh(tmp_path / "p")
    await primary.create_collection("new", {"dimension": 2})
    await primary.upsert("new", [7], np.ones((1, 2)), [None])
    sent = await primary.snapshot()
    await primary.close(take_snapshot=False)

    former = await fresh(tmp_path / "r", snapshots_retained=1)
    await former.create_collection("old", {"dimension": 2})
    for i in range(10):
        await former.upsert("old", [i], np.ones((1, 2)), [None])
    await former.snapshot()
    snaps = tmp_path / "r" / "snapshots"
    leftover = snaps / f"{former.sequence - 1:020d}"  # (newer than what the primary sends)
    (leftover / "c00000").mkdir(parents=True)
    (leftover / "c00000" / "vectors.npy").write_bytes(b"what a prune left")
    (snaps / ".damaged-00000000000000000001").mkdir()
    (snaps / "stray").write_bytes(b"")
    incoming = snaps / ".incoming-test"
    shutil.copytree(sent.path, incoming)

    await former.install_snapshot(incoming)
    assert sorted(p.name for p in snaps.iterdir()) == [sent.path.name]
    await former.close(take_snapshot=False)
    again = await fresh(tmp_path / "r", snapshots_retained=1)  # (refused: CorruptLog)
    assert again.sequence == sent.sequence
    assert [c.name for c in again.collections()] == ["new"]
    await again.close(take_snapshot=False)


# ---- a shutdown snapshot that does not fit ----------------------------------------------


async def test_a_shutdown_snapshot_that_does_not_fit_still_fsyncs_and_closes_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Under an interval fsync policy the log is fsynced at close: acknowledged writes
    since the last interval are on disk only then. A shutdown snapshot failing (a full
    disk) raised out of ``close`` before it, and the log was never fsynced."""
    s = Store(
        tmp_path,
        StoreOptions(fsync=FsyncPolicy.parse("3600000"), snapshot_interval_s=0),
    )
    await s.open()
    await s.create_collection("a", {"dimension": 4})
    await s.upsert("a", [1, 2], np.ones((2, 4)), [None, None])
    fsyncs = Fsyncs(monkeypatch)
    fsyncs.full = real(tmp_path) / "snapshots"

    caplog.set_level(logging.INFO)
    await s.close()  # (raised InsufficientStorage)
    wal = real(tmp_path) / "wal"
    assert any(p.parent == wal for p in fsyncs.paths), fsyncs.paths  # the log, fsynced
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("snapshot" in r.getMessage() for r in errors), caplog.text
    assert not s.ready

    monkeypatch.undo()
    again = await fresh(tmp_path)  # everything from the log
    assert len(again.collection("a")) == 2
    await again.close(take_snapshot=False)


# ---- directories made durable -------------------------------------------------------------


def test_make_dir_durably_fsyncs_the_parent_of_each_directory_it_makes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vectorizer.engine.files import make_dir_durably

    fsyncs = Fsyncs(monkeypatch)
    root = real(tmp_path)
    make_dir_durably(root / "a" / "b" / "c")
    assert (root / "a" / "b" / "c").is_dir()
    assert set(fsyncs.paths) == {root, root / "a", root / "a" / "b"}
    fsyncs.paths.clear()
    make_dir_durably(root / "a" / "b" / "c")  # there already: nothing to make durable
    assert fsyncs.paths == []


async def test_directories_made_for_snapshots_are_fsynced_into_their_parents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``snapshots/``, ``collection-snapshots/<collection>/`` and ``full-snapshots/``
    were made without an fsync of the directory that holds them: after a power loss the
    snapshot (and the log truncated behind it) could be gone with its directory."""
    data = real(tmp_path) / "data"
    s = await fresh(data)
    await s.create_collection("a", {"dimension": 4})
    await s.upsert("a", [1], np.ones((1, 4)), [None])
    fsyncs = Fsyncs(monkeypatch)

    await s.snapshot()
    assert data in fsyncs.paths  # snapshots/ made
    fsyncs.paths.clear()
    await s.snapshot_collection("a")
    assert {data, data / "collection-snapshots"} <= set(fsyncs.paths)
    fsyncs.paths.clear()
    await s.snapshot_node()
    assert data in fsyncs.paths  # full-snapshots/ made
    await s.close(take_snapshot=False)
