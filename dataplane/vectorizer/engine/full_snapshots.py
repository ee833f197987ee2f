"""Snapshots of the whole node as one file (Qdrant's full snapshots), and restoring a
data directory from one (``vectorizer restore``).

A file is a plain tar of a node snapshot folder: its ``MANIFEST.json`` (every
collection's configuration, point count and files' SHA-256, the aliases, the sequence)
and one folder per collection. The files live in ``<data dir>/full-snapshots/``, named
``full-<sequence>-<time>.snapshot`` with ``<file>.checksum`` beside each; listing,
finding and deleting them is ``collection_snapshots``' (the same names, another folder).

Restoring checks the file as a recovery does (only the expected regular files, each
matching the manifest's checksum, every collection loading as a node would load it),
then puts it in the empty data directory as its only snapshot: the node starts from it
at its sequence (its replicas are best started empty: they sync fully from it).
"""

from __future__ import annotations

import os
import re
import shutil
import tarfile
from pathlib import Path

import orjson

from vectorizer.engine import collection_snapshots, snapshot
from vectorizer.engine.collection_snapshots import Description
from vectorizer.engine.config import HnswParams
from vectorizer.engine.dirlock import DirLock
from vectorizer.engine.files import fsync_path
from vectorizer.engine.snapshot import MANIFEST, SnapshotInfo
from vectorizer.errors import InvalidSnapshot

FOLDER = "full-snapshots"
_PREFIX = "full"
_DIR_RE = re.compile(r"c\d{5}")
_MEMBER_RE = re.compile(r"c\d{5}/(?:" + collection_snapshots.FILES + ")")
_MANIFEST_MAX = 64 << 20  # (a manifest names every collection)


def pack(node_snapshot: Path, directory: Path) -> Description:
    """Write the node snapshot at ``node_snapshot`` into a new file in ``directory``
    (blocking: run it off the loop), atomically."""
    manifest = orjson.loads((node_snapshot / MANIFEST).read_bytes())
    final = directory / collection_snapshots.file_name(_PREFIX, manifest)
    members = [MANIFEST] + [
        f"{entry['dir']}/{file}" for entry in manifest["collections"] for file in entry["files"]
    ]
    directory.mkdir(parents=True, exist_ok=True)
    if (cut := collection_snapshots.already_cut(final)) is not None:
        return cut
    tmp = collection_snapshots.temp_path(final)
    try:
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            for member in members:
                tar.add(node_snapshot / member, arcname=member)
        collection_snapshots.seal(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return collection_snapshots.describe(final)


def restore(
    archive: Path, data_dir: Path, *, replace: bool = False, describing: tuple[str, ...] = ()
) -> SnapshotInfo:
    """Make ``data_dir`` hold exactly the node snapshot in ``archive`` (see ``_restore``),
    refused while a server uses it. ``describing``: files of the directory that
    describe the data it holds (the replication history), which go with it. A directory
    made for it is gone again when it fails."""
    made = not data_dir.exists()
    try:
        with DirLock(data_dir):
            return _restore(archive, data_dir, replace, [data_dir / name for name in describing])
    except BaseException:
        if made:
            shutil.rmtree(data_dir, ignore_errors=True)
        raise


def _restore(archive: Path, data_dir: Path, replace: bool, describing: list[Path]) -> SnapshotInfo:
    """Make ``data_dir`` hold exactly the node snapshot in ``archive``. A data
    directory that holds data already is refused unless ``replace``, which wipes its
    log, snapshots and what describes them (once the file has been checked; snapshot
    files, keys and audit logs stay)."""
    snapshots = data_dir / "snapshots"
    held = [p for p in (data_dir / "wal", snapshots) if p.exists() and any(p.iterdir())]
    held += [p for p in describing if p.exists()]
    if held and not replace:
        raise InvalidSnapshot(
            f"{data_dir} holds data already ({', '.join(p.name for p in held)}); "
            "restore into an empty data directory, or replace what it holds",
            field="data_dir",
        )
    snapshots.mkdir(parents=True, exist_ok=True)
    incoming = snapshots / f"{snapshot.INCOMING_PREFIX}restore-{os.getpid()}"
    shutil.rmtree(incoming, ignore_errors=True)
    try:
        sequence = _extract(archive, incoming)
        try:  # every checksum, every collection loaded as a node loads it
            info, _, _ = snapshot.load_dir(incoming, HnswParams())
        except (ValueError, KeyError, TypeError, OSError, RuntimeError) as exc:
            raise InvalidSnapshot(f"the snapshot does not load ({exc})") from None
        # (whatever else lies among the snapshots goes too, files as well as folders:
        # failing on one midway would leave the log gone and the restore undone)
        for old in snapshots.iterdir():
            if old != incoming:
                _remove(old)
        shutil.rmtree(data_dir / "wal", ignore_errors=True)
        for path in describing:
            path.unlink(missing_ok=True)
        final = snapshots / f"{sequence:020d}"
        os.rename(incoming, final)
        fsync_path(snapshots)
        fsync_path(data_dir)
    except BaseException:
        shutil.rmtree(incoming, ignore_errors=True)
        raise
    return SnapshotInfo(sequence, final, info.created_at, info.size_bytes)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _extract(archive: Path, into: Path) -> int:
    """Extract the expected files only (after checking every entry); the sequence."""
    try:
        with tarfile.open(archive, "r:") as tar:
            members = tar.getmembers()
            for m in members:
                expected = m.name == MANIFEST or _MEMBER_RE.fullmatch(m.name) is not None
                if not expected or not m.isfile():
                    raise InvalidSnapshot(f"unexpected entry {m.name!r} in the snapshot")
            if len({m.name for m in members}) != len(members):
                raise InvalidSnapshot("an entry appears twice in the snapshot")
            manifest = next((m for m in members if m.name == MANIFEST), None)
            if manifest is None or manifest.size > _MANIFEST_MAX:
                raise InvalidSnapshot("the snapshot has no manifest (or an oversized one)")
            into.mkdir()
            for m in members:
                (into / m.name).parent.mkdir(exist_ok=True)
                source = tar.extractfile(m)
                assert source is not None  # a regular file (checked)
                with open(into / m.name, "wb") as out:
                    shutil.copyfileobj(source, out, 1 << 20)
    except (tarfile.TarError, EOFError) as exc:
        raise InvalidSnapshot(f"not a snapshot file ({exc})") from None
    try:
        manifest = orjson.loads((into / MANIFEST).read_bytes())
        sequence, entries = manifest["sequence"], manifest["collections"]
        # (a manifest names its own folders: none outside it)
        ok = isinstance(sequence, int) and sequence >= 0
        ok = ok and all(_DIR_RE.fullmatch(str(entry["dir"])) for entry in entries)
    except (orjson.JSONDecodeError, KeyError, TypeError):
        ok = False
    if not ok:
        raise InvalidSnapshot("the snapshot's manifest is not a node snapshot's")
    result: int = sequence
    return result
