"""Snapshots of one collection as one file (Qdrant's collection snapshots): made from a
node snapshot, listed, deleted, and read back to recover a collection from.

A file is a plain tar archive: ``MANIFEST.json`` (format, the sequence and time of the
node snapshot it came from, the collection's name, configuration, point count and each
file's SHA-256) and the collection's files from that node snapshot under
``collection/`` (``vectors.npy``, ``alive.npy``, ``points.json``, ``hnsw.bin``, and for
each named dense vector ``named-<n>.vectors.npy``, ``named-<n>.present.npy`` and
``named-<n>.hnsw.bin``, or for a multivector ``named-<n>.counts.npy`` and its rows in
``named-<n>.vectors.npy``). Beside
each file in the node's ``collection-snapshots/<collection>/`` folder, ``<file>.checksum``
holds the SHA-256 of the whole file, as Qdrant keeps it.

Reading one back trusts nothing: only the expected regular files, within the room
given, each matching the manifest's checksum, arrays of the declared shape and no
pickles; whatever is off is an ``InvalidSnapshot`` naming what.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import shutil
import tarfile
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson

from vectorizer.engine import sparse, validation
from vectorizer.engine.config import CONFIG_KEYS
from vectorizer.engine.files import fsync_path, load_json, make_dir_durably, sha256
from vectorizer.engine.named import MultiVector
from vectorizer.engine.payloads import MAX_DEPTH
from vectorizer.engine.payloads import depth as payload_depth
from vectorizer.engine.snapshot import MANIFEST
from vectorizer.engine.validation import Matrix
from vectorizer.errors import (
    CollectionNotFound,
    InvalidSnapshot,
    SnapshotNotFound,
    ValidationError,
)

FORMAT = 1
KIND = "vectorizer-collection-snapshot"
SUFFIX = ".snapshot"
CHECKSUM_SUFFIX = ".checksum"
_TMP_PREFIX = ".tmp-"
MEMBERS_DIR = "collection/"  # (where a collection snapshot file holds its files)
_GRAPH = "hnsw.bin"
# The files of a collection in a snapshot (a regular expression)
FILES = (
    r"vectors\.npy|alive\.npy|points\.json|hnsw\.bin"
    r"|named-\d{1,5}\.(?:vectors\.npy|present\.npy|counts\.npy|hnsw\.bin)"
)
_FILE_RE = re.compile(FILES)
_MANIFEST_MAX = 1 << 20
_TIME_IN_NAME = "%Y-%m-%d-%H-%M-%S"
_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,128}-(\d+)-(\d{4}(?:-\d\d){5})" + re.escape(SUFFIX))
# A named dense vector of a snapshot: a slot's row (or a multivector's rows), or None
Named = Callable[[int], Matrix | MultiVector | None]
# Points per recovered batch, and about the bytes of its record at most (wide vectors,
# large payloads: fewer points). Counted by points and floats alone, a batch of large
# payloads made a record past the log's limit (``wal.MAX_RECORD``): the node, having
# acknowledged it, then refused to start.
BATCH_POINTS = 1000
BATCH_BYTES = 8 << 20


@dataclass(frozen=True)
class Description:
    """One snapshot file as Qdrant describes it."""

    name: str
    creation_time: str  # UTC, ISO 8601 without a zone (Qdrant's form)
    size: int
    checksum: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "creation_time": self.creation_time,
            "size": self.size,
            "checksum": self.checksum,
        }


def pack(node_snapshot: Path, collection: str, directory: Path) -> Description:
    """Write collection ``collection`` of the node snapshot at ``node_snapshot`` into a
    new file in ``directory`` (blocking: run it off the loop), atomically. ``collection``
    must be a name a client may give: its folder (``directory``, named after it) and the
    file's name stay where they belong, whatever a restored manifest called it."""
    validation.collection_name(collection, field="collection")
    manifest = orjson.loads((node_snapshot / MANIFEST).read_bytes())
    entry = next((e for e in manifest["collections"] if e["name"] == collection), None)
    if entry is None:  # deleted while the node snapshot waited its turn
        raise CollectionNotFound(f"collection {collection!r} does not exist", field="collection")
    name = file_name(collection, manifest)
    own = {
        "format": FORMAT,
        "kind": KIND,
        "sequence": manifest["sequence"],
        "created_at": manifest["created_at"],
        "collection": {key: entry[key] for key in ("name", "config", "count", "files")},
    }
    make_dir_durably(directory)
    final = directory / name
    if (cut := already_cut(final)) is not None:
        return cut
    tmp = temp_path(final)
    try:
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            _add_bytes(tar, MANIFEST, orjson.dumps(own, option=orjson.OPT_INDENT_2))
            for file in sorted(entry["files"]):
                tar.add(node_snapshot / entry["dir"] / file, arcname=MEMBERS_DIR + file)
        return seal(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def file_name(prefix: str, manifest: dict[str, Any]) -> str:
    """``<prefix>-<sequence>-<time>.snapshot`` for a file cut from the node snapshot
    whose manifest is ``manifest``."""
    created = datetime.fromtimestamp(manifest["created_at"], UTC)
    return f"{prefix}-{manifest['sequence']}-{created.strftime(_TIME_IN_NAME)}{SUFFIX}"


def already_cut(final: Path) -> Description | None:
    """``final``, if an earlier call cut it already: from the same node snapshot (its
    name says which), so the same file; not cut again (but again if it is deleted
    meanwhile)."""
    if final.is_file() and final.with_name(final.name + CHECKSUM_SUFFIX).is_file():
        with contextlib.suppress(FileNotFoundError):
            return describe(final)
    return None


def temp_path(final: Path) -> Path:
    """Where the file ``final`` is written before it is sealed, a path of its own (removed
    at start-up if a crash leaves it: ``remove_partial``)."""
    return final.with_name(f"{_TMP_PREFIX}{final.name}-{os.getpid()}-{uuid.uuid4().hex}")


def seal(tmp: Path, final: Path) -> Description:
    """Make the written file ``tmp`` the snapshot file ``final``: durable, its checksum
    beside it, then renamed into place (its arrival is what makes it a snapshot).
    Described as written, not read back: another client may delete it at once."""
    fsync_path(tmp)
    sidecar = final.with_name(final.name + CHECKSUM_SUFFIX)
    checksum = sha256(tmp)
    sidecar.write_text(checksum)
    fsync_path(sidecar)
    size = tmp.stat().st_size
    os.rename(tmp, final)
    fsync_path(final.parent)
    return _described(final.name, size, checksum)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    tar.addfile(info, io.BytesIO(data))


def listed(directory: Path) -> list[Description]:
    """The snapshot files in ``directory``, oldest first (one deleted while they are
    listed is left out)."""
    if not directory.is_dir():
        return []
    named = [(m, p) for p in directory.iterdir() if (m := _NAME_RE.fullmatch(p.name))]
    named.sort(key=lambda mp: (int(mp[0].group(1)), mp[0].group(2)))  # by sequence
    out = []
    for _, path in named:
        with contextlib.suppress(FileNotFoundError):
            out.append(describe(path))
    return out


def describe(path: Path) -> Description:
    """A snapshot file's description: its time is the node snapshot's, from its name.
    FileNotFoundError when it is gone (deleted by another client meanwhile)."""
    sidecar = path.with_name(path.name + CHECKSUM_SUFFIX)
    size = path.stat().st_size
    try:
        checksum = sidecar.read_text().strip()
    except FileNotFoundError:  # (a file from before checksums were kept beside it)
        checksum = sha256(path)
    return _described(path.name, size, checksum)


def _described(name: str, size: int, checksum: str) -> Description:
    match = _NAME_RE.fullmatch(name)
    assert match is not None
    created = datetime.strptime(match.group(2), _TIME_IN_NAME).strftime("%Y-%m-%dT%H:%M:%S")
    return Description(name, created, size, checksum)


def find(directory: Path, name: str) -> Path:
    """The snapshot file called ``name`` in ``directory`` (no other path ever)."""
    path = directory / name
    if _NAME_RE.fullmatch(name) is None or not path.is_file():
        raise SnapshotNotFound(f"snapshot {name!r} does not exist", field="snapshot_name")
    return path


def delete(directory: Path, name: str) -> None:
    path = find(directory, name)
    path.with_name(name + CHECKSUM_SUFFIX).unlink(missing_ok=True)
    try:
        path.unlink()
    except FileNotFoundError:  # (another client deleted it first)
        raise SnapshotNotFound(f"snapshot {name!r} does not exist", field="snapshot_name") from None
    fsync_path(directory)


def remove_partial(directory: Path) -> None:
    """Remove what a crash left half-done: files being written (in every collection's
    folder) and files and folders of recoveries (in ``directory`` itself)."""
    if directory.is_dir():
        for stale in [*directory.glob(f"{_TMP_PREFIX}*"), *directory.glob(f"*/{_TMP_PREFIX}*")]:
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)


