"""The store: every collection, the write-ahead log and the snapshots of one node.

A write is validated, appended to the log under the next sequence number and applied
to the collections in one uninterrupted step on the event loop (so readers on the loop
see all of it or none of it, and log order is apply order); it is acknowledged once the
log is durable under the fsync policy. Start-up loads the newest valid snapshot and
replays the log after it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import functools
import logging
import math
import os
import shutil
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

import numpy as np
import orjson

from vectorizer.engine import aliases as alias_ops
from vectorizer.engine import (
    collection_snapshots,
    field_index,
    filters,
    full_snapshots,
    memory,
    paths,
    payloads,
    records,
    snapshot,
    validation,
)
from vectorizer.engine.collection import (
    INITIAL_CAPACITY,
    Collection,
    NamedRows,
    WriteMode,
    memory_for,
)
from vectorizer.engine.config import CollectionConfig, HnswParams, VectorConfig
from vectorizer.engine.files import fsync_path
from vectorizer.engine.filters import Payload, Predicate
from vectorizer.engine.named import MultiVector
from vectorizer.engine.snapshot import SnapshotInfo
from vectorizer.engine.sparse import BYTES_PER_POSTING, SparseParams, SparseVector
from vectorizer.engine.sparse import name as sparse_name
from vectorizer.engine.validation import Matrix, PointId
from vectorizer.engine.wal import FRAME, MAX_RECORD, FsyncPolicy, LogReader, WriteAheadLog
from vectorizer.errors import (
    CollectionExists,
    CollectionNotFound,
    CorruptLog,
    InsufficientMemory,
    InsufficientStorage,
    InvalidSnapshot,
    NotFound,
    NotReady,
    PayloadTooLarge,
    ShuttingDown,
    StorageError,
    StorageFailed,
    ValidationError,
    VectorizerError,
    VectorNotFound,
)
from vectorizer.observability.tracing import tracer
from vectorizer.tasks import stop, to_the_end

log = logging.getLogger(__name__)

# Present while a full sync replaces this node's data; found at start-up, it means the
# replacement was cut short, so the partial state is wiped and the node syncs again. (A
# restore replaces it with the data it restores: ``full_snapshots.WIPED``.)
SYNC_MARKER = snapshot.SYNC_MARKER


# The free disk space a node keeps so that its next snapshot fits (see ``_check_room``):
# AUTO_RESERVE sizes it after the data, plus a margin.
AUTO_RESERVE = -1
RESERVE_MARGIN = 64 << 20
# Writes that add nothing to the next snapshot (or only names: aliases), taken whatever
# the room on disk or in memory.
_SHRINKING = frozenset(
    {
        "delete",
        "delete_collection",
        "delete_payload",
        "aliases",
        "delete_field_index",
        "replace_collection",
        "delete_vectors",
        "drop_vector",
    }
)
# Collection snapshot files (Qdrant's), a folder per collection.
COLLECTION_SNAPSHOTS = "collection-snapshots"
# A collection being recovered from a snapshot file fills a hidden collection of this
# name before it takes the real one's place. No client can name it (collection names
# are letters, digits, '-' and '_'); a snapshot may hold it (``snapshot`` checks names).
RECOVERING = snapshot.RECOVERING
_MEASURE_TTL_S = 0.1
# The memory limit AUTO_LIMIT finds: the cgroup's, or the machine's memory.
AUTO_LIMIT = -1
# At most one snapshot this often to make room at the reserve (each writes all the data).
_ROOM_SNAPSHOT_GAP_S = 30.0
# A write refused for want of room this recently still counts as the node refusing writes.
_REFUSALS_REMEMBERED_S = 60.0


_P = ParamSpec("_P")
_T = TypeVar("_T")


def _refusals_settle(
    write: Callable[Concatenate[Store, _P], Awaitable[_T]],
) -> Callable[Concatenate[Store, _P], Awaitable[_T]]:
    """A write refused for the state it found (no such collection or point, a name
    taken) is answered once that state is as durable and confirmed as an
    acknowledgement, as a write that finds nothing to do is (``Store.settled``): the
    state may rest on a write still in flight, which a crash or a failover can undo. A
    client retrying a ``delete_collection`` whose first try timed out unconfirmed was
    told 404 at once, and after the failover the collection was back. (Settling that
    fails answers for the refusal: 503, the state could not be confirmed.)"""

    @functools.wraps(write)
    async def settling(store: Store, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        try:
            return await write(store, *args, **kwargs)
        except (NotFound, CollectionExists):
            await store.settled()
            raise

    return settling


@dataclass(frozen=True)
class StoreOptions:
    fsync: FsyncPolicy = field(default_factory=FsyncPolicy)
    segment_bytes: int = 64 << 20
    snapshot_interval_s: float = 300.0
    snapshot_wal_bytes: int = 256 << 20
    snapshots_retained: int = 2
    disk_reserve_bytes: int = AUTO_RESERVE
    memory_limit_bytes: int = AUTO_LIMIT
    memory_high_water: float = 0.9
    hnsw_defaults: HnswParams = field(default_factory=HnswParams)


class Store:
    def __init__(self, data_dir: Path, options: StoreOptions | None = None) -> None:
        self.data_dir = data_dir
        self.options = options or StoreOptions()
        self.sequence = 0
        self.ready = False
        self.started_at = time.time()
        self.snapshots_installed = 0  # from a primary (full syncs), since the start
        self._collections: dict[str, Collection] = {}
        self._aliases: dict[str, str] = {}  # alias -> collection
        self.on_fsync: Callable[[float], None] | None = None  # for metrics
        self.on_snapshot: Callable[[float, int], None] | None = None  # seconds, bytes
        self._wal = self._new_wal()
        self._snap_dir = data_dir / "snapshots"
        self.collection_snapshots_dir = data_dir / COLLECTION_SNAPSHOTS
        self.full_snapshots_dir = data_dir / full_snapshots.FOLDER
        self._recovery_lock = asyncio.Lock()  # one recovery from a snapshot file at a time
        # Set when the node is stopped while ``open`` replays the log: the replay ends at
        # the next record (see ``_recover``).
        self._stop_replay = threading.Event()
        self._snapshot_if_stopped = True
        self._recovering: set[str] = set()  # hidden collections being filled
        self._last_snapshot: snapshot.SnapshotInfo | None = None
        # Each collection's ``graphs_put`` as of the last snapshot: a graph put in place
        # since (a dot-product graph built again) makes the next one due even with
        # nothing logged since (the last holds the old graph, rebuilt at every start).
        self._graphs_saved: dict[str, int] = {}
        self._log_bytes_since_snapshot = 0
        self._writable = asyncio.Event()
        self._writable.set()
        self._snapshot_lock = asyncio.Lock()
        self._closing = False
        # Why memory may hold part of a record the log does not (one that failed half
        # applied, cut off the log): no snapshot is taken of it, ever (``snapshot``).
        self._untrusted: str | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._cutting = asyncio.Lock()  # snapshot files are cut one at a time
        self._pins: Counter[int] = Counter()
        self._free_bytes = 0  # free disk space as last measured, less what was logged since
        self._free_measured = -math.inf
        self._room_wanted = False  # a write met the reserve: snapshot soon to make room
        limit = self.options.memory_limit_bytes
        self.memory_limit = memory.memory_limit() if limit == AUTO_LIMIT else limit
        self._memory_used = 0  # as last measured, plus what writes were let take since
        self._memory_measured = -math.inf
        self._refused: dict[str, float] = {}  # error code -> when a write last got it
        # Hooks for replication (all unset on a standalone node):
        # write_guard raises when this node must not take client writes;
        # on_commit sees every record as it is committed (the primary streams it);
        # confirm waits, after local durability, for the write concern (sync replicas).
        self.write_guard: Callable[[], None] | None = None
        self.on_commit: list[Callable[[int, bytes], None]] = []
        self.confirm: Callable[[int], Awaitable[None]] | None = None

    def _new_wal(self) -> WriteAheadLog:
        wal = WriteAheadLog(self.data_dir / "wal", self.options.fsync, self.options.segment_bytes)
        wal.on_fsync = self._fsynced
        return wal

    def _fsynced(self, seconds: float) -> None:
        if self.on_fsync is not None:
            self.on_fsync(seconds)

    # ---- lifetime ----------------------------------------------------------------------

    async def open(self, *, snapshot_if_stopped: bool = True) -> None:
        """Recover from disk (off the loop, so health checks answer meanwhile). Stopped
        meanwhile (a SIGTERM during recovery), the replay ends at the next record boundary
        and, if ``snapshot_if_stopped`` and it replayed anything, a snapshot of what it
        replayed is written (the log after it stays: the next start loads the snapshot and
        replays only the rest); this waits for the recovery's thread to end all the same
        (a thread cannot be cancelled): until then the node's files are being written, and
        its data directory must stay locked. The store then stays not ready."""
        self._snapshot_if_stopped = snapshot_if_stopped
        recovery = asyncio.get_running_loop().run_in_executor(None, self._recover)
        try:
            await asyncio.shield(recovery)
        except asyncio.CancelledError:
            self._stop_replay.set()
            await to_the_end(recovery)
            raise
        self.ready = True
        self._tasks.append(asyncio.create_task(self._maintain()))
        if self.options.fsync.mode == "interval":
            self._tasks.append(asyncio.create_task(self._wal.run_interval_fsync()))

    def _recover(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # (before anything else: a restore cut short once committed is finished, and its
        # snapshot, still in a folder that reads as a leftover, is not removed as one)
        full_snapshots.finish_restore(self.data_dir)
        if (self.data_dir / SYNC_MARKER).exists():
            log.warning("a full sync was interrupted; discarding the partial data to sync again")
            self._wipe()
            (self.data_dir / SYNC_MARKER).unlink()
        snapshot.remove_partial(self._snap_dir)
        collection_snapshots.remove_partial(self.collection_snapshots_dir)
        collection_snapshots.remove_partial(self.full_snapshots_dir)
        started = time.monotonic()
        snap_seq = 0
        self._wal.recover()
        # (a snapshot that does not load is passed over only where an older one, or none,
        # and the log hold all it held; else recovery refuses, see ``load_latest``)
        log_holds = range(self._wal.first_seq, self._wal.last_seq + 1)
        loaded = snapshot.load_latest(self._snap_dir, self.options.hnsw_defaults, log_holds)
        if loaded is not None:
            self._last_snapshot, self._collections, self._aliases = loaded
            snap_seq = self._last_snapshot.sequence
            self._graphs_saved = self._graphs_put()
        if self._wal.last_seq > snap_seq and self._wal.first_seq > snap_seq + 1:
            raise CorruptLog(
                f"the log starts at record {self._wal.first_seq} but the newest usable snapshot "
                f"ends at {snap_seq}: records in between are missing"
            )
        replayed = 0
        for seq, body in self._wal.read_from(snap_seq + 1):
            if self._stop_replay.is_set():  # (between records: each applied whole)
                break
            op, vectors = records.decode(body)
            self._apply(op, vectors)
            replayed += 1
            self.sequence = seq
            # (the log since the snapshot, as appends count it: else the disk's reserve
            # and the snapshot that log growth makes due forgot it at every start)
            self._log_bytes_since_snapshot += FRAME.size + len(body)
        self.sequence = max(self.sequence, snap_seq)
        if self._stop_replay.is_set():
            self._replay_stopped(snap_seq, replayed, started)
            return
        self._wal.start(self.sequence + 1)
        log.info(
            "recovered %d collections at sequence %d (snapshot %d + %d log records) in %.2fs",
            len(self._collections),
            self.sequence,
            snap_seq,
            replayed,
            time.monotonic() - started,
        )

    def _replay_stopped(self, snap_seq: int, replayed: int, started: float) -> None:
        """The node was stopped while the log was replayed (on the recovery thread, the
        only one that changes the collections until the store is ready). Every record
        replayed so far is in the collections, and the log is left as it is (not opened
        for writing: the node took no writes), so a snapshot at ``self.sequence`` is one
        the next start can load and replay the rest of the log after. The log is not
        truncated here (the next snapshot does that); old snapshots are pruned as ever,
        the log still holding everything after the oldest one kept."""
        log.warning(
            "stopped during recovery: replay ended at record %d of %d "
            "(snapshot %d + %d log records) after %.2fs",
            self.sequence,
            self._wal.last_seq,
            snap_seq,
            replayed,
            time.monotonic() - started,
        )
        if not replayed or not self._snapshot_if_stopped:
            return  # (nothing a snapshot would save the next start)
        colls = list(self._collections.values())
        try:
            for coll in colls:  # no graph rebuild is waited for, nor another started
                for future in coll.close():
                    with contextlib.suppress(Exception):
                        future.result()
            for coll in colls:
                coll.fold()
            info = snapshot.write(self._snap_dir, self.sequence, colls, dict(self._aliases))
            self._last_snapshot = info
            snapshot.prune(self._snap_dir, self.options.snapshots_retained)
        except OSError as exc:  # e.g. a full disk: the log still holds everything
            log.error(
                "the snapshot of the records replayed failed (%s); the log holds every "
                "write and is replayed at the next start",
                exc,
            )
            return
        except Exception:  # (a bug: said, with where it happened)
            log.exception("the snapshot of the records replayed failed; the log holds every write")
            return
        log.info(
            "snapshot at sequence %d (%d bytes) of the records replayed; the next start "
            "replays the log after it",
            info.sequence,
            info.size_bytes,
        )

    async def close(self, *, take_snapshot: bool = True) -> None:
        self._closing = True
        await stop(*self._tasks)
        # Rebuilds of dot-product graphs in progress stop at their next chunk (one that
        # has finished is put in place first): the process must not exit while the
        # rebuild thread is inside hnswlib (SIGABRT), nor the snapshot wait for one.
        await self._close_collections(list(self._collections.values()))
        try:
            if take_snapshot and self.ready:
                await self._shutdown_snapshot()
        finally:  # (whatever happened: acknowledged writes are fsynced, the log closed)
            self._wal.close()
            self.ready = False

    async def _shutdown_snapshot(self) -> None:
        """A snapshot to start from faster next time. Not needed: the log holds every
        write (and is fsynced once this is over), so one that fails (a full disk, most
        likely) is logged, and the node shuts down as cleanly as ever."""
        try:
            await self.snapshot()
        except StorageError as exc:
            log.error(
                "the shutdown snapshot failed (%s); the log holds every write and is "
                "replayed at the next start",
                exc.message,
            )
        except Exception:  # (a bug: said, with where it happened)
            log.exception("the shutdown snapshot failed; the log holds every write")

    @staticmethod
    async def _close_collections(colls: list[Collection]) -> None:
        """Cancel the graph rebuilds of ``colls`` and wait until none runs."""
        pending = [future for coll in colls for future in coll.close()]
        if pending:
            started = time.monotonic()
            await asyncio.wait([asyncio.wrap_future(f) for f in pending])
            log.info("stopped graph rebuilds in %.3fs", time.monotonic() - started)

    def _graphs_put(self) -> dict[str, int]:
        return {name: coll.graphs_put for name, coll in self._collections.items()}

    async def _maintain(self) -> None:
        """Periodic snapshots: on the interval, or sooner when the log has grown large or
        the disk reached its reserve; and every second, staged vectors folded into their
        graphs and the memory limit looked up again."""
        last, room_at = time.monotonic(), -math.inf
        while True:
            await asyncio.sleep(1.0)
            self.fold()
            for name in [n for n in self._collections if n.startswith(RECOVERING)]:
                if name not in self._recovering:  # a recovery a crash or failover cut short
                    self._drop_hidden(name)
            self._follow_memory_limit()
            interval = self.options.snapshot_interval_s
            due = interval > 0 and time.monotonic() - last >= interval
            grown = self._log_bytes_since_snapshot >= self.options.snapshot_wal_bytes
            room = self._room_wanted and time.monotonic() - room_at >= _ROOM_SNAPSHOT_GAP_S
            if room:
                room_at, self._room_wanted = time.monotonic(), False
            if (due or grown or room) and self._untrusted is None:
                last = time.monotonic()
                try:
                    await self.snapshot()
                except Exception:
                    log.exception("periodic snapshot failed; the log keeps every record")

    def _follow_memory_limit(self) -> None:
        """Take up a new limit found on the cgroup (a pod resized in place), so that
        writes resume as soon as there is more memory, without a restart."""
        if self.options.memory_limit_bytes != AUTO_LIMIT:
            return
        limit = memory.memory_limit()
        if limit != self.memory_limit:
            log.info("memory limit now %d MiB (was %d MiB)", limit >> 20, self.memory_limit >> 20)
            self.memory_limit = limit
            self._memory_measured = -math.inf

    def fold(self) -> int:
        """Start linking every collection's staged vectors into its graph (on the fold
        thread, see ``HnswIndex.fold``); returns how many.

        Not a logical change, so not logged: replay stages and folds the same vectors
        again. It changes graphs, so it runs on the loop and never while a snapshot
        writes them (writes are paused then)."""
        if not self.ready or not self._writable.is_set():
            return 0
        # (a collection whose graph is busy on another thread is folded at a later call:
        # a fold would wait for it holding the loop)
        colls = [c for c in self._collections.values() if c.linking() is None]
        return sum(c.fold(wait=False) for c in colls)

    # ---- reads -------------------------------------------------------------------------

    def collection(self, name: str) -> Collection:
        """The collection called ``name``, or the one ``name`` is an alias of."""
        self._check_ready()
        coll = self._collections.get(self._aliases.get(name, name))
        if coll is None or coll.name.startswith(RECOVERING):
            raise CollectionNotFound(f"collection {name!r} does not exist", field="collection")
        return coll

    def resolve(self, name: str) -> str:
        """The collection ``name`` means: the one it is an alias of, or itself."""
        return self._aliases.get(name, name)

    def aliases(self, collection: str | None = None) -> dict[str, str]:
        """Aliases (alias -> collection) in name order; only ``collection``'s if given."""
        self._check_ready()
        return {
            alias: target
            for alias, target in sorted(self._aliases.items())
            if collection is None or target == collection
        }

    def collections(self) -> list[Collection]:
        self._check_ready()
        return sorted(self._visible().values(), key=lambda c: c.name)

    def _visible(self) -> dict[str, Collection]:
        """The collections clients see (not those being recovered)."""
        colls = self._collections
        return {n: c for n, c in colls.items() if not n.startswith(RECOVERING)}

    def stats(self) -> dict[str, Any]:
        snap, visible = self._last_snapshot, self._visible()
        return {
            "ready": self.ready,
            "sequence": self.sequence,
            "collections": len(visible),
            "vectors": sum(len(c) for c in visible.values()),
            "uptime_seconds": round(time.time() - self.started_at, 3),
            "wal": {
                "first_sequence": self._wal.first_seq,
                "last_sequence": self._wal.last_seq,
                "size_bytes": self._wal.size_bytes,
                "fsync": self.options.fsync.mode,
                "failure": self._wal.failure,
            },
            "disk": {"free_bytes": self.disk_free(), "reserve_bytes": self.disk_reserve()},
            "memory": {
                "used_bytes": self.memory_used(),
                "limit_bytes": self.memory_limit,
                "high_water_bytes": self.memory_high_water(),
            },
            "snapshot": snap.to_dict() if snap else None,
            "snapshot_age_seconds": round(time.time() - snap.created_at, 3) if snap else None,
        }

    @property
    def failure(self) -> str | None:
        """Why this node takes no more writes until it restarts (see ``StorageFailed``)."""
        return self._wal.failure

    def _check_ready(self) -> None:
        if not self.ready:
            raise NotReady("the store is still recovering; retry shortly")

    # ---- writes ------------------------------------------------------------------------
    # Each write method awaits only before validating (the snapshot gate) and after
    # committing (durability): validate → log → apply is one step on the loop.

    async def _gate(self, *names: str) -> None:
        """Wait until a write may go on (``names``: the collections it writes, or aliases
        of them); refuse it as ``check_writable`` does."""
        self.check_writable()
        await self._quiet(names)
        self.check_writable()  # (closed, or stepped down, meanwhile?)

    async def _quiet(self, names: Iterable[str]) -> None:
        """Wait while a snapshot is being written, and while a large batch is being
        linked into a graph of one of the collections ``names`` (``HnswIndex.add``): a
        write there would wait for that holding the loop. Returns with neither in
        progress, so that what follows without yielding (a write's commit) finds the
        graphs idle."""
        while True:
            if not self._writable.is_set():
                await self._writable.wait()
            elif (busy := self._linking(names)) is not None:
                await busy.graphs_settled()
            else:
                return

    def _linking(self, names: Iterable[str]) -> Collection | None:
        """One of the collections ``names`` whose graph is being linked on another thread."""
        for name in names:
            coll = self._collections.get(self._aliases.get(name, name))
            if coll is not None and coll.linking() is not None:
                return coll
        return None

    def check_writable(self) -> None:
        """Refuse now what ``_gate`` refuses, without waiting out a snapshot: also for
        work answered before it starts (Qdrant's ``wait=false``), or that receives a
        file first."""
        if self._closing:
            raise ShuttingDown("the node is shutting down")
        self._check_ready()
        if self.write_guard is not None:
            self.write_guard()

    def _commit(
        self, op: records.Op, vectors: Matrix | None = None, *, points_field: str = "vectors"
    ) -> int:
        if "collection" in op:  # a point write: logged under the collection, never an alias
            op["collection"] = self.resolve(op["collection"])
        _mark_version(op)
        try:
            body = records.encode(op, vectors)
        except orjson.JSONEncodeError as exc:  # JSON we decoded, but that the log cannot hold
            raise ValidationError(
                f"the payload cannot be stored ({exc}; integers are limited to 64 bits)",
                field=_unstorable_payload(op, points_field),
            ) from None
        if len(body) > MAX_RECORD:  # (replay would take it for damage: no start)
            raise PayloadTooLarge(
                f"the write takes {len(body) >> 20} MiB in the log, over its limit of "
                f"{MAX_RECORD >> 20} MiB a record: write it in smaller parts",
                field=points_field if "ids" in op else None,
            )
        if not _shrinks(op):
            self._check_room()
            self._check_memory(op, vectors)
        try:
            return self._append(self.sequence + 1, body, op, vectors)
        except ValidationError as exc:  # (the log's: bytes that read as a record of it)
            exc.field = exc.field or points_field
            raise

    def _append(self, seq: int, body: bytes, op: records.Op, vectors: Matrix | None) -> int:
        with tracer.start_as_current_span(
            "wal.append", attributes={"vectorizer.sequence": seq, "vectorizer.op": op["op"]}
        ):
            written = self._wal.append(seq, body)
            try:
                self._apply(op, vectors)
            except Exception as exc:  # a record the log must not keep: it could not replay
                log.exception("record %d could not be applied", seq)
                self._untrusted = f"record {seq} failed part-applied"
                raise self._wal.take_back(seq, written, f"{type(exc).__name__}: {exc}") from exc
            self._log_bytes_since_snapshot += written
            self._free_bytes -= written
            self.sequence = seq
            for listener in self.on_commit:
                listener(seq, body)
        return seq

    def disk_reserve(self) -> int:
        """Free disk space kept so that the next snapshot fits (0: none)."""
        if self.options.disk_reserve_bytes != AUTO_RESERVE:
            return self.options.disk_reserve_bytes
        snap = self._last_snapshot.size_bytes if self._last_snapshot is not None else 0
        return snap + self._log_bytes_since_snapshot + RESERVE_MARGIN

    def disk_free(self) -> int:
        """Free space on the data directory's volume (measured at most every 100 ms)."""
        now = time.monotonic()
        if now - self._free_measured >= _MEASURE_TTL_S:
            volume = self.data_dir
            while not volume.exists():  # (before recovery has made it)
                volume = volume.parent
            self._free_bytes = shutil.disk_usage(volume).free
            self._free_measured = now
        return self._free_bytes

    def _check_room(self) -> None:
        """Refuse a write that adds data once the disk is down to its reserve: past it,
        the next snapshot might not fit, and without snapshots the log never shrinks.
        Deletes still go through, so that data can be removed to make room."""
        reserve = self.disk_reserve()
        if reserve and (free := self.disk_free()) < reserve:
            # A snapshot of what the log holds since the last one lets both go: room.
            self._room_wanted = self._log_bytes_since_snapshot > 0
            self._refused[InsufficientStorage.code] = time.monotonic()
            raise InsufficientStorage(
                f"the disk is down to its reserve ({free >> 20} MiB free, {reserve >> 20} MiB "
                "kept so that the next snapshot fits); deletes are still taken: grow the "
                "volume or delete data"
            )

    def writes_refused(self) -> str | None:
        """Why writes that add data are refused: the disk below its reserve or memory at
        its high-water mark now, or a write refused for either within the last minute (a
        large write is refused before memory reaches the mark); None while they are
        taken."""
        reserve = self.disk_reserve()
        if reserve and self.disk_free() < reserve:
            return InsufficientStorage.code
        high = self.memory_high_water()
        if high and self.memory_used() >= high:
            return InsufficientMemory.code
        recent = time.monotonic() - _REFUSALS_REMEMBERED_S
        return next((code for code, at in self._refused.items() if at >= recent), None)

    def memory_high_water(self) -> int:
        """Memory use above which writes that add data are refused (0: never)."""
        return int(self.memory_limit * self.options.memory_high_water)

    def memory_used(self) -> int:
        """Anonymous resident memory (measured at most every 100 ms)."""
        now = time.monotonic()
        if now - self._memory_measured >= _MEASURE_TTL_S:
            self._memory_used = memory.anonymous_resident()
            self._memory_measured = now
        return self._memory_used

    def _check_memory(self, op: records.Op, vectors: Matrix | None) -> None:
        """Refuse a write that would take memory past the high-water mark: past the
        limit the kernel kills the node, and a node killed for its data is killed again
        replaying it. Deletes still go through, so that data can be removed."""
        high = self.memory_high_water()
        if not high:
            return
        need = self._memory_needed(op, vectors)
        self._require_memory(
            need,
            high,
            lambda used: (
                f"memory is at its high-water mark ({used >> 20} MiB used, this "
                f"write needs about {need >> 20} MiB more, {high >> 20} MiB allowed of "
                f"{self.memory_limit >> 20} MiB); deletes are still taken: give the node more "
                "memory or delete data"
            ),
            line_name="high_water_bytes",
        )
        self._memory_used += need

    def check_transient(self, nbytes: int, what: str, field: str) -> None:
        """Refuse work that takes ``nbytes`` for a moment (decoding a large request) when
        that would reach the memory limit itself: the kernel's line, not the high-water
        mark, since the memory is given back once the work is done."""
        if not self.memory_limit:
            return
        self._require_memory(
            nbytes,
            self.memory_limit,
            lambda used: (
                f"{what} takes about {nbytes >> 20} MiB while it is worked on, and "
                f"the node has {self._left(used)} MiB left of its {self.memory_limit >> 20} MiB: "
                "send it in smaller parts"
            ),
            field=field,
            refused_write=False,
        )

    def _require_memory(
        self,
        need: int,
        line: int,
        why: Callable[[int], str],
        *,
        field: str | None = None,
        refused_write: bool = True,
        line_name: str = "limit_bytes",
    ) -> None:
        """Raise ``InsufficientMemory`` (its message ``why(used)``) unless ``need`` more
        bytes keep anonymous memory within ``line``; a refused write is remembered for
        ``writes_refused``, and the next check measures afresh. The error's details name
        the line ``line_name``."""
        used = self.memory_used()
        if used + need <= line:
            return
        self._memory_measured = -math.inf
        if refused_write:
            self._refused[InsufficientMemory.code] = time.monotonic()
        details = {"used_bytes": used, "needed_bytes": need, line_name: line}
        raise InsufficientMemory(why(used), field=field, **details)

    def _left(self, used: int) -> int:
        """MiB left under the limit."""
        return max(self.memory_limit - used, 0) >> 20

    def _memory_needed(self, op: records.Op, vectors: Matrix | None) -> int:
        """Roughly what applying ``op`` adds to the heap (a growing collection holds its
        old arrays while it copies them)."""
        if op["op"] in _CREATES:
            config = CollectionConfig.parse(op["config"], self.options.hnsw_defaults)
            return memory_for(config, INITIAL_CAPACITY)
        if op["op"] == "add_vector" and (coll := self._collections.get(op["collection"])):
            return coll.memory_to_add_vector(_vector_params(op))
        if op["op"] == "create_field_index" and (coll := self._collections.get(op["collection"])):
            return coll.index_entries(op["key"], op["schema"]) * field_index.BYTES_PER_VALUE
        # (named dense vectors take slots of arrays and graphs sized with the collection's
        # own: counted by memory_to_add; multivectors take what their rows hold)
        named = _sparse_postings(op) * BYTES_PER_POSTING + _multivector_bytes(op)
        coll = self._collections.get(op.get("collection", ""))
        if coll is None:
            return named
        need = named + _payload_memory(coll, op)
        return need if vectors is None else need + coll.memory_to_add(len(vectors))

    async def _durable(self, seq: int) -> int:
        await self._wal.sync(seq)
        if self.confirm is not None:
            await self.confirm(seq)
        return seq

    async def settled(self) -> int:
        """The answer of a write that finds nothing to do: the current sequence, once it
        is as durable (and as confirmed by replicas) as a write's acknowledgement. What
        it found may rest on a write still in flight (a point another delete removed a
        moment before): answered at once, it reported a state that a crash or a failover
        could still undo, and a client retrying a write that timed out took it for a
        success."""
        return await self._durable(self.sequence)

    # ---- replication ---------------------------------------------------------------------

    async def apply_replicated(self, seq: int, body: bytes) -> None:
        """Log and apply a record shipped by the primary, under the primary's sequence.

        Like a client write it waits while a snapshot is being written."""
        self._check_ready()
        op, vectors = records.decode(body)
        await self._quiet(_written(op))
        if seq != self.sequence + 1:
            raise StorageError(f"replicated record {seq} does not follow {self.sequence}")
        if op.get("op") not in _KINDS:  # refused before it is logged: it could not be applied
            raise CorruptLog(f"replicated record {seq} has an unknown operation {op.get('op')!r}")
        if not _shrinks(op):
            self._check_replica_memory(seq, op, vectors)
        self._append(seq, body, op, vectors)

    def _check_replica_memory(self, seq: int, op: records.Op, vectors: Matrix | None) -> None:
        """Refuse a record this replica has no memory for. It cannot skip the record, so
        it holds at the one before (and its follower retries) rather than be killed by
        the kernel, and killed again replaying its log on every restart. Its line is the
        limit itself: the high-water mark is the primary's, for its clients."""
        limit = self.memory_limit
        if not limit:
            return
        need = self._memory_needed(op, vectors)
        self._require_memory(
            need,
            limit,
            lambda used: (
                f"replicated record {seq} needs about {need >> 20} MiB more and this "
                f"replica has {self._left(used)} MiB left of its {limit >> 20} MiB: give it as "
                "much memory as its primary"
            ),
        )
        self._memory_used += need

    async def sync_log(self, seq: int) -> int:
        """Wait until ``seq`` is durable in the local log under the fsync policy (at once
        unless ``always``); the newest sequence on disk (a replica's acknowledgement)."""
        await self._wal.sync(seq)
        return self._wal.durable_sequence

    @property
    def durable_sequence(self) -> int:
        return self._wal.durable_sequence

    def log_reader(self, from_seq: int) -> LogReader | None:
        """A reader of the committed records from ``from_seq`` on, a chunk at a time off
        the loop (see ``LogReader``), or None when the log no longer reaches back."""
        return self._wal.reader(from_seq, self.sequence)

    @property
    def log_first_sequence(self) -> int:
        return self._wal.first_seq

    @contextlib.contextmanager
    def pinned(self, seq: int) -> Iterator[None]:
        """Keep snapshot ``seq`` (and the log after it) while a full sync sends it."""
        self._pins[seq] += 1
        try:
            yield
        finally:
            self._pins[seq] -= 1
            if not self._pins[seq]:
                del self._pins[seq]

    def check_snapshot_fits(self, files: list[tuple[str, int]], index_values: int = 0) -> None:
        """Refuse a full sync whose snapshot (file names and sizes, and the values its
        payload indexes will hold once rebuilt) would not fit in this replica's memory
        beside what it holds (the new data is loaded before the old is dropped): it
        would be killed loading it, and again on every retry."""
        limit = self.memory_limit
        if not limit:
            return
        size = sum(n for _, n in files)
        # the arrays and the graph load as they are; ids and payloads take about three
        # times their JSON as Python objects
        need = size + sum(2 * n for name, n in files if name.endswith(".json"))
        need += index_values * field_index.BYTES_PER_VALUE
        self._require_memory(
            need,
            limit,
            lambda used: (
                f"the primary's snapshot ({size >> 20} MiB"
                + (f", payload indexes over {index_values} values" if index_values else "")
                + f") takes about {need >> 20} MiB to load and this replica has "
                f"{self._left(used)} MiB left of its {limit >> 20} MiB: give it as much memory "
                "as its primary"
            ),
        )

    async def install_snapshot(self, incoming: Path) -> None:
        """Replace every collection with a verified snapshot received from the primary."""
        async with self._snapshot_lock:  # never while this node writes a snapshot of its own
            await self._install(incoming)

    async def _install(self, incoming: Path) -> None:
        loop = asyncio.get_running_loop()
        loaded = await loop.run_in_executor(
            None, snapshot.load_dir, incoming, self.options.hnsw_defaults
        )
        # From here on the node's files change: a cancellation (a promotion, a follow or
        # a fence stopping this follower) waits for the install to end, else it would
        # leave the log closed and the marker that wipes the node at its next start.
        await to_the_end(self._replace_with(incoming, loaded))

    async def _replace_with(self, incoming: Path, loaded: snapshot.Loaded) -> None:
        loop = asyncio.get_running_loop()
        info, collections, names = loaded
        marker = self.data_dir / SYNC_MARKER
        marker.write_bytes(b"")
        fsync_path(self.data_dir)
        self._wal.close()
        await loop.run_in_executor(None, self._wipe)
        final = self._snap_dir / f"{info.sequence:020d}"
        self._snap_dir.mkdir(parents=True, exist_ok=True)
        os.rename(incoming, final)
        fsync_path(self._snap_dir)
        self._wal = self._new_wal()
        self._wal.recover()
        self._wal.start(info.sequence + 1)
        for old in self._collections.values():
            old.close()
        self._collections, self._aliases = collections, names
        self._graphs_saved = self._graphs_put()
        self.sequence = info.sequence
        self._last_snapshot = snapshot.SnapshotInfo(
            info.sequence, final, info.created_at, info.size_bytes
        )
        self._log_bytes_since_snapshot = 0
        marker.unlink()
        fsync_path(self.data_dir)
        self.snapshots_installed += 1
        log.info("installed a snapshot at sequence %d from the primary", info.sequence)

    def _wipe(self) -> None:
        """Remove the log and whatever lies among the snapshots, folders and files (a full
        sync replaces everything the node held): a folder without a manifest (what a
        prune cut short left) kept here counted, at the next start, as a snapshot newer
        than the synced one that does not load, and the node refused to start. Snapshots
        being received stay (``INCOMING_PREFIX``: the one installed now is among them;
        leftovers go at start-up)."""
        shutil.rmtree(self.data_dir / "wal", ignore_errors=True)
        if not self._snap_dir.is_dir():
            return
        for path in self._snap_dir.iterdir():
            if path.name.startswith(snapshot.INCOMING_PREFIX):
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    path.unlink()

    @_refusals_settle
    async def create_collection(self, name: str, raw_config: dict[str, Any]) -> Collection:
        await self._gate()
        validation.collection_name(name)
        config = CollectionConfig.parse(raw_config, self.options.hnsw_defaults)
        for key in config.payload_indexes:  # (any string loads: stored ones were not checked)
            filters.payload_key(key, f"payload_indexes.{key}")
        if name in self._collections:
            raise CollectionExists(f"collection {name!r} already exists", field="name")
        if name in self._aliases:
            raise CollectionExists(
                f"{name!r} is an alias of collection {self._aliases[name]!r}", field="name"
            )
        seq = self._commit({"op": "create_collection", "name": name, "config": config.to_dict()})
        created = self._collections[name]  # (a delete may follow while this one is synced)
        await self._durable(seq)
        return created

    @_refusals_settle
    async def delete_collection(self, name: str) -> int:
        """Delete the collection called ``name`` (never through an alias) and its aliases."""
        await self._gate(name)
        if name not in self._collections or name.startswith(RECOVERING):
            alias = (
                f" ({name!r} is an alias of {self._aliases[name]!r})"
                if name in self._aliases
                else ""
            )
            raise CollectionNotFound(
                f"collection {name!r} does not exist{alias}", field="collection"
            )
        return await self._durable(self._commit({"op": "delete_collection", "name": name}))

    @_refusals_settle
    async def update_aliases(self, actions: list[alias_ops.AliasAction]) -> int:
        """Create, delete and rename aliases in one step: all of ``actions`` or none."""
        await self._gate()
        changes = alias_ops.plan(actions, self._aliases, self._visible())
        return await self._durable(self._commit({"op": "aliases", "changes": changes}))

    async def upsert(
        self,
        name: str,
        ids: list[Any],
        rows: Any,
        payloads: list[Payload | None],
        *,
        field: str = "vectors",
    ) -> int:
        """Insert or replace points. ``rows`` is a list of vectors or an (n, dim) matrix."""
        return (await self.upsert_if(name, ids, rows, payloads, field=field))[0]

    async def upsert_if(
        self,
        name: str,
        ids: list[Any],
        rows: Any,
        payloads: list[Payload | None],
        *,
        field: str = "vectors",
        condition: Predicate | None = None,
        mode: WriteMode = "upsert",
        named: list[NamedRows] | None = None,
    ) -> tuple[int, int]:
        """``upsert``, as Qdrant's conditional upsert: an existing point is replaced only
        when ``condition`` accepts it, and ``mode`` may insert only or update only
        (``Collection.conditional``, decided as the write commits). ``named``: each
        point's named vectors by name. Returns the sequence and how many points were
        written (distinct ids)."""
        with tracer.start_as_current_span("insert", attributes={"vectorizer.points": len(ids)}):
            return await self._upsert(name, ids, rows, payloads, field, condition, mode, named)

    @_refusals_settle
    async def _upsert(
        self,
        name: str,
        ids: list[Any],
        rows: Any,
        payloads: list[Payload | None],
        field: str,
        condition: Predicate | None,
        mode: WriteMode,
        named: list[NamedRows] | None,
    ) -> tuple[int, int]:
        await self._gate(name)
        coll = self.collection(name)
        clean_ids = [validation.point_id(pid, f"{field}[{i}].id") for i, pid in enumerate(ids)]
        if named is not None:  # (first: a multivector given as a collection's own says so)
            _check_named(coll, named, len(clean_ids), field)
        vectors = _own_vectors(coll, rows, field)
        if not len(clean_ids) == len(vectors) == len(payloads):
            raise ValidationError("one vector and one payload per id", field=field)
        if condition is not None or mode != "upsert":
            kept = coll.conditional(clean_ids, payloads, condition, mode)
            if not kept:
                return await self.settled(), 0
            if len(kept) < len(clean_ids):
                clean_ids = [clean_ids[i] for i in kept]
                payloads = [payloads[i] for i in kept]
                vectors = vectors[kept]
                named = None if named is None else [named[i] for i in kept]
        op: records.Op = {
            "op": "upsert",
            "collection": name,
            "ids": clean_ids,
            "payloads": payloads,
        }
        if named is not None and any(named):
            _named_columns(op, named)
        seq = self._commit(op, vectors, points_field=field)
        # (points written: an id given twice is one point, written once with its last)
        return await self._durable(seq), len(set(clean_ids))

    @_refusals_settle
    async def update_point(
        self, name: str, pid: PointId, vector: Any | None, payload: Payload | None
    ) -> int:
        """Atomically replace the vector and/or the payload of an existing point."""
        await self._gate(name)
        coll = self.collection(name)
        self._require_points(coll, [pid])
        if vector is None and payload is None:
            raise ValidationError("give a vector, a payload or both", field="vector")
        prepared = None
        if vector is not None:
            coll.require_own("vector")
            prepared = coll.config.metric.vector(vector, coll.config.dimension)
        op = {"op": "update", "collection": name, "id": pid, "payload": payload}
        return await self._durable(self._commit(op, prepared))

    @_refusals_settle
    async def update_vectors(
        self,
        name: str,
        ids: list[Any],
        rows: Any,
        *,
        field: str = "points",
        condition: Predicate | None = None,
        named: list[NamedRows] | None = None,
    ) -> tuple[int, int]:
        """Atomically replace the vectors of existing points (payloads kept); ``rows`` are
        ``ids``' new vectors, in order (None: a point keeps its dense vector), and
        ``named`` the named vectors each replaces (the others kept). Errors name
        ``field[i].id`` or ``field[i]``. With ``condition``, only the points it accepts
        change. Returns the sequence and how many points changed."""
        await self._gate(name)
        coll = self.collection(name)
        clean = [validation.point_id(pid, f"{field}[{i}].id") for i, pid in enumerate(ids)]
        if not clean:
            raise ValidationError("no points to update", field=field)
        if len(rows) != len(clean):
            raise ValidationError("one vector per point", field=field)
        first: dict[PointId, int] = {}
        for i, pid in enumerate(clean):
            if first.setdefault(pid, i) != i:
                raise ValidationError(f"point {pid!r} appears twice", field=f"{field}[{i}].id")
        self._require_points(coll, clean)
        if named is not None:
            _check_named(coll, named, len(clean), field)
        if condition is not None:
            kept = coll.conditional(clean, None, condition, "update_only")
            if not kept:
                return await self.settled(), 0
            clean, rows = [clean[i] for i in kept], [rows[i] for i in kept]
            named = None if named is None else [named[i] for i in kept]
        dense = [i for i, row in enumerate(rows) if row is not None]
        if not dense and not (named and any(named)):
            raise ValidationError("no vectors to update", field=field)
        vectors = None
        if dense:
            vectors = _own_vectors(coll, [rows[i] for i in dense], field)
        op: records.Op = {"op": "update_vectors", "collection": name, "ids": clean}
        if len(dense) < len(clean):  # (absent: every point's dense vector is given)
            op["dense"] = dense
        if named is not None and any(named):
            _named_columns(op, named)
        return await self._durable(self._commit(op, vectors, points_field=field)), len(clean)

    @_refusals_settle
    async def delete_vectors(
        self, name: str, ids: list[PointId] | None, predicate: Predicate | None, names: list[str]
    ) -> tuple[int, int]:
        """Remove the named vectors (sparse or dense) of the points ``ids`` (each must exist: a
        missing one refuses the request, nothing changed) or of those ``predicate``
        accepts; returns (points, sequence). A collection's own dense vector cannot be
        removed: a point always has it (an unnamed multivector, ``""`` where there is
        no own one, can)."""
        await self._gate(name)
        coll = self.collection(name)
        for i, vector_name in enumerate(names):
            if vector_name == "" and coll.config.has_own:  # (else an unnamed multivector)
                raise ValidationError(
                    "a point's dense vector cannot be deleted (delete the point, or update "
                    "its vector)",
                    field=f"vector[{i}]",
                )
            coll.check_named(vector_name, f"vector[{i}]")
        if ids is not None:
            present = list(dict.fromkeys(ids))
            self._require_points(coll, present)
        else:
            assert predicate is not None
            present = coll.ids_matching(predicate)
        if not present or not names:
            return 0, await self.settled()
        op = {"op": "delete_vectors", "collection": name, "ids": present, "vectors": names}
        return len(present), await self._durable(self._commit(op))

    @_refusals_settle
    async def delete_payload(
        self, name: str, ids: list[PointId] | None, predicate: Predicate | None, keys: list[str]
    ) -> tuple[int, int]:
        """Remove payload ``keys`` from the points ``ids`` (all must exist) or those the
        filter matches, resolved as the write commits; returns (points, sequence)."""
        await self._gate(name)
        coll = self.collection(name)
        if ids is not None:
            self._require_points(coll, ids)
        else:
            assert predicate is not None
            ids = coll.ids_matching(predicate)
        if not ids:
            return 0, await self.settled()
        for i, key in enumerate(keys):
            paths.parse(key, f"keys[{i}]")  # a bad path is refused before it reaches the log
        op: records.Op = {"op": "delete_payload", "collection": name, "ids": ids, "keys": keys}
        op["json_paths"] = True  # (records before it split keys at their dots: replayed so)
        return len(ids), await self._durable(self._commit(op))

    @_refusals_settle
    async def set_payload(
        self,
        name: str,
        ids: list[PointId],
        payload: Payload,
        *,
        overwrite: bool,
        key: str | None = None,
    ) -> int:
        """Merge ``payload`` into the points' (under ``key``, a path, when given), or
        replace theirs with it (``overwrite``)."""
        await self._gate(name)
        coll = self.collection(name)
        self._require_points(coll, ids)
        return await self._durable(self._commit(_set_payload(name, ids, payload, overwrite, key)))

    @_refusals_settle
    async def delete_points(
        self, name: str, ids: Iterable[Any], *, field: str = "ids"
    ) -> tuple[int, int]:
        """Delete by id (missing ids are ignored, invalid ones refuse the whole request);
        returns (deleted, sequence)."""
        await self._gate(name)
        coll = self.collection(name)
        clean = [validation.point_id(pid, f"{field}[{i}]") for i, pid in enumerate(ids)]
        present = [pid for pid in dict.fromkeys(clean) if pid in coll]
        if not present:
            return 0, await self.settled()
        seq = self._commit({"op": "delete", "collection": name, "ids": present})
        return len(present), await self._durable(seq)

    @_refusals_settle
    async def delete_matching(self, name: str, predicate: Predicate) -> tuple[int, int]:
        """Delete every point the filter matches; the log records the resolved ids."""
        await self._gate(name)
        ids = self.collection(name).ids_matching(predicate)
        if not ids:
            return 0, await self.settled()
        seq = self._commit({"op": "delete", "collection": name, "ids": ids})
        return len(ids), await self._durable(seq)

    @_refusals_settle
    async def set_payload_matching(
        self,
        name: str,
        predicate: Predicate,
        payload: Payload,
        *,
        overwrite: bool,
        key: str | None = None,
    ) -> tuple[int, int]:
        """Set the payload of every point the filter matches, resolved as the write commits."""
        await self._gate(name)
        ids = self.collection(name).ids_matching(predicate)
        if not ids:
            return 0, await self.settled()
        op = _set_payload(name, ids, payload, overwrite, key)
        return len(ids), await self._durable(self._commit(op))

    @_refusals_settle
    async def create_field_index(
        self,
        name: str,
        key: str,
        schema: Any,
        *,
        fields: tuple[str, str] = ("field_name", "field_schema"),
    ) -> int:
        """Index the values at payload ``key`` of a collection (``field_index.SCHEMAS``;
        None: inferred from the values stored there); creating it again with another
        type replaces it. Errors name ``fields`` (the key's, the schema's)."""
        await self._gate(name)
        coll = self.collection(name)
        key = filters.payload_key(key, fields[0])
        if schema is None:
            schema = field_index.infer_schema(coll.payloads_sample(), key, fields[1])
        op = {
            "op": "create_field_index",
            "collection": name,
            "key": key,
            "schema": field_index.parse_schema(schema, fields[1]),
        }
        return await self._durable(self._commit(op))

    @_refusals_settle
    async def add_vector(self, name: str, vector_name: str, dense: Any, sparse: Any) -> int:
        """Give collection ``name`` another named vector: dense (``dense``, its config in
        the wire form of ``VectorConfig``) or sparse (``sparse``, a ``SparseParams``'
        form); errors name the field. Points have none of it until written."""
        await self._gate(name)
        coll = self.collection(name)
        vector_name = sparse_name(vector_name, "vector_name")
        if (dense is None) == (sparse is None):
            raise ValidationError("give a dense or a sparse vector's config", field="config")
        op: records.Op = {"op": "add_vector", "collection": name, "name": vector_name}
        params: VectorConfig | SparseParams
        if dense is not None:
            # Its index those of the collection, as in Qdrant, unless given: a graph with
            # the collection's parameters, or none in an exact collection (HNSW m = 0).
            inherited = {"index": coll.config.index.value, **dense}
            params = VectorConfig.parse(inherited, coll.config.hnsw, "dense.")
            op["dense"] = params.to_dict()
        else:
            params = SparseParams.parse(sparse, "sparse")
            op["sparse"] = params.to_dict()
        taken = vector_name == coll.config.vector_name or coll.is_dense(vector_name)
        if taken or coll.is_sparse(vector_name):
            config = coll.config
            held = config.named_vectors.get(vector_name) or config.sparse_vectors.get(vector_name)
            if _same_vector(params, held):
                return await self.settled()  # the same vector again: nothing to do (as in Qdrant)
            raise ValidationError(
                f"collection {name!r} already has a vector named {vector_name!r}"
                " (with another configuration)",
                field="vector_name",
            )
        return await self._durable(self._commit(op))

    @_refusals_settle
    async def drop_vector(self, name: str, vector_name: str) -> int:
        """Remove a named vector (dense or sparse) from collection ``name`` and its
        points; nothing to do when there is none (as in Qdrant). The collection's own
        dense vector cannot go: every point has it (known by ``""`` or by the name the
        collection was created with)."""
        await self._gate(name)
        coll = self.collection(name)
        if vector_name == coll.config.vector_name:
            vector_name = ""
        if not vector_name:
            raise ValidationError(
                "the collection's own dense vector cannot be deleted: every point has it",
                field="vector_name",
            )
        if not (coll.is_sparse(vector_name) or coll.is_dense(vector_name)):
            return await self.settled()
        op = {"op": "drop_vector", "collection": name, "name": vector_name}
        return await self._durable(self._commit(op))

    @_refusals_settle
    async def delete_field_index(self, name: str, key: str) -> int:
        """Drop the index at payload ``key`` (nothing to do when there is none)."""
        await self._gate(name)
        if key not in self.collection(name).config.payload_indexes:
            return await self.settled()
        op = {"op": "delete_field_index", "collection": name, "key": key}
        return await self._durable(self._commit(op))

    @staticmethod
    def _require_points(coll: Collection, ids: Iterable[PointId]) -> None:
        for pid in ids:
            if pid not in coll:
                raise VectorNotFound(f"no point with id {pid!r} in {coll.name!r}", field="id")

    def _apply(self, op: records.Op, vectors: Matrix | None) -> None:
        kind = op["op"]
        if kind in _CREATES:
            config = CollectionConfig.parse(op["config"], self.options.hnsw_defaults)
            self._collections[op["name"]] = Collection(op["name"], config)
        elif kind == "delete_collection":
            if (gone := self._collections.pop(op["name"], None)) is not None:
                gone.close()  # (its graph rebuilds stop)
            self._aliases = {a: c for a, c in self._aliases.items() if c != op["name"]}
        elif kind == "aliases":
            alias_ops.apply(self._aliases, op["changes"])
        elif kind == "replace_collection":  # (the old one's aliases now name the new one)
            coll = self._collections.pop(op["source"])
            if (gone := self._collections.get(op["name"])) is not None:
                gone.close()
            coll.name = op["name"]
            self._collections[op["name"]] = coll
        else:
            apply = _COLLECTION_OPS.get(kind)
            if apply is None:
                raise CorruptLog(f"unknown log operation {kind!r}")
            apply(self._collections[op["collection"]], op, vectors)

    # ---- collection snapshot files (Qdrant's) -----------------------------------------------

    async def snapshot_collection(self, name: str) -> collection_snapshots.Description:
        """A snapshot file of collection ``name`` (or of the one it is an alias of)."""
        target = self.collection(name).name
        folder = self.collection_snapshots_dir / target
        return await self._cut(collection_snapshots.pack, target, folder)

    async def snapshot_node(self) -> collection_snapshots.Description:
        """A snapshot file of the whole node (every collection and alias)."""
        return await self._cut(full_snapshots.pack, self.full_snapshots_dir)

    def in_background(self, work: Coroutine[Any, Any, object], what: str) -> None:
        """Run ``work`` once the request that asked for it is answered (Qdrant's
        ``wait=false``): it stops with the store, and its failure is logged."""
        task = asyncio.create_task(self._logged(work, what))
        self._tasks.append(task)
        task.add_done_callback(self._tasks.remove)

    @staticmethod
    async def _logged(work: Coroutine[Any, Any, object], what: str) -> None:
        try:
            await work
        except Exception:
            log.exception("%s failed", what)
        else:
            log.info("%s done", what)

    async def _cut(
        self, pack: Callable[..., collection_snapshots.Description], *args: Any
    ) -> collection_snapshots.Description:
        """A file ``pack`` cuts from a node snapshot taken now (one sequence). One cut at
        a time: two at once from one node snapshot would write the same file."""
        self._check_room()
        info = await self.snapshot()
        with self.pinned(info.sequence):  # (no await between: it cannot be pruned first)
            try:
                async with self._cutting:
                    return await asyncio.get_running_loop().run_in_executor(
                        None, pack, info.path, *args
                    )
            except OSError as exc:
                raise StorageError.refused(exc, "writing a snapshot file") from exc

    async def recover_collection(self, name: str, archive: Path) -> int:
        """Replace collection ``name`` (or create it) with the collection in the snapshot
        file ``archive``. Its points arrive as ordinary logged upserts into a hidden
        collection, which then takes the name in one record: a crash or a failover
        midway leaves the old collection as it was (and the hidden one is dropped), and
        replicas follow the same records."""
        validation.collection_name(name, field="collection")
        self._check_ready()
        loop = asyncio.get_running_loop()
        work = self.collection_snapshots_dir / f".tmp-recovery-{uuid.uuid4().hex}"
        async with self._recovery_lock:
            room = max(self.disk_free() - self.disk_reserve(), 0)
            try:
                try:
                    source = await loop.run_in_executor(
                        None, collection_snapshots.unpack, archive, work, room
                    )
                except OSError as exc:  # (a full disk: insufficient_storage)
                    raise StorageError.refused(exc, "extracting the snapshot file") from exc
                try:
                    config = CollectionConfig.parse(source.config, self.options.hnsw_defaults)
                except ValidationError as exc:
                    raise InvalidSnapshot(f"its collection's configuration: {exc}") from None
                points = await loop.run_in_executor(
                    None,
                    source.points,
                    config.dimension,
                    list(config.sparse_vectors),
                    [(v.dimension, v.multivector) for v in config.named_vectors.values()],
                )
                return await self._recover_from(name, config, points)
            finally:
                await loop.run_in_executor(None, shutil.rmtree, work, True)

    @_refusals_settle
    async def _recover_from(
        self, name: str, config: CollectionConfig, points: collection_snapshots.Points
    ) -> int:
        hidden = RECOVERING + name
        self._recovering.add(hidden)
        try:
            await self._gate(hidden)
            self._check_not_alias(name)
            if hidden in self._collections:  # left by a recovery that was cut short
                self._commit({"op": "delete_collection", "name": hidden})
            need, high = memory_for(config, len(points.live)), self.memory_high_water()
            if high:  # (refused at once, rather than once half of it is in)
                self._require_memory(
                    need,
                    high,
                    lambda used: (
                        f"the snapshot's {len(points.live)} points take about {need >> 20} MiB "
                        f"beside the collection they replace, and memory is at {used >> 20} of "
                        f"{high >> 20} MiB allowed"
                    ),
                    field="snapshot",
                )
            self._commit({"op": "create_collection", "name": hidden, "config": config.to_dict()})
            for ids, rows, payloads, named in points.batches(list(config.named_vectors)):
                await asyncio.sleep(0)  # other requests go on between the batches
                await self._gate(hidden)
                self._commit_recovered(hidden, config, ids, rows, payloads, named)
            await self._gate(hidden, name)
            self._check_not_alias(name)  # (an alias may have taken the name meanwhile)
            seq = self._commit({"op": "replace_collection", "name": name, "source": hidden})
        except BaseException:
            self._drop_hidden(hidden)
            raise
        finally:
            self._recovering.discard(hidden)
        return await self._durable(seq)

    def _commit_recovered(
        self,
        hidden: str,
        config: CollectionConfig,
        ids: list[Any],
        rows: Any,  # a Matrix, checked like a client's vectors
        payloads: list[Any],
        named: list[NamedRows],
    ) -> None:
        try:
            clean = [validation.point_id(pid, "snapshot") for pid in ids]
            if config.has_own:
                vectors = config.metric.restore(
                    validation.matrix(rows, config.dimension, field="snapshot"), field="snapshot"
                )
            elif np.shape(rows) == (len(clean), 0):
                vectors = rows
            else:
                raise ValidationError("vectors for a collection without its own", field="snapshot")
            _check_named(self._collections[hidden], named, len(clean), "snapshot")
        except ValidationError as exc:
            raise InvalidSnapshot(f"a point of the snapshot: {exc}") from None
        op: records.Op = {"op": "upsert", "collection": hidden, "ids": clean, "payloads": payloads}
        if any(named):
            _named_columns(op, named)
        self._commit(op, vectors, points_field="snapshot")

    def _check_not_alias(self, name: str) -> None:
        if name in self._aliases:
            raise CollectionExists(
                f"{name!r} is an alias of collection {self._aliases[name]!r}", field="collection"
            )

    def _drop_hidden(self, hidden: str) -> None:
        """Drop the hidden collection of a recovery that did not finish, if this node may
        write now (else the maintenance loop tries again every second)."""
        if hidden not in self._collections or self._closing or self.failure is not None:
            return
        if not self.ready or not self._writable.is_set():  # a snapshot is being written
            return
        try:
            if self.write_guard is not None:
                self.write_guard()  # a replica leaves it to its primary's record
            self._commit({"op": "delete_collection", "name": hidden})
        except VectorizerError:
            return
        log.warning(
            "dropped what an unfinished recovery of %r had restored", hidden[len(RECOVERING) :]
        )

    # ---- snapshots ---------------------------------------------------------------------

    async def snapshot(self) -> snapshot.SnapshotInfo:
        """Write a snapshot of everything at the current sequence; writes pause meanwhile.

        Refused once a record failed part-applied (``StorageFailed``): memory may hold part
        of it, which the log no longer does, and a snapshot would keep that part for good
        (and truncate the log that can rebuild memory without it) under the sequence
        before it; the next start replays the log instead."""
        self._check_ready()
        if self._untrusted is not None:
            raise StorageFailed(
                f"no snapshot can be taken: {self._untrusted} and memory may hold part of "
                "it; the node takes none until it restarts from its log"
            )
        loop = asyncio.get_running_loop()
        async with self._snapshot_lock:
            last = self._last_snapshot
            if (
                last is not None
                and last.sequence == self.sequence
                and (self._graphs_put() == self._graphs_saved or self.sequence in self._pins)
            ):
                # (a pinned snapshot is being sent to a replica: not replaced meanwhile)
                return last
            with tracer.start_as_current_span(
                "snapshot", attributes={"vectorizer.sequence": self.sequence}
            ):
                return await self._take_snapshot(loop)

    async def _take_snapshot(self, loop: asyncio.AbstractEventLoop) -> SnapshotInfo:
        # Large batches being linked are done first, writes going on meanwhile: paused
        # first, every collection's writes waited for another's link. (None starts
        # between the last wait and the pause: nothing yields there.)
        while (busy := self._linking(list(self._collections))) is not None:
            await busy.graphs_settled()
        self._writable.clear()
        started = time.perf_counter()
        try:
            seq, colls = self.sequence, list(self._collections.values())
            for coll in colls:  # on the loop, like every change: the graphs are saved whole
                coll.fold()
            graphs = self._graphs_put()  # (a graph put in place after this: due again)
            # Saving a graph waits for its fold (on the worker thread, not the loop).
            try:
                info = await _whole(
                    loop.run_in_executor(
                        None, snapshot.write, self._snap_dir, seq, colls, dict(self._aliases)
                    )
                )
            except OSError as exc:  # e.g. a full disk: the log still holds everything
                raise StorageError.refused(exc, f"writing the snapshot at {seq}") from exc
            self._log_bytes_since_snapshot = 0
            self._graphs_saved = graphs
        finally:
            self._writable.set()
        if self.on_snapshot is not None:
            self.on_snapshot(time.perf_counter() - started, info.size_bytes)
        self._last_snapshot = info
        kept = await loop.run_in_executor(
            None,
            snapshot.prune,
            self._snap_dir,
            self.options.snapshots_retained,
            set(self._pins),
        )
        # Keep the log back to the oldest retained snapshot, so a damaged newest
        # snapshot can still be recovered from the one before it (and a snapshot being
        # sent to a replica is followed by every record the replica will need).
        self._wal.truncate_before(min(s.sequence for s in kept) + 1)
        log.info("snapshot at sequence %d (%d bytes)", seq, info.size_bytes)
        return info


