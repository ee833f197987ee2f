"""Collection snapshot files: made from a store's node snapshot, read back through the
store into a collection, and every damaged or hostile file refused with nothing changed."""

from __future__ import annotations

import asyncio
import hashlib
import io
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from tests.tarballs import members, tar
from vectorizer.engine import collection_snapshots as cs
from vectorizer.engine import store as store_module
from vectorizer.engine.aliases import CreateAlias
from vectorizer.engine.files import sha256
from vectorizer.engine.store import RECOVERING, Store, StoreOptions
from vectorizer.engine.wal import FsyncPolicy
from vectorizer.errors import (
    CollectionExists,
    CollectionNotFound,
    InsufficientMemory,
    InvalidSnapshot,
    PayloadTooLarge,
    SnapshotNotFound,
    StorageError,
    ValidationError,
)


async def fresh(path: Path, **kw: Any) -> Store:
    s = Store(path, StoreOptions(fsync=FsyncPolicy("never"), snapshot_interval_s=0, **kw))
    await s.open()
    return s


def state(s: Store, name: str) -> dict[Any, tuple[Any, list[float] | None]]:
    coll = s.collection(name)
    points, _ = coll.scroll(10_000, with_vector=True)
    return {p.id: (p.payload, p.vector) for p in points}


async def seeded(tmp_path: Path) -> tuple[Store, cs.Description]:
    """A store whose collection "src" (3,000 points, ids of both kinds, a payload index,
    some deleted and some updated) has one snapshot file."""
    s = await fresh(tmp_path / "node")
    await s.create_collection("src", {"dimension": 6, "metric": "cosine"})
    rng = np.random.default_rng(7)
    ids: list[Any] = [i if i % 3 else f"p{i}" for i in range(3000)]
    payloads: list[Any] = [
        {"i": i, "tags": ["a", str(i % 5)]} if i % 7 else None for i in range(3000)
    ]
    await s.upsert("src", ids, rng.normal(size=(3000, 6)), payloads)
    await s.create_field_index("src", "i", "integer")
    await s.delete_points("src", ids[:100])
    await s.update_point("src", ids[200], rng.normal(size=6).tolist(), {"moved": True})
    return s, await s.snapshot_collection("src")


async def test_a_snapshot_file_recovers_the_collection_exactly(tmp_path: Path) -> None:
    s, made = await seeded(tmp_path)
    folder = s.collection_snapshots_dir / "src"
    assert cs.listed(folder) == [made]
    assert made.checksum == sha256(folder / made.name) and made.size > 0
    await s.recover_collection("copy", folder / made.name)
    assert state(s, "copy") == state(s, "src") and len(state(s, "copy")) == 2900
    assert s.collection("copy").payload_schema() == s.collection("src").payload_schema()
    assert s.collection("copy").config == s.collection("src").config
    await s.close(take_snapshot=False)

    again = await fresh(tmp_path / "node")  # replayed from the log
    assert state(again, "copy") == state(again, "src")
    assert [c.name for c in again.collections()] == ["copy", "src"]
    await again.close()


async def test_recovery_replaces_the_collection_and_keeps_its_aliases(tmp_path: Path) -> None:
    s, made = await seeded(tmp_path)
    before = state(s, "src")
    await s.create_collection("dst", {"dimension": 3, "metric": "dot"})
    await s.upsert("dst", [1, 2], [[1, 2, 3], [4, 5, 6]], [{"old": 1}, None])
    await s.update_aliases([CreateAlias("live", "dst")])
    await s.recover_collection("dst", s.collection_snapshots_dir / "src" / made.name)
    assert state(s, "dst") == before
    assert s.collection("live") is s.collection("dst")
    assert s.collection("dst").config.dimension == 6
    await s.close()


