"""Full snapshot files: a store's node snapshot as one file, restored into another data
directory, and every damaged or hostile file refused with the directory untouched."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from tests.tarballs import members, tar
from vectorizer.engine import collection_snapshots, full_snapshots
from vectorizer.engine.aliases import CreateAlias
from vectorizer.engine.store import SYNC_MARKER, Store, StoreOptions
from vectorizer.engine.wal import FsyncPolicy
from vectorizer.errors import InvalidSnapshot, StorageError


async def fresh(path: Path) -> Store:
    s = Store(path, StoreOptions(fsync=FsyncPolicy("never"), snapshot_interval_s=0))
    await s.open()
    return s


def everything(s: Store) -> dict[str, Any]:
    out: dict[str, Any] = {"aliases": s.aliases()}
    for coll in s.collections():
        points, _ = coll.scroll(10_000, with_vector=True)
        out[coll.name] = (coll.config, {p.id: (p.payload, p.vector) for p in points})
    return out


async def seeded(tmp_path: Path) -> tuple[Store, Path]:
    s = await fresh(tmp_path / "node")
    await s.create_collection("a", {"dimension": 5, "metric": "euclidean"})
    await s.create_collection("b", {"dimension": 2, "index": "exact"})
    rng = np.random.default_rng(3)
    await s.upsert(
        "a", list(range(2500)), rng.normal(size=(2500, 5)), [{"n": i} for i in range(2500)]
    )
    await s.upsert("b", ["x", "y"], [[1, 0], [0, 1]], [None, {"k": [1, 2]}])
    await s.create_field_index("a", "n", "integer")
    await s.update_aliases([CreateAlias("al", "b")])
    made = await s.snapshot_node()
    return s, s.full_snapshots_dir / made.name


async def test_a_full_snapshot_restores_every_collection_and_alias(tmp_path: Path) -> None:
    s, file = await seeded(tmp_path)
    assert collection_snapshots.listed(s.full_snapshots_dir)[0].name == file.name
    want = everything(s)
    await s.delete_points("a", [1, 2, 3])  # after the file: not in it
    await s.close()

    info = full_snapshots.restore(file, tmp_path / "copy")
    restored = await fresh(tmp_path / "copy")
    assert everything(restored) == want
    assert restored.sequence == info.sequence
    await restored.upsert("b", ["z"], [[1, 1]], [None])  # it takes writes from there on
    await restored.close()
    with pytest.raises(InvalidSnapshot, match="holds data"):
        full_snapshots.restore(file, tmp_path / "copy")
    (tmp_path / "other").mkdir()
    for where in ("copy", "other"):
        (tmp_path / where / "history.json").write_text("{}")
    with pytest.raises(InvalidSnapshot, match="history.json"):  # describes data, so is data
        full_snapshots.restore(file, tmp_path / "other", describing=("history.json",))
    (tmp_path / "copy" / "snapshots" / "notes.txt").write_text("a stray file")
    full_snapshots.restore(file, tmp_path / "copy", replace=True, describing=("history.json",))
    assert not (tmp_path / "copy" / "history.json").exists()
    assert not (tmp_path / "copy" / "snapshots" / "notes.txt").exists()
    again = await fresh(tmp_path / "copy")
    assert everything(again) == want
    await again.close()


async def test_damaged_or_hostile_files_are_refused_and_leave_the_directory_alone(
    tmp_path: Path,
) -> None:
    s, file = await seeded(tmp_path)
    await s.close()
    good = members(file)
    manifest = orjson.loads(good["MANIFEST.json"])
    outside = {**manifest, "collections": [{**manifest["collections"][0], "dir": "../../x"}]}
    vectors = next(name for name in good if name.endswith("vectors.npy"))
    flipped = bytearray(good[vectors])
    flipped[-3] ^= 0x20
    cases = {
        "truncated": tar(good)[:3000],
        "a path out of the folder": tar({**good, "../escape": b"x"}),
        "an unknown file": tar({**good, "c00000/extra": b"x"}),
        "a symlink": tar(good, links={"c00000/hnsw.bin": tarfile.SYMTYPE}),
        "no manifest": tar({k: v for k, v in good.items() if k != "MANIFEST.json"}),
        "a folder outside it in the manifest": tar(
            {**good, "MANIFEST.json": orjson.dumps(outside)}
        ),
        "a byte flipped in the vectors": tar({**good, vectors: bytes(flipped)}),
        "a collection missing": tar({k: v for k, v in good.items() if not k.startswith("c00001")}),
    }
    target = tmp_path / "target"
    s2 = await fresh(target)
    await s2.create_collection("mine", {"dimension": 3})
    await s2.close()
    mine = await fresh(target)
    before = everything(mine)
    await mine.close()
    for what, data in cases.items():
        bad = tmp_path / "bad.snapshot"
        bad.write_bytes(data)
        with pytest.raises(InvalidSnapshot):
            full_snapshots.restore(bad, target, replace=True)
        with pytest.raises(InvalidSnapshot):
            full_snapshots.restore(bad, tmp_path / "new")
        assert not (tmp_path / "new").exists(), what  # (made for it, gone again)
        (tmp_path / "empty").mkdir(exist_ok=True)
        with pytest.raises(InvalidSnapshot):
            full_snapshots.restore(bad, tmp_path / "empty")
        assert not list((tmp_path / "empty" / "snapshots").iterdir()), what
        after = await fresh(target)
        assert everything(after) == before, what
        await after.close()


class Killed(BaseException):
    """The restore's process dying (kill -9) at some step."""


