"""Snapshots: every collection at one log sequence, written atomically, checksummed.

Layout: ``snapshots/<seq, 20 digits>/MANIFEST.json`` plus one folder per collection
(``c00000`` …) holding ``vectors.npy``, ``alive.npy`` (numpy, no pickle),
``points.json`` (ids and payloads) and ``hnsw.bin`` (hnswlib's own format). A snapshot
is built in a temporary folder, fsynced, renamed into place and the parent fsynced; a
snapshot whose manifest or checksums do not verify is passed over at start-up, where an
older snapshot or the log holds what it held (else the node refuses to start). One is
deleted by renaming it out of the way first (``DELETING_PREFIX``), so that a deletion cut
short never leaves a numbered folder without its manifest.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

import orjson

from vectorizer.engine import validation
from vectorizer.engine.collection import Collection
from vectorizer.engine.config import CollectionConfig, HnswParams
from vectorizer.engine.files import fsync_path, make_dir_durably, sha256
from vectorizer.engine.wal import MAX_SEQUENCE
from vectorizer.errors import CorruptLog, InvalidSnapshot

log = logging.getLogger(__name__)

FORMAT = 1
MANIFEST = "MANIFEST.json"
# Directories of snapshots not yet complete: being written here, or received from the
# primary. Found at start-up they are leftovers of a crash (or a full disk): removed.
TMP_PREFIX = ".tmp-"
INCOMING_PREFIX = ".incoming-"
# Snapshots found damaged at a start that an older one served: kept, never loaded.
DAMAGED_PREFIX = ".damaged-"
# A snapshot being replaced by another of the same sequence (a graph rebuilt since it was
# taken): moved aside until the new one is in place. Found at start-up, it is put back if
# the new one never arrived, else removed.
REPLACED_PREFIX = ".replaced-"
# A snapshot being deleted (pruned): renamed to this first, then its files deleted. Found
# at start-up it is the leftover of a deletion cut short (kill -9): removed. (Deleted in
# place, a folder cut short kept its number and lost its manifest, the first file gone:
# an unusable snapshot at every start, never counted or pruned again.)
DELETING_PREFIX = ".deleting-"
_NAME_RE = re.compile(r"\d{20}")
# The prefix of the hidden collection a recovery from a collection snapshot file fills
# (``store.RECOVERING``): the one collection name a snapshot may hold that no client may
# give.
RECOVERING = "~recovering~"
# In the data directory while a replica's full sync replaces its data (``Store``'s).
SYNC_MARKER = "SYNC_IN_PROGRESS"


@dataclass(frozen=True)
class SnapshotInfo:
    sequence: int
    path: Path
    created_at: float
    size_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "sequence": self.sequence,
            "created_at": self.created_at,
            "size_bytes": self.size_bytes,
            "name": self.path.name,
        }


# What a snapshot holds: its collections by name, and the aliases naming them.
Loaded = tuple[SnapshotInfo, dict[str, Collection], dict[str, str]]


def write(
    directory: Path, sequence: int, collections: list[Collection], aliases: dict[str, str]
) -> SnapshotInfo:
    """Write a snapshot of ``collections`` and ``aliases`` (alias -> collection) at
    ``sequence`` (blocking; run off the loop)."""
    make_dir_durably(directory)
    final = directory / f"{sequence:020d}"
    tmp = directory / f"{TMP_PREFIX}{sequence:020d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        return _write(directory, tmp, final, sequence, collections, aliases)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a full disk gets its room back
        raise


def _write(
    directory: Path,
    tmp: Path,
    final: Path,
    sequence: int,
    collections: list[Collection],
    aliases: dict[str, str],
) -> SnapshotInfo:
    entries = []
    for i, coll in enumerate(collections):
        sub = tmp / f"c{i:05d}"
        sub.mkdir()
        entry = coll.export(sub)
        entry["dir"] = sub.name
        entry["files"] = {f.name: sha256(f) for f in sorted(sub.iterdir())}
        for f in sub.iterdir():
            fsync_path(f)
        fsync_path(sub)
        entries.append(entry)
    created = time.time()
    manifest = {
        "format": FORMAT,
        "sequence": sequence,
        "created_at": created,
        "collections": entries,
        "aliases": aliases,
    }
    (tmp / MANIFEST).write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    fsync_path(tmp / MANIFEST)
    fsync_path(tmp)
    if final.exists():  # (one of the same sequence: moved aside, never missing)
        aside = directory / f"{REPLACED_PREFIX}{final.name}"
        shutil.rmtree(aside, ignore_errors=True)
        os.rename(final, aside)
        os.rename(tmp, final)
        fsync_path(directory)
        shutil.rmtree(aside)
    else:
        os.rename(tmp, final)
        fsync_path(directory)
    size = sum(f.stat().st_size for f in final.rglob("*") if f.is_file())
    return SnapshotInfo(sequence, final, created, size)


def remove_partial(directory: Path) -> None:
    """Remove snapshots that were never completed (see ``TMP_PREFIX``) and what is left of
    deletions cut short (``DELETING_PREFIX``), and finish a replacement a crash cut short
    (``REPLACED_PREFIX``): the old snapshot back if the new one is not in its place."""
    for prefix in (TMP_PREFIX, INCOMING_PREFIX, DELETING_PREFIX):
        for stale in directory.glob(f"{prefix}*"):
            shutil.rmtree(stale, ignore_errors=True)
    for aside in directory.glob(f"{REPLACED_PREFIX}*"):
        final = directory / aside.name.removeprefix(REPLACED_PREFIX)
        if final.exists():
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.rename(aside, final)
            fsync_path(directory)


def load_latest(
    directory: Path, defaults: HnswParams, log_holds: range = range(1, 1)
) -> Loaded | None:
    """The newest snapshot that verifies, with its collections and aliases; None when
    there is none.

    One that does not verify is passed over only for what holds all it held: an older
    snapshot (or none) and the log after it up to its sequence (``log_holds``: the
    sequences of the records the log holds). Otherwise ``CorruptLog``, and every file
    stays as it is: what failed may have been this start, not the files (one unreadable
    for a moment), and a node started without that snapshot's data would take writes
    numbered as if it had never held it, which the snapshot would shadow once it loads.

    Newer ones that did not verify (or lost their manifest) are set aside as
    ``.damaged-<name>`` once an older one (or the log alone) loads in their place, kept
    for inspection but no longer counted among the snapshots retained: else the next
    snapshots would prune the good one behind them, and the log back to it, keeping the
    damaged one in its place (and it would be reported unusable at every start).

    Folders without a manifest older than the one that loads are removed: what earlier
    code left of a prune cut short (it deleted a snapshot in place, its manifest first),
    of no use beside the newer snapshot even if it was a damaged snapshot instead."""
    missing = _without_manifest(directory)
    unusable: list[Path] = []  # (those with a manifest that did not load)
    for info in list_snapshots(directory):
        try:
            loaded: Loaded = (info, *_load(info.path, _manifest(info.path), defaults))
        except Exception as exc:  # any damage: fall back to an older snapshot
            log.error("snapshot %s is unusable (%s); trying an older one", info.path.name, exc)
            unusable.append(info.path)
            continue
        behind = [p for p in missing if int(p.name) < info.sequence]
        unusable += _unusable([p for p in missing if p not in behind])
        _check_held(unusable, info, log_holds)
        for path in behind:
            log.warning(
                "removing snapshot folder %s: it has no %s (a deletion cut short), and "
                "snapshot %s loads in its place",
                path.name,
                MANIFEST,
                info.path.name,
            )
        _discard(directory, behind)
        for path in unusable:
            if int(path.name) > info.sequence:
                _set_aside(path)
        return loaded
    unusable += _unusable(missing)
    _check_held(unusable, None, log_holds)
    for path in unusable:  # (the log holds all they held: the node starts from it)
        _set_aside(path)
    return None


def _check_held(unusable: list[Path], loaded: SnapshotInfo | None, log_holds: range) -> None:
    """Refuse to start when what loads (``loaded``, or no snapshot, and the log after it)
    ends before an unusable snapshot does."""
    reach = loaded.sequence if loaded else 0
    if log_holds.start <= reach + 1:  # (else the log does not follow on from it)
        reach = max(reach, log_holds.stop - 1)
    beyond = [p for p in unusable if int(p.name) > reach]
    if not beyond:
        return
    lost = max(beyond, key=lambda p: int(p.name))
    log_part = (
        f"the log of records {log_holds.start} to {log_holds.stop - 1}"
        if log_holds
        else "an empty log"
    )
    what = f"{f'snapshot {loaded.path.name}' if loaded else 'no snapshot'} and {log_part}"
    raise CorruptLog(
        f"snapshot {lost.name} does not load (see the errors above), and what does ({what}) "
        f"reaches record {reach} only, not {int(lost.name)}: refusing to start rather than "
        "serve without that snapshot's data (every file is left as it is). If a file could "
        "not be read at this start only, start again; if the snapshot is damaged, restore a "
        f"snapshot file (vectorizer restore --replace), or move snapshots/{lost.name} out of "
        "the data directory to start without what it held"
    )


def _without_manifest(directory: Path) -> list[Path]:
    """Snapshot folders without a manifest: a snapshot damaged after it was written whole
    (a folder gets its final name only once whole), or what earlier code left of a
    deletion cut short."""
    if not directory.exists():
        return []
    found = [p for p in directory.iterdir() if _NAME_RE.fullmatch(p.name) and p.is_dir()]
    return [p for p in found if not (p / MANIFEST).exists()]


def _unusable(missing: list[Path]) -> list[Path]:
    """``missing`` (folders without a manifest that no loaded snapshot supersedes), each
    said to be unusable."""
    for path in missing:
        log.error("snapshot %s has no %s; it is unusable", path.name, MANIFEST)
    return missing


def _set_aside(path: Path) -> None:
    aside = path.with_name(f"{DAMAGED_PREFIX}{path.name}")
    n = 1
    while aside.exists():
        n += 1
        aside = path.with_name(f"{DAMAGED_PREFIX}{path.name}-{n}")
    try:
        path.rename(aside)
        fsync_path(path.parent)
    except OSError as exc:  # (it stays where it is, and counts among those retained)
        log.error("snapshot %s could not be set aside: %s", path.name, exc)
        return
    log.error("snapshot %s set aside as %s (not loaded, not retained)", path.name, aside.name)


def index_values(path: Path) -> int:
    """About how many values the payload indexes of a snapshot hold (what a node
    rebuilds on loading it): as counted when it was taken, text indexes' tokens too, or
    (a snapshot from older code) each collection's points times its indexed keys."""
    manifest = orjson.loads((path / MANIFEST).read_bytes())
    return sum(
        int(entry["index_values"])
        if "index_values" in entry
        else int(entry["count"]) * len(entry["config"].get("payload_indexes") or {})
        for entry in manifest["collections"]
    )