async def test_the_file_outlives_its_collection_and_is_deleted_by_name(tmp_path: Path) -> None:
    s, made = await seeded(tmp_path)
    before = state(s, "src")
    await s.delete_collection("src")
    folder = s.collection_snapshots_dir / "src"
    await s.recover_collection("src", cs.find(folder, made.name))
    assert state(s, "src") == before
    for bad in ("../../wal", "src-1-2026-01-01-00-00-00.snapshot", made.name + ".checksum"):
        with pytest.raises(SnapshotNotFound):
            cs.find(folder, bad)
    cs.delete(folder, made.name)
    assert cs.listed(folder) == [] and list(folder.iterdir()) == []
    with pytest.raises(CollectionNotFound):
        await s.snapshot_collection("nope")
    node = await s.snapshot()  # one deleted while its node snapshot was taken:
    with pytest.raises(CollectionNotFound):
        cs.pack(node.path, "deleted-meanwhile", folder)
    await s.close()


def _with_manifest(members: dict[str, bytes], change: Any) -> dict[str, bytes]:
    manifest = orjson.loads(members["MANIFEST.json"])
    change(manifest)
    return {**members, "MANIFEST.json": orjson.dumps(manifest)}


def rehashed(good: dict[str, bytes], name: str, data: bytes) -> dict[str, bytes]:
    """``good`` with its file ``name`` replaced by ``data``, the manifest's digest too:
    a file crafted to pass the checksums."""
    return _with_manifest(
        {**good, f"collection/{name}": data},
        lambda m: m["collection"]["files"].update({name: hashlib.sha256(data).hexdigest()}),
    )