# ---- reading one back ---------------------------------------------------------------------


@dataclass(frozen=True)
class Unpacked:
    """A verified snapshot's collection, extracted into ``directory``."""

    directory: Path
    config: dict[str, Any]
    count: int

    def points(
        self,
        dimension: int,
        sparse_names: Iterable[str] = (),
        named: Sequence[tuple[int, bool]] = (),
    ) -> Points:
        """Its live points, checked against the manifest and each other (blocking: the
        ids, payloads and the sparse vectors of ``sparse_names`` are parsed; the named
        dense vectors are those of ``named`` (dimension, multivector), in the order of
        the config)."""
        vectors = _array(self.directory / "vectors.npy")
        alive = _array(self.directory / "alive.npy")
        ids, payloads, columns = _points(self.directory / "points.json", len(vectors), sparse_names)
        if vectors.dtype != np.float32 or vectors.ndim != 2 or vectors.shape[1] != dimension:
            raise InvalidSnapshot(f"vectors.npy holds no {dimension}-wide float32 rows")
        if alive.dtype != np.bool_ or alive.shape != (len(vectors),):
            raise InvalidSnapshot("alive.npy does not match vectors.npy")
        live = [s for s in np.flatnonzero(alive).tolist() if ids[s] is not None]
        if len(live) != self.count:
            raise InvalidSnapshot(f"{len(live)} live points, the manifest says {self.count}")
        try:
            held = {validation.point_id(ids[s], "snapshot") for s in live}
        except ValidationError as exc:
            raise InvalidSnapshot(f"a point of the snapshot: {exc.message}") from None
        if len(held) != len(live):
            raise InvalidSnapshot("points.json holds an id twice")
        dense = [
            self._multi(n, dim, len(vectors)) if multi else self._named(n, dim, len(vectors))
            for n, (dim, multi) in enumerate(named)
        ]
        sparse_vectors = _sparse_vectors(columns, live)
        return Points(vectors, ids, payloads, live, sparse_vectors, dense)

    def _named(self, n: int, dimension: int, rows: int) -> Named:
        """The ``n``-th named dense vector's row of each slot (that has one)."""
        vectors = _array(self.directory / f"named-{n}.vectors.npy")
        present = _array(self.directory / f"named-{n}.present.npy")
        if vectors.dtype != np.float32 or vectors.shape != (rows, dimension):
            raise InvalidSnapshot(f"named-{n}.vectors.npy holds no {dimension}-wide float32 rows")
        if present.dtype != np.bool_ or present.shape != (rows,):
            raise InvalidSnapshot(f"named-{n}.present.npy does not match vectors.npy")
        return lambda s: vectors[s : s + 1] if present[s] else None

    def _multi(self, n: int, dimension: int, slots: int) -> Named:
        """The ``n``-th named vector's, a multivector: each slot's rows (that has any)."""
        counts = _array(self.directory / f"named-{n}.counts.npy")
        vectors = _array(self.directory / f"named-{n}.vectors.npy")
        if counts.dtype != np.int64 or counts.shape != (slots,) or (counts < 0).any():
            raise InvalidSnapshot(f"named-{n}.counts.npy does not match vectors.npy")
        total = int(counts.sum())
        if vectors.dtype != np.float32 or vectors.shape != (total, dimension):
            raise InvalidSnapshot(f"named-{n}.vectors.npy holds no {dimension}-wide float32 rows")
        starts = np.concatenate([[0], np.cumsum(counts)]).tolist()
        return lambda s: MultiVector(vectors[starts[s] : starts[s + 1]]) if counts[s] else None