def _set_payload(
    name: str, ids: list[PointId], payload: Payload, overwrite: bool, key: str | None
) -> records.Op:
    op: records.Op = {
        "op": "set_payload",
        "collection": name,
        "ids": ids,
        "payload": payload,
        "overwrite": overwrite,
        "nulls_remove": True,  # a null in a merged payload removes its key
    }
    if key is not None:  # (absent in records written before keys: the same as None)
        # a bad path, or one too deep to store, is refused before it reaches the log
        payloads.check_key_depth(paths.parse(key), payload)
        op["key"] = key
    return op


async def _whole(work: asyncio.Future[_T]) -> _T:
    """``work``'s result (a thread's); cancelled meanwhile, the cancellation waits for it
    to finish first. A thread cannot be stopped: a periodic snapshot cancelled by the
    node's stop wrote on after its lock was let go, and the shutdown snapshot wrote the
    same folder beside it, each removing the other's files."""
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        await asyncio.wait([work])
        raise


def _written(op: records.Op) -> list[str]:
    """The collections a record writes: a point write's (or a change to its vectors or
    indexes), or one made, deleted or replaced and the one that replaces it."""
    if "collection" in op:
        return [op["collection"]]
    return [op[key] for key in ("name", "source") if isinstance(op.get(key), str)]