def _hostile(good: dict[str, bytes]) -> dict[str, bytes]:
    """Files that must each be refused, by what is wrong with them."""

    def flipped(name: str) -> dict[str, bytes]:
        data = bytearray(good[name])
        data[len(data) // 2] ^= 1
        return {**good, name: bytes(data)}

    points = orjson.loads(good["collection/points.json"])
    bad_id = {**points, "ids": ["-1" if i == 5 else pid for i, pid in enumerate(points["ids"])]}
    bad_id["ids"][500] = -4
    sized = _with_manifest(good, lambda m: m["collection"]["config"].update(dimension=5))

    def count(m: dict[str, Any]) -> None:
        m["collection"]["count"] += 1

    def dimension(m: dict[str, Any]) -> None:
        m["collection"]["config"]["dimension"] = 0

    def no_kind(m: dict[str, Any]) -> None:
        del m["kind"]

    def unknown_setting(m: dict[str, Any]) -> None:
        m["collection"]["config"]["quantization"] = {"scalar": {}}

    twice = {**points, "ids": [points["ids"][0], *points["ids"][1:-1], points["ids"][0]]}
    deep: Any = {"a": 1}
    for _ in range(251):  # (a client's payload nests at most 200 levels deep)
        deep = {"a": deep}
    too_deep = {**points, "payloads": [deep, *points["payloads"][1:]]}
    return {
        "truncated": {"raw": tar(good)[:5000]},
        "a byte flipped in the vectors": flipped("collection/vectors.npy"),
        "a byte flipped in the payloads": flipped("collection/points.json"),
        "a path out of the folder": {**good, "../escape": b"x"},
        "an unlisted file": {**good, "collection/extra.bin": b"x"},
        "a file missing": {k: v for k, v in good.items() if k != "collection/alive.npy"},
        "no manifest": {k: v for k, v in good.items() if k != "MANIFEST.json"},
        "a manifest of another kind": _with_manifest(good, no_kind),
        "a count that does not match": _with_manifest(good, count),
        "a setting this node does not know": _with_manifest(good, unknown_setting),
        "a dimension of 0": _with_manifest(good, dimension),
        "vectors of another width": sized,
        "a negative point id": rehashed(good, "points.json", orjson.dumps(bad_id)),
        "an id twice": rehashed(good, "points.json", orjson.dumps(twice)),
        "a payload nested too deep": rehashed(good, "points.json", orjson.dumps(too_deep)),
        "not JSON": {**good, "MANIFEST.json": b"{nope"},
    }


async def test_damaged_or_hostile_files_are_refused_and_change_nothing(tmp_path: Path) -> None:
    s, made = await seeded(tmp_path)
    folder = s.collection_snapshots_dir / "src"
    good = members(folder / made.name)
    before = state(s, "src")
    cases = _hostile(good)
    cases["a symlink"] = {"raw": tar(good, {"collection/hnsw.bin": tarfile.SYMTYPE})}
    for what, files in cases.items():
        path = tmp_path / "bad.snapshot"
        path.write_bytes(files["raw"] if "raw" in files else tar(files))
        with pytest.raises(InvalidSnapshot) as err:
            await s.recover_collection("src", path)
        assert err.value.field == "snapshot", what
        assert state(s, "src") == before, what
        assert [c.name for c in s.collections()] == ["src"], what
        assert not any(n.startswith(RECOVERING) for n in s._collections), what
    assert sorted(p.name for p in s.collection_snapshots_dir.iterdir()) == ["src"]  # no leftovers
    await s.close()


async def test_a_recovery_is_refused_when_it_cannot_fit(tmp_path: Path) -> None:
    s, made = await seeded(tmp_path)
    path = s.collection_snapshots_dir / "src" / made.name
    with pytest.raises(InvalidSnapshot, match="room for 0 MiB"):
        cs.unpack(path, tmp_path / "x", room=0)
    # far below what this process holds, so refused however its resident memory moves
    # while the file is unpacked before the check (a limit 1 MiB above the use measured
    # here failed this test once in a full unit run, not reproduced in six more)
    s.memory_limit = 1 << 20
    with pytest.raises(InsufficientMemory):
        await s.recover_collection("other", path)
    assert [c.name for c in s.collections()] == ["src"]
    s.memory_limit = 0  # no limit
    await s.recover_collection("other", path)
    assert len(s.collection("other")) == 2900
    await s.update_aliases([CreateAlias("al", "src")])
    with pytest.raises(CollectionExists):
        await s.recover_collection("al", path)
    with pytest.raises(ValidationError):
        await s.recover_collection("../x", path)
    with pytest.raises(StorageError, match="extracting the snapshot file"):
        await s.recover_collection("other", tmp_path / "gone.snapshot")  # (deleted meanwhile)
    await s.close()


async def test_a_recovery_cut_short_leaves_a_hidden_collection_that_is_dropped(
    tmp_path: Path,
) -> None:
    """The log as a crash midway leaves it: the hidden collection created and partly
    filled, no replacement. After a restart it stays out of sight and is dropped."""
    s, made = await seeded(tmp_path)
    before = state(s, "src")
    hidden = RECOVERING + "src"
    s._commit({"op": "create_collection", "name": hidden, "config": {"dimension": 6}})
    s._commit(
        {"op": "upsert", "collection": hidden, "ids": [1], "payloads": [None]},
        np.ones((1, 6), dtype=np.float32),
    )
    await s.close(take_snapshot=False)

    again = await fresh(tmp_path / "node")
    assert hidden in again._collections
    assert [c.name for c in again.collections()] == ["src"] and state(again, "src") == before
    assert again.stats()["collections"] == 1
    with pytest.raises(CollectionNotFound):
        again.collection(hidden)
    with pytest.raises(CollectionNotFound):
        await again.delete_collection(hidden)
    for _ in range(30):  # the maintenance loop, once a second
        if hidden not in again._collections:
            break
        await asyncio.sleep(0.1)
    assert hidden not in again._collections
    await again.close(take_snapshot=False)
    third = await fresh(tmp_path / "node")  # its drop was logged
    assert hidden not in third._collections and state(third, "src") == before
    await third.close()


def test_files_are_listed_by_sequence_and_other_files_ignored(tmp_path: Path) -> None:
    names = [
        "c-1-10-2026-01-02-00-00-00.snapshot",  # collection "c-1" at sequence 10
        "c-9-2026-01-01-00-00-00.snapshot",
        "c-100-2026-01-01-00-00-00.snapshot",
    ]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / ".tmp-c-7-2026-01-01-00-00-00.snapshot-1").write_bytes(b"x")
    (tmp_path / "c-9-2026-01-01-00-00-00.snapshot.checksum").write_text("ab" * 32)
    listed = cs.listed(tmp_path)
    assert [d.name for d in listed] == [names[1], names[0], names[2]]
    assert listed[0].checksum == "ab" * 32  # the sidecar's
    assert listed[1].checksum == hashlib.sha256(b"x").hexdigest()  # none: computed
    assert listed[1].creation_time == "2026-01-02T00:00:00"