def restore_killed_at(
    monkeypatch: pytest.MonkeyPatch, nth: int, file: Path, target: Path, **kw: Any
) -> None:
    """Restore ``file`` into ``target``, killed at its ``nth`` rename (the first commits,
    the second puts the snapshot in place)."""
    rename, seen = full_snapshots.os.rename, []

    def dying(src: Any, dst: Any) -> None:
        seen.append(src)
        if len(seen) == nth:
            raise Killed
        rename(src, dst)

    with monkeypatch.context() as m:
        m.setattr(full_snapshots.os, "rename", dying)
        with pytest.raises(Killed):
            full_snapshots.restore(file, target, **kw)


async def node_holding_mine(path: Path) -> dict[str, Any]:
    s = await fresh(path)
    await s.create_collection("mine", {"dimension": 3})
    await s.upsert("mine", [1, 2], [[1, 0, 0], [0, 1, 0]], [None, {"k": 1}])
    await s.close(take_snapshot=False)  # (in the log only)
    (path / "replication.json").write_text("{}")
    mine = await fresh(path)
    held = everything(mine)
    await mine.close(take_snapshot=False)
    return held


async def test_a_restore_killed_before_its_commit_leaves_the_old_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s, file = await seeded(tmp_path)
    await s.close()
    target = tmp_path / "target"
    old = await node_holding_mine(target)
    restore_killed_at(monkeypatch, 1, file, target, replace=True, describing=("replication.json",))
    assert not (target / full_snapshots.RESTORE_MARKER).exists()
    assert (target / "replication.json").exists()
    after = await fresh(target)
    assert everything(after) == old
    await after.close(take_snapshot=False)
    assert not list((target / "snapshots").glob(".incoming-*"))  # a leftover: removed