def _shrinks(op: records.Op) -> bool:
    """Whether ``op`` adds no data (taken whatever the room on disk or in memory)."""
    if op["op"] == "set_payload":
        return bool(op["overwrite"]) and not op["payload"]  # clearing payloads
    return op["op"] in _SHRINKING


def _unstorable_payload(op: records.Op, points_field: str) -> str:
    """The field of the first payload of ``op`` that cannot be encoded."""
    for i, payload in enumerate(op.get("payloads") or ()):
        try:
            orjson.dumps(payload)
        except orjson.JSONEncodeError:
            return f"{points_field}[{i}].payload"
    return "payload"


# ---- what each logged operation on a collection does to it (``Store._apply``) ----------


# Records with what older code would not hold but not refuse either (fields it ignores)
# go under kinds of their own, which it refuses: a replica on older code then stops at
# the first of them instead of dropping what it does not know (see docs/REPLICATION.md).
# Version 2: sparse vectors and a named dense vector; version 3: named dense vectors
# beside the collection's own; version 4: a collection without a dense vector of its
# own (``dimension: 0``, which older code refuses anyway, but as a broken record).
_VERSIONED_FIELDS = {
    "upsert": (("named", 3), ("sparse", 2)),
    "update_vectors": (("named", 3), ("sparse", 2), ("dense", 2)),
}
_VERSIONED_CONFIG = (("named_vectors", 3), ("sparse_vectors", 2), ("vector_name", 2))
_CREATES = frozenset(
    {"create_collection", "create_collection_v2", "create_collection_v3", "create_collection_v4"}
)