def list_snapshots(directory: Path) -> list[SnapshotInfo]:
    """Snapshots on disk, newest first (by name; validity is checked on load)."""
    if not directory.exists():
        return []
    out = []
    for p in directory.iterdir():
        if _NAME_RE.fullmatch(p.name) and (p / MANIFEST).exists():
            size = sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
            out.append(SnapshotInfo(int(p.name), p, (p / MANIFEST).stat().st_mtime, size))
    return sorted(out, key=lambda s: s.sequence, reverse=True)


def prune(directory: Path, keep: int, pinned: set[int] | None = None) -> list[SnapshotInfo]:
    """Delete all but the newest ``keep`` snapshots (and any pinned ones), stale
    temporaries and deletions, and folders without a manifest older than the newest
    snapshot (what earlier code left of a prune cut short: see ``load_latest``); returns
    those kept. (Run under the store's snapshot lock: no snapshot is written meanwhile.)"""
    pinned = pinned or set()
    if directory.exists():
        for p in directory.iterdir():
            if p.name.startswith((TMP_PREFIX, DELETING_PREFIX)):
                shutil.rmtree(p, ignore_errors=True)
    snaps = list_snapshots(directory)
    kept = [s for i, s in enumerate(snaps) if i < keep or s.sequence in pinned]
    old = [s.path for s in snaps if s not in kept]
    if snaps:
        old += [p for p in _without_manifest(directory) if int(p.name) < snaps[0].sequence]
    _discard(directory, old)
    return kept


