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
at its sequence (its replicas are best started empty: they sync fully from it). Killed
midway, a restore leaves the old data whole (before it commits: ``RESTORE_MARKER``) or
is finished by the next start or restore (after): never neither.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

import orjson

from vectorizer.engine import collection_snapshots, snapshot
from vectorizer.engine.collection_snapshots import Description
from vectorizer.engine.config import HnswParams
from vectorizer.engine.dirlock import DirLock
from vectorizer.engine.files import fsync_path, make_dir_durably
from vectorizer.engine.snapshot import MANIFEST, SYNC_MARKER, SnapshotInfo
from vectorizer.engine.wal import MAX_SEQUENCE
from vectorizer.errors import InvalidSnapshot, StorageError

log = logging.getLogger(__name__)

FOLDER = "full-snapshots"
# Written in the data directory once a restore's snapshot is whole and durable, before
# anything of the old data goes: it names that snapshot's folder (a leftover, by its name,
# without it) and the files that go with the old data. Found later, the restore was cut
# short (killed) and is finished, never undone: the old data may be partly gone already.
RESTORE_MARKER = "RESTORE_COMMITTED"
# What a restore wipes beside the log and the snapshots, whoever asks for it: a full sync
# cut short (its marker would wipe the restored snapshot at the next start).
WIPED = (SYNC_MARKER,)
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
    make_dir_durably(directory)
    if (cut := collection_snapshots.already_cut(final)) is not None:
        return cut
    tmp = collection_snapshots.temp_path(final)
    try:
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            for member in members:
                tar.add(node_snapshot / member, arcname=member)
        return collection_snapshots.seal(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def restore(
    archive: Path, data_dir: Path, *, replace: bool = False, describing: tuple[str, ...] = ()
) -> SnapshotInfo:
    """Make ``data_dir`` hold exactly the node snapshot in ``archive`` (see ``_restore``),
    refused while a server uses it. ``describing``: files of the directory that
    describe the data it holds (the replication history), which go with it. A restore
    an earlier one left committed but unfinished (killed) is finished first. A directory
    made for it is gone again when it fails before its commit."""
    made = not data_dir.exists()
    try:
        with DirLock(data_dir):
            finish_restore(data_dir)
            return _restore(archive, data_dir, replace, (*describing, *WIPED))
    except BaseException:
        if made and not (data_dir / RESTORE_MARKER).exists():
            shutil.rmtree(data_dir, ignore_errors=True)
        raise


def _restore(
    archive: Path, data_dir: Path, replace: bool, describing: tuple[str, ...]
) -> SnapshotInfo:
    """Make ``data_dir`` hold exactly the node snapshot in ``archive``. A data
    directory that holds data already is refused unless ``replace``, which wipes its
    log, snapshots and what describes them (once the file has been checked; snapshot
    files, keys and audit logs stay).

    The checked snapshot is made durable and the restore committed (``RESTORE_MARKER``)
    before anything of the old data goes: killed before that, the directory holds its
    old data (and a leftover folder, removed at start-up); after, the restore is
    finished by the next start (or restore), never undone."""
    snapshots = data_dir / "snapshots"
    held = [p for p in (data_dir / "wal", snapshots) if _holds_data(p)]
    held += [data_dir / name for name in describing if (data_dir / name).exists()]
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
        pending = _Pending(incoming.name, _extract(archive, incoming), describing)
        try:  # every checksum, every collection loaded as a node loads it
            info, _, _ = snapshot.load_dir(incoming, HnswParams())
        except (ValueError, KeyError, TypeError, OSError, RuntimeError) as exc:
            raise InvalidSnapshot(f"the snapshot does not load ({exc})") from None
        fsync_path(snapshots)
        fsync_path(data_dir)
        _commit(data_dir, pending)
    except BaseException:
        if _uncommit(data_dir):
            shutil.rmtree(incoming, ignore_errors=True)
        raise
    try:
        final = _finish(data_dir, pending)
    except OSError as exc:
        raise StorageError(
            f"the restore to sequence {pending.sequence} is committed but could not be "
            f"finished ({exc}); it is finished when the node starts (or when restore "
            "runs again), never undone"
        ) from exc
    return SnapshotInfo(pending.sequence, final, info.created_at, info.size_bytes)


def _holds_data(folder: Path) -> bool:
    """Whether ``folder`` (the log's, or the snapshots') holds anything but what a crash
    left half-done (removed at start-up)."""
    partial = (snapshot.TMP_PREFIX, snapshot.INCOMING_PREFIX, snapshot.DELETING_PREFIX)
    return folder.exists() and any(not p.name.startswith(partial) for p in folder.iterdir())


# ---- committing a restore, and finishing it -------------------------------------------


@dataclass(frozen=True)
class _Pending:
    """A restore committed: the folder of its snapshot (in ``snapshots/``), the sequence
    it ends at, and the files of the data directory that go with the old data."""

    incoming: str
    sequence: int
    describing: tuple[str, ...]

    def to_json(self) -> bytes:
        return orjson.dumps(
            {"snapshot": self.incoming, "sequence": self.sequence, "wipe": list(self.describing)}
        )

    @classmethod
    def parse(cls, raw: bytes) -> _Pending | None:
        """The restore ``raw`` (a marker's bytes) names, or None if it is not one."""
        try:
            marker = orjson.loads(raw)
            incoming, sequence, wipe = marker["snapshot"], marker["sequence"], marker["wipe"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return None
        ok = isinstance(incoming, str) and incoming.startswith(snapshot.INCOMING_PREFIX)
        ok = ok and type(sequence) is int and 0 <= sequence <= MAX_SEQUENCE
        ok = ok and isinstance(wipe, list) and all(_plain_name(n) for n in [incoming, *wipe])
        return cls(incoming, sequence, tuple(wipe)) if ok else None


def _plain_name(name: object) -> bool:
    """A name of a file right in its folder (no path elsewhere)."""
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name


def _commit(data_dir: Path, pending: _Pending) -> None:
    """Record durably, in one step, that the restore ``pending`` goes through."""
    tmp = data_dir / f"{RESTORE_MARKER}.tmp"
    tmp.write_bytes(pending.to_json())
    fsync_path(tmp)
    os.rename(tmp, data_dir / RESTORE_MARKER)
    fsync_path(data_dir)


def _uncommit(data_dir: Path) -> bool:
    """Take back a commit that failed midway (nothing of the old data went yet): whether
    the marker is durably gone, so that the restore's snapshot may go too."""
    marker = data_dir / RESTORE_MARKER
    try:
        if marker.exists():
            marker.unlink()
            fsync_path(data_dir)
        (data_dir / f"{RESTORE_MARKER}.tmp").unlink(missing_ok=True)
    except OSError:
        return False
    return True


def finish_restore(data_dir: Path) -> None:
    """Finish a restore that was committed but cut short (``vectorizer restore`` killed),
    if ``data_dir`` holds one; run before anything else reads the directory."""
    marker = data_dir / RESTORE_MARKER
    (data_dir / f"{RESTORE_MARKER}.tmp").unlink(missing_ok=True)  # (never committed)
    if not marker.exists():
        return
    pending = _Pending.parse(marker.read_bytes())
    if pending is None:
        raise StorageError(
            f"{marker} does not say which restore was committed (damaged?): the data "
            "directory may hold part of its old data and the restored snapshot; look at "
            f"what it holds, then remove {RESTORE_MARKER} and restore again"
        )
    log.warning(
        "a restore to sequence %d was cut short once committed; finishing it", pending.sequence
    )
    try:
        _finish(data_dir, pending)
    except OSError as exc:
        raise StorageError(
            f"finishing the restore to sequence {pending.sequence} that was cut short failed "
            f"({exc}); it stays committed, and is finished at the next attempt"
        ) from exc


def _finish(data_dir: Path, pending: _Pending) -> Path:
    """Put the committed restore's snapshot in place of the old data (again from
    wherever it was cut short: each step may already be done); its final folder."""
    snapshots = data_dir / "snapshots"
    incoming, final = snapshots / pending.incoming, snapshots / f"{pending.sequence:020d}"
    keep = incoming if incoming.is_dir() else final  # (once renamed, the final folder)
    if not (keep / MANIFEST).is_file():
        raise StorageError(
            f"{data_dir / RESTORE_MARKER} says a restore to sequence {pending.sequence} was "
            f"committed, but its snapshot ({pending.incoming}, or {final.name} once in "
            "place) is gone: the data directory may hold part of its old data; look at what "
            f"it holds, then remove {RESTORE_MARKER} and restore again"
        )
    # (whatever else lies among the snapshots goes too, files as well as folders: failing
    # on one midway leaves the marker, and the next attempt goes on from there)
    for old in snapshots.iterdir():
        if old != keep:
            _remove(old)
    _remove(data_dir / "wal")
    for name in pending.describing:
        _remove(data_dir / name)
    fsync_path(data_dir)
    if keep == incoming:
        os.rename(incoming, final)
    fsync_path(snapshots)
    (data_dir / RESTORE_MARKER).unlink()
    fsync_path(data_dir)
    return final


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _extract(archive: Path, into: Path) -> int:
    """Extract the expected files only (after checking every entry), each durable; the
    sequence."""
    try:
        with tarfile.open(archive, "r:") as tar:
            members = tar.getmembers()
            for m in members:
                if m.name.startswith(collection_snapshots.MEMBERS_DIR):
                    raise InvalidSnapshot(
                        "a collection's snapshot file, not a node's: recover it into a running "
                        "node (PUT /qdrant/collections/{name}/snapshots/recover, or upload it "
                        "to .../snapshots/upload)"
                    )
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
                    out.flush()
                    os.fsync(out.fileno())
            for folder in {(into / m.name).parent for m in members}:
                fsync_path(folder)
    except (tarfile.TarError, EOFError) as exc:
        raise InvalidSnapshot(f"not a snapshot file ({exc})") from None
    try:
        manifest = orjson.loads((into / MANIFEST).read_bytes())
        sequence, entries = manifest["sequence"], manifest["collections"]
        # (a manifest names its own folders: none outside it)
        ok = type(sequence) is int and sequence >= 0
        ok = ok and all(_DIR_RE.fullmatch(str(entry["dir"])) for entry in entries)
    except (orjson.JSONDecodeError, KeyError, TypeError):
        ok = False
    if not ok:
        raise InvalidSnapshot("the snapshot's manifest is not a node snapshot's")
    if sequence > MAX_SEQUENCE:  # (the node could not log the records after it)
        raise InvalidSnapshot(
            f"the snapshot ends at sequence {sequence}, past the highest a node continues "
            f"from ({MAX_SEQUENCE})"
        )
    # Every name in it (collections, folders, files, aliases) one a node could have
    # written, and its files exactly those in the archive: the names become paths.
    snapshot.check_manifest(manifest)
    listed = {f"{entry['dir']}/{file}" for entry in entries for file in entry["files"]}
    if listed != {m.name for m in members} - {MANIFEST}:
        raise InvalidSnapshot("the snapshot's files are not the ones its manifest lists")
    result: int = sequence
    return result