def _mark_version(op: records.Op) -> None:
    kind = op["op"]
    if kind == "create_collection" and op["config"]["dimension"] == 0:
        op["op"] = "create_collection_v4"
        return
    fields = _VERSIONED_CONFIG if kind == "create_collection" else _VERSIONED_FIELDS.get(kind)
    holder = op["config"] if kind == "create_collection" else op
    for name, version in fields or ():
        if name in holder:
            op["op"] = f"{kind}_v{version}"
            return


def _own_vectors(coll: Collection, rows: Any, field: str) -> Matrix:
    """Points' own dense vectors (a list of vectors, None for a point that gives none, or
    a matrix), checked and prepared as their metric wants them: an (n, dim) matrix,
    (n, 0) for a collection without a vector of its own (which takes none)."""
    missing = [] if isinstance(rows, np.ndarray) else [i for i, r in enumerate(rows) if r is None]
    if not coll.config.has_own:
        absent = set(missing)
        given = next((i for i in range(len(rows)) if i not in absent), None)
        if given is not None:
            coll.require_own(f"{field}[{given}]")
        return np.zeros((len(rows), 0), dtype=np.float32)
    if missing:
        raise ValidationError(
            'a point needs the collection\'s own dense vector ("", or the name it was created '
            "with) beside its other vectors",
            field=f"{field}[{missing[0]}]",
        )
    return coll.config.metric.prepare(
        validation.matrix(rows, coll.config.dimension, field=field), field=field
    )