def _discard(directory: Path, paths: list[Path]) -> None:
    """Delete the snapshot folders ``paths``: each renamed out of the way first (one
    atomic step, made durable), then its files deleted. Cut short (kill -9), what is left
    is a ``DELETING_PREFIX`` folder, removed at the next start, never a snapshot folder
    without its manifest. A folder that cannot be renamed stays (and counts among the
    snapshots retained); one renamed that cannot be deleted goes at the next start."""
    doomed = []
    for path in paths:
        target = directory / f"{DELETING_PREFIX}{path.name}-{uuid.uuid4().hex[:8]}"
        try:
            os.rename(path, target)
        except OSError as exc:
            log.error("snapshot folder %s could not be deleted: %s", path.name, exc)
            continue
        doomed.append(target)
    if not doomed:
        return
    try:  # (renamed for good before any of its files goes)
        fsync_path(directory)
    except OSError as exc:
        log.error("snapshots not deleted (left for the next start): %s", exc)
        return
    for target in doomed:
        shutil.rmtree(target, ignore_errors=True)


def load_dir(path: Path, defaults: HnswParams) -> Loaded:
    """Verify and load one snapshot folder (whatever its name)."""
    manifest = _manifest(path)
    collections, aliases = _load(path, manifest, defaults, check_name=False)
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    info = SnapshotInfo(int(manifest["sequence"]), path, float(manifest["created_at"]), size)
    return info, collections, aliases