async def test_vectors_too_long_for_their_metric_are_refused(tmp_path: Path) -> None:
    """A client's dot-product vector longer than ``NORM_MAX`` is refused (its scores
    overflow to infinity, ``null`` in answers); one in a crafted file was recovered."""
    s = await fresh(tmp_path / "node")
    await s.create_collection("d", {"dimension": 4, "metric": "dot"})
    await s.upsert("d", [1, 2], [[1, 2, 3, 4], [4, 3, 2, 1]], [None, None])
    made = await s.snapshot_collection("d")
    good = members(s.collection_snapshots_dir / "d" / made.name)
    before = state(s, "d")
    buf = io.BytesIO()
    np.save(buf, np.full((2, 4), 3e38, dtype=np.float32))
    path = tmp_path / "long.snapshot"
    path.write_bytes(tar(rehashed(good, "vectors.npy", buf.getvalue())))
    with pytest.raises(InvalidSnapshot, match="at most"):
        await s.recover_collection("d", path)
    assert state(s, "d") == before
    await s.close()


async def test_large_payloads_are_recovered_in_records_of_bounded_size(tmp_path: Path) -> None:
    """Recovered points were logged 1,000 at a time whatever their payloads: a batch of
    large ones made a record past the log's limit, which replay took for damage (the
    node, having acknowledged the recovery, refused to start). Batches are bounded by
    their bytes too."""
    s = await fresh(tmp_path / "node")
    await s.create_collection("big", {"dimension": 2, "metric": "dot"})
    blob = "x" * 400_000
    for first in range(0, 60, 20):
        ids = list(range(first, first + 20))
        await s.upsert("big", ids, [[1.0, float(i)] for i in ids], [{"b": blob}] * 20)
    made = await s.snapshot_collection("big")
    before = state(s, "big")
    records: list[int] = []
    s.on_commit.append(lambda seq, body: records.append(len(body)))
    await s.recover_collection("big", s.collection_snapshots_dir / "big" / made.name)
    upserts = records[1:-1]  # (between the hidden collection's creation and the swap)
    assert len(upserts) >= 3 and max(upserts) <= cs.BATCH_BYTES + 500_000, records
    assert state(s, "big") == before
    await s.close(take_snapshot=False)
    again = await fresh(tmp_path / "node")  # replayed from the log
    assert state(again, "big") == before
    await again.close()


async def test_a_write_past_the_log_record_limit_is_refused_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record longer than ``wal.MAX_RECORD`` was written and acknowledged, then taken
    for damage at the next start (a body limit set over 1 GiB allowed one)."""
    monkeypatch.setattr(store_module, "MAX_RECORD", 1 << 20)  # (the limit, made small)
    s = await fresh(tmp_path / "node")
    await s.create_collection("c", {"dimension": 2})
    await s.upsert("c", [1], [[1.0, 2.0]], [{"small": 1}])
    before, seq = state(s, "c"), s.sequence
    with pytest.raises(PayloadTooLarge) as err:
        await s.upsert("c", [1, 2], [[1.0, 2.0], [3.0, 4.0]], [{"b": "x" * (1 << 20)}, None])
    assert err.value.field == "vectors"
    assert state(s, "c") == before and s.sequence == seq
    await s.close(take_snapshot=False)
    again = await fresh(tmp_path / "node")
    assert state(again, "c") == before
    await again.close()