def _check_named(coll: Collection, given: list[NamedRows], points: int, field: str) -> None:
    """Check each point's named vectors against the collection (a sparse vector for a
    sparse name, a dense one of the right size for a dense name); the dense ones are
    prepared as their metric wants them, in place."""
    if len(given) != points:
        raise ValidationError("one set of named vectors per point", field=field)
    for i, rows in enumerate(given):
        for vector_name, value in rows.items():
            at = f"{field}[{i}].vector.{vector_name}"
            if isinstance(value, SparseVector):
                if coll.is_dense(vector_name):
                    raise ValidationError(
                        f"{vector_name!r} is a dense vector: give a list of numbers", field=at
                    )
                coll.has_sparse(vector_name, at)
                continue
            if coll.is_sparse(vector_name):
                raise ValidationError(
                    f"{vector_name!r} is a sparse vector: give {{indices, values}}", field=at
                )
            config = coll.dense_config(vector_name, at)
            if config.multivector:
                rows[vector_name] = _multivector(value, config, at)
            elif isinstance(value, np.ndarray):  # (a snapshot's row, stored prepared)
                checked = validation.matrix(cast(Any, value), config.dimension, field=at)
                rows[vector_name] = config.metric.restore(checked, field=at)
            elif isinstance(value, list) and value and isinstance(value[0], list):
                raise ValidationError(
                    f"{vector_name!r} is a dense vector, not a multivector: give one vector",
                    field=at,
                )
            else:
                rows[vector_name] = config.metric.vector(value, config.dimension, field=at)