def check_manifest(manifest: Any) -> None:
    """Refuse (``InvalidSnapshot``) a manifest naming anything a node could not have
    written: a collection name no client may give (but the hidden one of a recovery,
    ``RECOVERING`` + a name), two collections of one name or one folder, a folder or file
    that is not a plain name in its folder, an alias no client may name or naming no
    collection of the snapshot, or a field of the wrong type. (Names are paths and URLs
    later: a collection named ``../x`` would have its snapshot files written outside the
    data directory, a file ``../../dev/zero`` be read forever.)"""
    if not isinstance(manifest, dict):
        raise InvalidSnapshot("the snapshot's manifest is not an object")
    sequence = manifest.get("sequence")
    if type(sequence) is not int or not 0 <= sequence <= MAX_SEQUENCE:
        raise InvalidSnapshot(
            f"the snapshot's sequence {sequence!r} is not one in 0..{MAX_SEQUENCE}"
        )
    created = manifest.get("created_at")
    if isinstance(created, bool) or not isinstance(created, int | float):
        raise InvalidSnapshot("the snapshot's creation time is not a number")
    entries = manifest.get("collections")
    if not isinstance(entries, list):
        raise InvalidSnapshot("the snapshot's manifest lists no collections")
    names: set[str] = set()
    dirs: set[str] = set()
    for i, entry in enumerate(entries):
        at = f"collection {i} of the snapshot's manifest"
        if not isinstance(entry, dict):
            raise InvalidSnapshot(f"{at} is not an object")
        name = entry.get("name")
        if not stored_collection_name(name):
            raise InvalidSnapshot(f"{at} has a name no collection may have: {name!r}")
        if name in names:
            raise InvalidSnapshot(f"two collections of the snapshot are called {name!r}")
        names.add(name)
        folder = entry.get("dir")
        if not validation.plain_name(folder) or folder.startswith("."):
            raise InvalidSnapshot(
                f"collection {name!r} has a folder that is not its own: {folder!r}"
            )
        if folder in dirs:
            raise InvalidSnapshot(f"two collections of the snapshot share the folder {folder!r}")
        dirs.add(folder)
        files = entry.get("files")
        if not isinstance(files, dict):
            raise InvalidSnapshot(f"collection {name!r} lists no files")
        for file, digest in files.items():
            if not validation.plain_name(file) or not isinstance(digest, str):
                raise InvalidSnapshot(
                    f"collection {name!r} lists a file outside its folder: {file!r}"
                )
        count = entry.get("count")
        if type(count) is not int or count < 0:
            raise InvalidSnapshot(f"collection {name!r} has no point count")
        if not isinstance(entry.get("config"), dict):
            raise InvalidSnapshot(f"collection {name!r} has no configuration")
    aliases = manifest.get("aliases", {})  # (none before aliases existed)
    if not isinstance(aliases, dict):
        raise InvalidSnapshot("the snapshot's aliases are not an object")
    for alias, target in aliases.items():
        if validation.COLLECTION_NAME_RE.fullmatch(alias) is None or alias in names:
            raise InvalidSnapshot(f"the snapshot has an alias no client may name: {alias!r}")
        if not isinstance(target, str) or target not in names:
            raise InvalidSnapshot(
                f"alias {alias!r} names a collection the snapshot does not hold: {target!r}"
            )