@dataclass(frozen=True)
class Points:
    vectors: Matrix  # mapped from the extracted file
    ids: list[Any]
    payloads: list[Any]
    live: list[int]  # the slots holding points
    sparse: dict[int, dict[str, sparse.SparseVector]]  # by slot, those that have any
    # each named dense vector's (in the config's order): a slot's vector, or None
    named: list[Named] = field(default_factory=list)

    def batches(
        self, names: list[str] | None = None
    ) -> Iterator[tuple[list[Any], Matrix, list[Any], list[dict[str, Any]]]]:
        """(ids, vectors, payloads, named vectors by name) a batch at a time (fewer points
        when they are large, ``BATCH_BYTES``); ``names``: the named dense vectors' names,
        in order."""
        dense = list(zip(names or [], self.named, strict=True))
        own = 4 * self.vectors.shape[1]
        slots: list[int] = []
        rows: list[dict[str, Any]] = []
        size = 0
        for s in self.live:
            row: dict[str, Any] = dict(self.sparse.get(s, {}))
            for name, of_slot in dense:
                vector = of_slot(s)
                if vector is not None:
                    row[name] = vector
            cost = own + _logged_bytes(row) + len(orjson.dumps(self.payloads[s]))
            if slots and (len(slots) == BATCH_POINTS or size + cost > BATCH_BYTES):
                yield self._batch(slots, rows)
                slots, rows, size = [], [], 0
            slots.append(s)
            rows.append(row)
            size += cost
        if slots:
            yield self._batch(slots, rows)

    def _batch(
        self, slots: list[int], rows: list[dict[str, Any]]
    ) -> tuple[list[Any], Matrix, list[Any], list[dict[str, Any]]]:
        return (
            [self.ids[s] for s in slots],
            self.vectors[slots],
            [self.payloads[s] for s in slots],
            rows,
        )