def _multivector(value: Any, config: VectorConfig, field: str) -> MultiVector:
    """A multivector of a request (a list of vectors) or of a snapshot, checked and
    prepared."""
    if isinstance(value, MultiVector):  # (a snapshot's, stored prepared)
        checked = validation.matrix(cast(Any, value.rows), config.dimension, field=field)
        return MultiVector(config.metric.restore(checked, field=field))
    if not isinstance(value, list) or not value or not isinstance(value[0], list):
        raise ValidationError("a multivector is a list of vectors (at least one)", field=field)
    rows = validation.matrix(value, config.dimension, field=field)
    return MultiVector(config.metric.prepare(rows, field=field))


def _named_columns(op: records.Op, given: list[NamedRows]) -> None:
    """Put points' named vectors in the record ``op``, in the log's form: under
    ``sparse``, per name, each point's ``[indices, values]`` or null; under ``named``,
    per name, each point's dense vector (float32, little-endian, base64) or null."""
    names = sorted({name for rows in given for name in rows})
    sparse: dict[str, list[Any]] = {}
    named: dict[str, list[Any]] = {}
    for name in names:
        column = [rows.get(name) for rows in given]
        if any(isinstance(v, SparseVector) for v in column):
            sparse[name] = [
                None if v is None else cast(SparseVector, v).to_record() for v in column
            ]
        else:
            named[name] = [None if v is None else _named_record(v) for v in column]
    if sparse:
        op["sparse"] = sparse
    if named:
        op["named"] = named