def stored_collection_name(name: Any) -> TypeGuard[str]:
    """Whether a snapshot may hold a collection called ``name``: one a client may name, or
    the hidden one a recovery of such a collection fills (``RECOVERING`` + its name)."""
    if isinstance(name, str) and name.startswith(RECOVERING):
        name = name[len(RECOVERING) :]
    return isinstance(name, str) and validation.COLLECTION_NAME_RE.fullmatch(name) is not None


def _regular(path: Path, what: str, directory: bool = False) -> None:
    """Refuse ``path`` unless it is a regular file (or a folder) itself, not a link."""
    try:
        mode = os.lstat(path).st_mode
    except OSError as exc:
        raise InvalidSnapshot(f"{what} is missing from the snapshot ({exc.strerror})") from None
    if not (stat.S_ISDIR(mode) if directory else stat.S_ISREG(mode)):
        kind = "a folder" if directory else "a regular file"
        raise InvalidSnapshot(f"{what} is not {kind} of the snapshot")


def _manifest(path: Path) -> Any:
    return orjson.loads((path / MANIFEST).read_bytes())


def _load(
    path: Path, manifest: Any, defaults: HnswParams, check_name: bool = True
) -> tuple[dict[str, Collection], dict[str, str]]:
    """The collections and aliases of the snapshot at ``path`` whose ``manifest`` (read
    once by the caller) is checked first."""
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        format_ = manifest.get("format") if isinstance(manifest, dict) else None
        raise ValueError(f"unknown snapshot format {format_!r}")
    if check_name and manifest.get("sequence") != int(path.name):
        raise ValueError("manifest does not match its folder")
    check_manifest(manifest)
    out: dict[str, Collection] = {}
    for entry in manifest["collections"]:
        sub = path / entry["dir"]
        _regular(sub, f"folder {entry['dir']}", directory=True)
        for name, digest in entry["files"].items():
            _regular(sub / name, f"{entry['dir']}/{name}")
            if sha256(sub / name) != digest:
                raise ValueError(f"checksum mismatch in {entry['dir']}/{name}")
        config = CollectionConfig.parse(entry["config"], defaults)
        coll = Collection.restore(sub, entry["name"], config)
        if len(coll) != entry["count"]:
            raise ValueError(
                f"collection {entry['name']} has {len(coll)} points, expected {entry['count']}"
            )
        out[coll.name] = coll
    aliases: dict[str, str] = manifest.get("aliases", {})  # (checked: each names one of out)
    return out, aliases