def _logged_bytes(row: dict[str, Any]) -> int:
    """About what a point's named and sparse vectors take in the log's record (dense
    ones in base64, sparse ones as JSON lists)."""
    size = 64  # (the id, the slots in the record's columns)
    for vector in row.values():
        if isinstance(vector, sparse.SparseVector):
            size += 24 * len(vector)
        elif isinstance(vector, MultiVector):
            size += 6 * vector.rows.size
        else:
            size += 6 * np.size(vector)
    return size


def unpack(archive: Path, into: Path, room: int) -> Unpacked:
    """Check and extract the snapshot file ``archive`` into the new folder ``into``,
    taking at most ``room`` bytes there (blocking: run it off the loop)."""
    try:
        with tarfile.open(archive, "r:") as tar:
            return _unpack(tar, into, room)
    except (tarfile.TarError, EOFError) as exc:
        raise InvalidSnapshot(f"not a snapshot file ({exc})") from None


def _unpack(tar: tarfile.TarFile, into: Path, room: int) -> Unpacked:
    members: dict[str, tarfile.TarInfo] = {}
    for member in tar:
        name = member.name
        if name != MANIFEST and not (
            name.startswith(MEMBERS_DIR) and _FILE_RE.fullmatch(name[len(MEMBERS_DIR) :])
        ):
            raise InvalidSnapshot(f"unexpected entry {name!r} in the snapshot")
        if not member.isfile() or name in members:
            raise InvalidSnapshot(f"entry {name!r} is not one regular file")
        members[name] = member
    if MANIFEST not in members or members[MANIFEST].size > _MANIFEST_MAX:
        raise InvalidSnapshot("the snapshot has no manifest (or an oversized one)")
    manifest = _manifest(_read(tar, members[MANIFEST]).read())
    entry = manifest["collection"]
    files: dict[str, str] = entry["files"]
    if {MEMBERS_DIR + f for f in files} != set(members) - {MANIFEST}:
        raise InvalidSnapshot("the snapshot's files are not the ones its manifest lists")
    need = sum(members[MEMBERS_DIR + f].size for f in files if not f.endswith(_GRAPH))
    if need > room:
        raise InvalidSnapshot(
            f"the snapshot's collection takes {need >> 20} MiB on disk and there is room for "
            f"{room >> 20} MiB"
        )
    into.mkdir()
    for file, digest in files.items():
        # The graph is only checked, not extracted: it is rebuilt as the points arrive.
        target = None if file.endswith(_GRAPH) else into / file
        if _copy(_read(tar, members[MEMBERS_DIR + file]), target) != digest:
            raise InvalidSnapshot(f"{file} does not match its checksum")
    return Unpacked(into, entry["config"], entry["count"])