def _named_record(vector: Any) -> str | list[Any]:
    """A named dense vector's form in the log: its row as base64 (float32,
    little-endian), or a multivector's ``[rows, base64 of them all]``."""
    if isinstance(vector, MultiVector):
        return [int(vector.rows.shape[0]), _base64(vector.rows)]
    return _base64(vector)


def _base64(rows: Matrix) -> str:
    return base64.b64encode(np.ascontiguousarray(rows, dtype="<f4").tobytes()).decode()


def _from_base64(raw: str) -> Matrix:
    return np.frombuffer(base64.b64decode(raw), dtype="<f4").astype(np.float32)


def _named_rows(op: records.Op, points: int) -> list[NamedRows] | None:
    """Points' named vectors from a record's ``sparse`` and ``named`` (absent: none)."""
    sparse, named = op.get("sparse"), op.get("named")
    if not sparse and not named:
        return None
    out: list[NamedRows] = [{} for _ in range(points)]
    for name, column in (sparse or {}).items():
        for rows, raw in zip(out, column, strict=True):
            if raw is not None:
                rows[name] = SparseVector.from_record(raw)
    for name, column in (named or {}).items():
        for rows, raw in zip(out, column, strict=True):
            if isinstance(raw, list):  # a multivector: [rows, base64]
                rows[name] = MultiVector(_from_base64(raw[1]).reshape(raw[0], -1))
            elif raw is not None:
                rows[name] = _from_base64(raw).reshape(1, -1)
    return out