@pytest.mark.parametrize("then", ["the node starts", "the restore runs again"])
async def test_a_restore_killed_once_committed_is_finished_not_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, then: str
) -> None:
    """Killed after the old data began to go (here: at the rename that puts the restored
    snapshot in place, the old log and history gone already), the restore is finished by
    the next start, or by the next restore (which then goes on with its own work)."""
    s, file = await seeded(tmp_path)
    want = everything(s)
    await s.close()
    target = tmp_path / "target"
    await node_holding_mine(target)
    restore_killed_at(monkeypatch, 2, file, target, replace=True, describing=("replication.json",))
    assert (target / full_snapshots.RESTORE_MARKER).exists()
    assert not (target / "wal").exists() and not (target / "replication.json").exists()
    (incoming,) = (target / "snapshots").iterdir()
    assert incoming.name.startswith(".incoming-restore-")
    if then == "the restore runs again":
        with pytest.raises(InvalidSnapshot, match="holds data already"):
            full_snapshots.restore(file, target)  # (finished first: data, so refused)
    after = await fresh(target)
    assert everything(after) == want
    await after.close(take_snapshot=False)
    assert not (target / full_snapshots.RESTORE_MARKER).exists()


async def test_a_committed_restore_whose_snapshot_is_gone_refuses_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s, file = await seeded(tmp_path)
    await s.close()
    target = tmp_path / "target"
    restore_killed_at(monkeypatch, 2, file, target)
    for folder in (target / "snapshots").iterdir():
        shutil.rmtree(folder)
    with pytest.raises(StorageError, match="was committed, but its snapshot"):
        await Store(target, StoreOptions()).open()
    with pytest.raises(StorageError, match="was committed, but its snapshot"):
        full_snapshots.restore(file, target, replace=True)
    (target / full_snapshots.RESTORE_MARKER).write_text("{")
    with pytest.raises(StorageError, match="does not say which restore"):
        await Store(target, StoreOptions()).open()


async def test_a_restore_replaces_a_full_sync_cut_short(tmp_path: Path) -> None:
    """A replica's full sync cut short leaves a marker that wipes the node at its next
    start: a restore over it takes it away, else it would wipe the restored data."""
    s, file = await seeded(tmp_path)
    want = everything(s)
    await s.close()
    target = tmp_path / "target"
    await node_holding_mine(target)
    (target / SYNC_MARKER).write_bytes(b"")
    with pytest.raises(InvalidSnapshot, match=SYNC_MARKER):
        full_snapshots.restore(file, tmp_path / "target")
    full_snapshots.restore(file, target, replace=True)
    assert not (target / SYNC_MARKER).exists()
    after = await fresh(target)
    assert everything(after) == want
    await after.close(take_snapshot=False)


@pytest.mark.parametrize("sequence", [2**63, 2**64 - 1, 2**64, True, -1, 2**63 - 1])
async def test_a_sequence_no_node_could_continue_from_is_refused(
    tmp_path: Path, sequence: int
) -> None:
    manifest = {"format": 1, "sequence": sequence, "created_at": 0, "collections": []}
    file = tmp_path / "one.snapshot"  # (json: orjson writes no integer past 2**64 - 1)
    file.write_bytes(tar({"MANIFEST.json": json.dumps({**manifest, "aliases": {}}).encode()}))
    target = tmp_path / "target"
    if sequence is True or not 0 <= sequence < 2**63:
        with pytest.raises(InvalidSnapshot):
            full_snapshots.restore(file, target)
        assert not target.exists()
        return
    full_snapshots.restore(file, target)
    s = await fresh(target)
    assert s.sequence == sequence
    await s.create_collection("next", {"dimension": 2})
    await s.close(take_snapshot=False)
    again = await fresh(target)
    assert again.sequence == sequence + 1 and len(again.collection("next")) == 0
    await again.close()


async def test_a_collection_snapshot_file_is_refused_saying_where_it_goes(
    tmp_path: Path,
) -> None:
    """`vectorizer restore` given a collection's file said "unexpected entry
    'collection/alive.npy'": it says what the file is, and how to recover it."""
    s, _ = await seeded(tmp_path)
    coll = s.collections()[0].name
    made = await s.snapshot_collection(coll)
    path = s.collection_snapshots_dir / coll / made.name
    await s.close()
    with pytest.raises(InvalidSnapshot, match="a collection's snapshot file.*snapshots/recover"):
        full_snapshots.restore(path, tmp_path / "new")
    assert not (tmp_path / "new").exists()