def _manifest(raw: bytes) -> dict[str, Any]:
    try:
        manifest = orjson.loads(raw)
        entry = manifest["collection"]
        ok = (
            manifest["format"] == FORMAT
            and manifest["kind"] == KIND
            and isinstance(entry["config"], dict)
            and isinstance(entry["count"], int)
            and isinstance(entry["files"], dict)
            and all(isinstance(d, str) for d in entry["files"].values())
        )
    except (orjson.JSONDecodeError, KeyError, TypeError):
        ok = False
    if not ok:
        raise InvalidSnapshot("the snapshot's manifest is not one this node reads")
    if unknown := set(entry["config"]) - CONFIG_KEYS:  # (a setting this node would drop)
        raise InvalidSnapshot(f"the snapshot's configuration has {sorted(unknown)[0]!r}")
    result: dict[str, Any] = manifest
    return result


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    f = tar.extractfile(member)
    assert f is not None  # a regular file (checked)
    return f


def _copy(source: IO[bytes], path: Path | None) -> str:
    """Write ``source`` to ``path`` (None: nowhere); returns its SHA-256."""
    h = hashlib.sha256()
    with open(path or os.devnull, "wb") as out:
        while chunk := source.read(1 << 20):
            h.update(chunk)
            out.write(chunk)
    return h.hexdigest()


def _array(path: Path) -> np.ndarray[Any, Any]:
    try:
        array: np.ndarray[Any, Any] = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InvalidSnapshot(f"{path.name} is not a numpy array ({exc})") from None
    return array


def _points(
    path: Path, rows: int, sparse_names: Iterable[str]
) -> tuple[list[Any], list[Any], dict[str, list[Any]]]:
    """The ids, payloads and sparse vectors (by name: a column of slots) of ``rows``
    slots (the ids are checked as they are written)."""
    try:
        points = load_json(path)
    except orjson.JSONDecodeError as exc:
        raise InvalidSnapshot(f"points.json is not JSON ({exc})") from None
    ids = points.get("ids") if isinstance(points, dict) else None
    payloads = points.get("payloads") if isinstance(points, dict) else None
    if not isinstance(ids, list) or not isinstance(payloads, list):
        raise InvalidSnapshot("points.json holds no ids and payloads")
    if len(ids) != rows or len(payloads) != rows:
        raise InvalidSnapshot("points.json does not match vectors.npy")
    if not all(p is None or isinstance(p, dict) for p in payloads):
        raise InvalidSnapshot("points.json holds a payload that is not an object")
    # (as a client's: one deeper could not be logged, snapshotted or shown again)
    if any(p and 1 + payload_depth(p) > MAX_DEPTH for p in payloads):
        raise InvalidSnapshot(f"points.json holds a payload nested over {MAX_DEPTH} levels deep")
    columns = {}
    for name in sparse_names:
        column = points.get(f"sparse:{name}", [None] * rows)
        if not isinstance(column, list) or len(column) != rows:
            raise InvalidSnapshot(f"points.json's sparse vectors {name!r} do not match")
        columns[name] = column
    return ids, payloads, columns


def _sparse_vectors(
    columns: dict[str, list[Any]], live: list[int]
) -> dict[int, dict[str, sparse.SparseVector]]:
    """The live slots' sparse vectors, each checked as a client's would be."""
    out: dict[int, dict[str, sparse.SparseVector]] = {}
    for name, column in columns.items():
        for slot in live:
            raw = column[slot]
            if raw is None:
                continue
            try:
                if not isinstance(raw, list) or len(raw) != 2:
                    raise ValidationError("not [indices, values]", field=name)
                vec = sparse.vector({"indices": raw[0], "values": raw[1]}, name)
            except ValidationError as exc:
                raise InvalidSnapshot(f"a sparse vector of points.json: {exc}") from None
            out.setdefault(slot, {})[name] = vec
    return out