def _multivector_bytes(op: records.Op) -> int:
    """The bytes the multivectors of a record hold."""
    columns = op.get("named") or {}
    return sum(
        len(raw[1]) * 3 // 4
        for column in columns.values()
        for raw in column
        if isinstance(raw, list)
    )


def _payload_memory(coll: Collection, op: records.Op) -> int:
    """Roughly the heap the payloads of a record take once applied (and the tokens of
    the collection's text indexes in them)."""
    if "payloads" in op:
        return coll.memory_for_payloads(op["payloads"])
    if op["op"] == "update":
        return coll.memory_for_payloads([op["payload"]])
    if op["op"] == "set_payload":
        return coll.memory_for_payloads([op["payload"]], op.get("key"), len(op["ids"]))
    return 0


def _sparse_postings(op: records.Op) -> int:
    columns = op.get("sparse") or {}
    return sum(len(raw[0]) for column in columns.values() for raw in column if raw is not None)


def _upsert(coll: Collection, op: records.Op, vectors: Matrix | None) -> None:
    assert vectors is not None
    coll.upsert(op["ids"], vectors, op["payloads"], _named_rows(op, len(op["ids"])))


def _update_vectors(coll: Collection, op: records.Op, vectors: Matrix | None) -> None:
    ids, named = op["ids"], _named_rows(op, len(op["ids"]))
    dense = op.get("dense")
    if dense is None or len(dense) == len(ids):  # (every point's dense vector given)
        coll.update_vectors(ids, vectors, named)
        return
    if dense:  # some points' dense vectors (and their named ones), then the others'
        assert vectors is not None
        picked = None if named is None else [named[i] for i in dense]
        coll.update_vectors([ids[i] for i in dense], vectors, picked)
    given = set(dense)
    rest = [i for i in range(len(ids)) if i not in given]
    if named is not None:
        coll.update_vectors([ids[i] for i in rest], None, [named[i] for i in rest])


def _same_vector(
    given: VectorConfig | SparseParams, held: VectorConfig | SparseParams | None
) -> bool:
    """Whether ``given`` (what ``add_vector`` was asked for) is the vector ``held``
    again: its size, metric and rows, or its modifier. A request says nothing of its
    index (graph or exact, and the graph's parameters: the vector's own, or the
    collection's when it was added)."""
    if isinstance(given, VectorConfig) and isinstance(held, VectorConfig):
        return dataclasses.replace(given, index=held.index, hnsw=held.hnsw) == held
    return given == held


def _vector_params(op: records.Op) -> VectorConfig | SparseParams:
    """The config of the vector an ``add_vector`` record adds (checked when logged)."""
    if "dense" in op:
        return VectorConfig.parse(op["dense"], HnswParams())
    return SparseParams.parse(op["sparse"], "sparse")


def _set_payload_op(coll: Collection, op: records.Op, _: Matrix | None) -> None:
    nulls_remove = op.get("nulls_remove", False)  # (absent in older records)
    coll.set_payload(op["ids"], op["payload"], op["overwrite"], op.get("key"), nulls_remove)


_COLLECTION_OPS: dict[str, Callable[[Collection, records.Op, Matrix | None], object]] = {
    "upsert": _upsert,
    "upsert_v2": _upsert,
    "upsert_v3": _upsert,
    "update": lambda coll, op, vectors: coll.update(op["id"], vectors, op["payload"]),
    "update_vectors": _update_vectors,
    "update_vectors_v2": _update_vectors,
    "update_vectors_v3": _update_vectors,
    "set_payload": _set_payload_op,
    # (records before "json_paths" split keys at their dots, and replay so)
    "delete_payload": lambda coll, op, _: coll.delete_payload(
        op["ids"], op["keys"], op.get("json_paths", False)
    ),
    "delete": lambda coll, op, _: coll.delete(op["ids"]),
    "delete_vectors": lambda coll, op, _: coll.delete_vectors(op["ids"], op["vectors"]),
    "add_vector": lambda coll, op, _: coll.add_vector(op["name"], _vector_params(op)),
    "drop_vector": lambda coll, op, _: coll.drop_vector(op["name"]),
    "create_field_index": lambda coll, op, _: coll.create_field_index(op["key"], op["schema"]),
    "delete_field_index": lambda coll, op, _: coll.drop_field_index(op["key"]),
}
# every operation ``_apply`` knows (a replicated record of another kind is refused unlogged)
_KINDS = frozenset(
    {*_CREATES, "delete_collection", "aliases", "replace_collection", *_COLLECTION_OPS}
)
