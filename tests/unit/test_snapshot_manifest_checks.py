"""A snapshot's manifest is checked whole before anything in it is used: names of
collections, folders, files and aliases become paths and URLs later, so a snapshot file
(restored) or a snapshot folder (loaded at start-up) naming anything a node could not
have written is refused, not trusted."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.tarballs import members, tar
from vectorizer.engine import collection_snapshots, full_snapshots, snapshot
from vectorizer.engine.aliases import CreateAlias
from vectorizer.engine.config import HnswParams
from vectorizer.engine.store import RECOVERING, Store, StoreOptions
from vectorizer.engine.wal import FsyncPolicy
from vectorizer.errors import InvalidSnapshot, ValidationError

Manifest = dict[str, Any]


async def fresh(path: Path) -> Store:
    s = Store(path, StoreOptions(fsync=FsyncPolicy("never"), snapshot_interval_s=0))
    await s.open()
    return s


async def seeded(tmp_path: Path) -> tuple[dict[str, bytes], Path]:
    """The members of a genuine full snapshot file (collections a and b, alias al -> b),
    and the node snapshot folder it was cut from."""
    s = await fresh(tmp_path / "node")
    await s.create_collection("a", {"dimension": 2})
    await s.create_collection("b", {"dimension": 2})
    await s.upsert("a", [1, 2], [[1, 0], [0, 1]], [None, {"k": 1}])
    await s.upsert("b", ["x"], [[1, 1]], [None])
    await s.update_aliases([CreateAlias("al", "b")])
    made = await s.snapshot_node()
    node = snapshot.list_snapshots(s.data_dir / "snapshots")[0].path
    await s.close()
    return members(s.full_snapshots_dir / made.name), node


def crafted(good: dict[str, bytes], change: Callable[[Manifest], None]) -> dict[str, bytes]:
    manifest = orjson.loads(good["MANIFEST.json"])
    change(manifest)
    return {**good, "MANIFEST.json": orjson.dumps(manifest)}


def _set(i: int, key: str, value: Any) -> Callable[[Manifest], None]:
    return lambda m: m["collections"][i].__setitem__(key, value)


def _file(i: int, name: str, digest: str) -> Callable[[Manifest], None]:
    return lambda m: m["collections"][i]["files"].__setitem__(name, digest)


def _aliases(aliases: Any) -> Callable[[Manifest], None]:
    return lambda m: m.__setitem__("aliases", aliases)


def hostile(outside: Path) -> dict[str, Callable[[Manifest], None]]:
    """Manifests no node writes, by what is wrong with them (``outside``: a file beside
    the data directories, named with its correct checksum)."""
    digest = hashlib.sha256(outside.read_bytes()).hexdigest()
    return {
        "a name with a path": _set(0, "name", "../../ESCAPED"),
        "the name '..'": _set(0, "name", ".."),
        "an empty name": _set(0, "name", ""),
        "a name that is a number": _set(0, "name", 5),
        "a name that is null": _set(0, "name", None),
        "a name with a space": _set(0, "name", "a b"),
        "a hidden name with a path": _set(0, "name", RECOVERING + "../x"),
        "the hidden prefix alone": _set(0, "name", RECOVERING),
        "two collections of one name": _set(1, "name", "a"),
        "a file outside, relative": _file(0, "../../../" + outside.name, digest),
        "a file outside, absolute": _file(0, str(outside), digest),
        "a file '..'": _file(0, "..", digest),
        "a file that is a number": lambda m: m["collections"][0].__setitem__("files", {"x": 1}),
        "files not an object": _set(0, "files", ["vectors.npy"]),
        "a count that is text": _set(0, "count", "2"),
        "an alias with a path": _aliases({"../al": "b"}),
        "an alias with a space": _aliases({"a l": "b"}),
        "an alias of a collection's name": _aliases({"a": "b"}),
        "an alias of no collection": _aliases({"al": "nope"}),
        "an alias of a number": _aliases({"al": 5}),
        "aliases not an object": _aliases(["al"]),
        "collections not a list": lambda m: m.__setitem__("collections", {"a": 1}),
        "a sequence that is text": lambda m: m.__setitem__("sequence", str(m["sequence"])),
    }


async def test_a_restore_refuses_a_manifest_naming_what_no_node_writes(tmp_path: Path) -> None:
    good, _ = await seeded(tmp_path)
    outside = tmp_path / "outside.txt"
    outside.write_text("not part of any snapshot\n")
    for what, change in hostile(outside).items():
        bad = tmp_path / "bad.snapshot"
        bad.write_bytes(tar(crafted(good, change)))
        target = tmp_path / "restored"
        with pytest.raises(InvalidSnapshot):
            full_snapshots.restore(bad, target)
        assert not target.exists(), what  # (made for it, gone again)


async def test_a_restore_refuses_two_collections_in_one_folder(tmp_path: Path) -> None:
    good, _ = await seeded(tmp_path)
    manifest = orjson.loads(good["MANIFEST.json"])
    first, second = manifest["collections"]
    second.update(dir=first["dir"], files=first["files"], count=first["count"])
    shared = {k: v for k, v in good.items() if not k.startswith(second["dir"] + "/")}
    bad = tmp_path / "bad.snapshot"
    bad.write_bytes(tar({**shared, "MANIFEST.json": orjson.dumps(manifest)}))
    with pytest.raises(InvalidSnapshot, match="share the folder"):
        full_snapshots.restore(bad, tmp_path / "restored")


async def test_a_restore_refuses_files_the_manifest_does_not_list(tmp_path: Path) -> None:
    good, _ = await seeded(tmp_path)
    manifest = orjson.loads(good["MANIFEST.json"])
    entry = manifest["collections"][0]
    entry["files"] = {k: v for k, v in entry["files"].items() if k != "points.json"}
    bad = tmp_path / "bad.snapshot"
    bad.write_bytes(tar({**good, "MANIFEST.json": orjson.dumps(manifest)}))
    with pytest.raises(InvalidSnapshot, match="not the ones its manifest lists"):
        full_snapshots.restore(bad, tmp_path / "restored")


@pytest.mark.timeout(60)
async def test_a_restore_never_reads_a_device_the_manifest_names(tmp_path: Path) -> None:
    good, _ = await seeded(tmp_path)
    bad = tmp_path / "bad.snapshot"
    bad.write_bytes(tar(crafted(good, _file(0, "../" * 20 + "dev/zero", "0" * 64))))
    with pytest.raises(InvalidSnapshot):
        full_snapshots.restore(bad, tmp_path / "restored")


async def test_the_hidden_collection_of_a_recovery_is_restored(tmp_path: Path) -> None:
    """A snapshot taken while a collection was recovered holds its hidden collection."""
    good, _ = await seeded(tmp_path)
    ok = tmp_path / "ok.snapshot"
    ok.write_bytes(tar(crafted(good, _set(0, "name", RECOVERING + "a"))))
    info = full_snapshots.restore(ok, tmp_path / "restored")
    _, collections, aliases = snapshot.load_dir(info.path, HnswParams())
    assert set(collections) == {RECOVERING + "a", "b"} and aliases == {"al": "b"}


async def test_a_snapshot_folder_naming_what_no_node_writes_does_not_load(
    tmp_path: Path,
) -> None:
    _, node = await seeded(tmp_path)
    outside = tmp_path / "outside.txt"
    outside.write_text("not part of any snapshot\n")
    snapshot.load_dir(node, HnswParams())  # (as written, it loads)
    original = (node / "MANIFEST.json").read_bytes()
    for what, change in hostile(outside).items():
        manifest = orjson.loads(original)
        change(manifest)
        (node / "MANIFEST.json").write_bytes(orjson.dumps(manifest))
        with pytest.raises(Exception) as caught:
            snapshot.load_dir(node, HnswParams())
        assert isinstance(caught.value, InvalidSnapshot | ValueError), what
    # a file of the folder that is a link (to a file with the right checksum) is refused
    (node / "MANIFEST.json").write_bytes(original)
    manifest = orjson.loads(original)
    entry = manifest["collections"][0]
    target = node / entry["dir"] / "points.json"
    shutil.copy(target, tmp_path / "points.json")
    target.unlink()
    target.symlink_to(tmp_path / "points.json")
    with pytest.raises(InvalidSnapshot, match="not a regular file"):
        snapshot.load_dir(node, HnswParams())


async def test_a_node_does_not_start_from_a_snapshot_naming_a_path(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """At start-up such a snapshot is unusable, as a damaged one is: passed over for what
    holds all it held (here the log), else the node refuses to start (``load_latest``)."""
    _, node = await seeded(tmp_path)
    manifest = orjson.loads((node / "MANIFEST.json").read_bytes())
    manifest["collections"][0]["name"] = "../../ESCAPED"
    (node / "MANIFEST.json").write_bytes(orjson.dumps(manifest))
    s = await fresh(tmp_path / "node")
    assert sorted(c.name for c in s.collections()) == ["a", "b"]
    assert "is unusable" in caplog.text
    await s.close()


async def test_a_collection_snapshot_file_never_leaves_its_folder(tmp_path: Path) -> None:
    """Whatever a node snapshot calls a collection, its snapshot file is written in the
    collection's own folder or not at all."""
    _, node = await seeded(tmp_path)
    manifest = orjson.loads((node / "MANIFEST.json").read_bytes())
    manifest["collections"][0]["name"] = "../../ESCAPED"
    (node / "MANIFEST.json").write_bytes(orjson.dumps(manifest))
    base = tmp_path / "node" / "collection-snapshots"
    with pytest.raises(ValidationError):
        collection_snapshots.pack(node, "../../ESCAPED", base / "../../ESCAPED")
    assert not (tmp_path / "ESCAPED").exists()
