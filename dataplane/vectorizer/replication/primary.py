"""The primary's side: stream the log to each replica, track what each has confirmed.

Statuses (thresholds are settings):
- ``Syncing``: a full sync (snapshot transfer) is in progress, or sent and not yet
  confirmed installed (the replica's first ack at or past its sequence), and moved
  within ``disconnect_timeout_ms`` (see ``PrimaryHub.status``);
- ``Disconnected``: no link, or nothing heard for ``disconnect_timeout_ms`` (during a
  full sync: nothing heard and nothing more sent for as long);
- ``Lagging``: the oldest record the replica has not confirmed is older than
  ``lagging_threshold_ms``;
- ``Connected``: otherwise.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from vectorizer.engine import snapshot
from vectorizer.engine.files import sha256
from vectorizer.engine.snapshot import SnapshotInfo
from vectorizer.engine.store import Store
from vectorizer.engine.wal import LogReader
from vectorizer.errors import ReplicationTimeout, StorageError
from vectorizer.observability import tracing
from vectorizer.replication import protocol
from vectorizer.replication.state import (
    EPOCH_STEP_MAX,
    History,
    divergence,
    history_json,
    parse_history,
    valid_epoch,
)
from vectorizer.tasks import stop

log = logging.getLogger(__name__)

# Recent records kept in memory for live streaming (older ones are read from the log).
RECENT_RECORDS = 50_000
RECENT_BYTES = 64 << 20
# Records read from the log files at a time, for a replica further behind (bodies' bytes).
LOG_CHUNK_BYTES = 4 << 20
# A snapshot's files, their entries in its header, and the values its indexes hold.
Description = tuple[list[Path], list[dict[str, Any]], int]


class SyncRefused(Exception):
    """The replica did not take the snapshot announced to it (it had no room for it, or
    it went away): none of the snapshot's data was sent."""


class CredentialsRevoked(Exception):
    """The credentials that opened a link are no longer valid (the replica was told)."""


class Admission:
    """A link's credentials, checked again whenever the API keys change and at least
    every second, before anything more goes out on it (a record, a snapshot's header,
    each of its chunks: a full sync of a large node lasts as long as its reader likes).
    """

    INTERVAL_S = 1.0

    def __init__(
        self,
        admitted: Callable[[], bool] | None,
        revision: Callable[[], object],
        tell: Callable[[], Awaitable[None]],
    ) -> None:
        self._admitted = admitted
        self._revision = revision
        self._tell = tell  # (says to the replica that its credentials were revoked)
        self._seen = revision()
        self._checked = time.monotonic()

    async def check(self) -> None:
        """Raise ``CredentialsRevoked`` (after telling the replica) once they are not valid."""
        if self._admitted is None:
            return
        now, revision = time.monotonic(), self._revision()
        if revision == self._seen and now - self._checked < self.INTERVAL_S:
            return
        self._seen, self._checked = revision, now
        if not self._admitted():
            await self._tell()
            raise CredentialsRevoked


@dataclass
class ReplicaInfo:
    node_id: str
    address: str
    acked: int = 0  # the newest sequence it holds (its lag counts from here)
    durable: int = 0  # the newest on its disk (what confirms a write: ``sync_replicas``)
    connected: bool = True
    syncing: bool = False
    # a snapshot sent whole, at this sequence, that the replica has yet to confirm
    # installed (its first ack at or past it): only then is it counted (``full_syncs``)
    installing: int | None = None
    connected_at: float = field(default_factory=time.time)
    last_heard: float = field(default_factory=time.monotonic)
    last_heard_wall: float = field(default_factory=time.time)
    last_sent: float = field(default_factory=time.monotonic)  # when a send last completed
    bytes_sent: int = 0
    operations_synced: int = 0
    full_syncs: int = 0
    # it answers each snapshot header before any file data is sent (take or refuse)
    confirms_snapshots: bool = False
    # it checks each record's CRC-32 (protocol.CHECKED_RECORD); older replicas do not
    record_checksums: bool = False
    record_parts: bool = False  # it joins a large record's pieces (protocol.RECORD_PART)
    # it takes heartbeats while a full sync's snapshot is prepared (before its header)
    waits_for_snapshots: bool = False
    answers: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue, repr=False)
    refused_sync: str | None = None  # why it refused the last snapshot announced to it


class CommitClock:
    """When each record was committed, in bounded memory, for the age of the oldest
    record a replica lacks (its lag), however long it has been away.

    A record's time is kept when it comes ``RESOLUTION_S`` or more after the last time
    kept; a record between two kept ones is dated at the first of them. Past
    ``MAX_POINTS`` older times are thinned, keeping every date within ``PRECISION`` of
    the record's age (a backlog of a day is dated to within minutes, one of a second to
    the millisecond). Dates are never later than the truth, so a lag is never
    under-reported; records committed before the clock started are dated at its start.
    """

    RESOLUTION_S = 0.001
    PRECISION = 0.01
    MAX_POINTS = 4096

    def __init__(self) -> None:
        self._started = time.monotonic()
        self._seqs: list[int] = []
        self._times: list[float] = []

    def committed(self, seq: int, at: float) -> None:
        if self._times and at - self._times[-1] < self.RESOLUTION_S:
            return
        self._seqs.append(seq)
        self._times.append(at)
        if len(self._seqs) > self.MAX_POINTS:
            self._thin(at)

    def committed_at(self, seq: int) -> float:
        """The (monotonic) time record ``seq`` was committed, at the earliest."""
        i = bisect.bisect_right(self._seqs, seq) - 1
        return self._times[i] if i >= 0 else self._started

    def _thin(self, now: float) -> None:
        """Drop the times whose records the time kept before them dates closely enough:
        every record up to the next kept time is younger than that time, and is dated
        at most ``PRECISION`` of its age early."""
        seqs, times = self._seqs, self._times
        kept = [0]
        for i in range(1, len(seqs) - 1):
            if times[i + 1] - times[kept[-1]] > self.PRECISION * (now - times[i + 1]):
                kept.append(i)
        kept.append(len(seqs) - 1)
        self._seqs = [seqs[i] for i in kept]
        self._times = [times[i] for i in kept]

    def __len__(self) -> int:
        return len(self._seqs)


@dataclass(frozen=True)
class Thresholds:
    heartbeat_s: float
    lagging_ms: float
    disconnect_s: float


class PrimaryHub:
    def __init__(
        self,
        store: Store,
        thresholds: Thresholds,
        node: Callable[[], tuple[int, History]],
        step_down: Callable[[int], None],
        is_primary: Callable[[], bool],
        keys: Callable[[], tuple[int, Callable[[], dict[str, Any]]]] | None = None,
    ) -> None:
        self.store = store
        # (revision, its key file when asked) of this node's API keys, sent to replicas
        self._keys = keys
        self.thresholds = thresholds
        self._node = node  # (epoch, history) now
        self._step_down = step_down
        self._is_primary = is_primary
        self.replicas: dict[str, ReplicaInfo] = {}
        # (sequence, body, traceparent of the write when it was traced)
        self._recent: deque[tuple[int, bytes, str | None]] = deque()
        # when records were committed, linked replicas or not: a replica that went away
        # still lags, and by the age of the oldest record it lacks
        self.clock = CommitClock()
        self._recent_bytes = 0
        self._wakeups: set[asyncio.Event] = set()
        self._ack_waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._stopped = False  # the node is stopping: no write waits for replicas now
        self._links: dict[str, web.WebSocketResponse] = {}  # each replica's live link
        self.bytes_sent = 0
        self.full_syncs = 0  # snapshots sent whole, to any replica
        # The last snapshot sent in full, its files, their header entries and values
        # indexed: replicas synced from one snapshot (nothing written between) share
        # them, rather than each reading all its files again to hash them.
        self._described: tuple[SnapshotInfo, asyncio.Future[Description]] | None = None
        store.on_commit.append(self._on_commit)

    # ---- records as they are committed ---------------------------------------------------

    def _on_commit(self, seq: int, body: bytes) -> None:
        self.clock.committed(seq, time.monotonic())
        if not self._links:  # nobody to stream to: keep no copies (and no gaps later)
            self._recent.clear()
            self._recent_bytes = 0
            return
        self._recent.append((seq, body, tracing.current_traceparent()))
        self._recent_bytes += len(body)
        while len(self._recent) > RECENT_RECORDS or self._recent_bytes > RECENT_BYTES:
            self._recent_bytes -= len(self._recent.popleft()[1])
        for ev in self._wakeups:
            ev.set()

    def _recent_from(self, seq: int) -> list[tuple[int, bytes, str | None]] | None:
        """Records from ``seq`` on when memory holds them all (None: read the log)."""
        if self._recent and self._recent[0][0] <= seq:
            count = self._recent[-1][0] - seq + 1  # the newest records: index from the right
            return [self._recent[-i] for i in range(count, 0, -1)]
        return None

    def commit_age_ms(self, seq: int) -> float:
        """How long ago record ``seq`` was committed (0 when not yet written)."""
        if seq > self.store.sequence:
            return 0.0
        return max(time.monotonic() - self.clock.committed_at(seq), 0.0) * 1000

    # ---- observation ---------------------------------------------------------------------

    def lag(self, info: ReplicaInfo) -> tuple[int, float]:
        """Records the replica lacks and the age of the oldest of them, linked or not (a
        replica counts for as long as the primary runs: it is listed until then)."""
        ops = max(self.store.sequence - info.acked, 0)
        return ops, (self.commit_age_ms(info.acked + 1) if ops else 0.0)

    def status(self, info: ReplicaInfo) -> str:
        if not info.connected:
            return "Disconnected"
        quiet = time.monotonic() - info.last_heard
        if info.syncing:
            # A replica used to say nothing while a snapshot came in (its acks begin once
            # it is installed), and was listed Disconnected however well the transfer
            # went. It beats while more of it arrives (older replicas do not), and a send
            # completes only as the replica reads (one that stopped reading holds it once
            # the socket's buffers are full): the sync lives while either happens.
            quiet = min(quiet, time.monotonic() - info.last_sent)
            return "Syncing" if quiet <= self.thresholds.disconnect_s else "Disconnected"
        if quiet > self.thresholds.disconnect_s:
            return "Disconnected"
        if self.lag(info)[1] > self.thresholds.lagging_ms:
            return "Lagging"
        return "Connected"

    def describe(self) -> list[dict[str, Any]]:
        out = []
        for info in self.replicas.values():
            ops, ms = self.lag(info)
            out.append(
                {
                    "id": info.node_id,
                    "address": info.address,
                    "status": self.status(info),
                    "sequence": info.acked,
                    "lag_operations": ops,
                    "lag_ms": round(ms, 3),
                    "last_heartbeat": info.last_heard_wall,
                    "operations_synced": info.operations_synced,
                    "bytes_sent": info.bytes_sent,
                    "full_syncs": info.full_syncs,
                    "sync_refused": info.refused_sync,
                    "connected_since": info.connected_at if info.connected else None,
                }
            )
        return out

    def connected_count(self) -> int:
        return sum(1 for i in self.replicas.values() if self.status(i) not in ("Disconnected",))

    # ---- write concern -------------------------------------------------------------------

    async def wait_for_acks(self, seq: int, needed: int, timeout_s: float) -> None:
        """Return once ``needed`` replicas confirmed ``seq``; ReplicationTimeout otherwise."""
        if needed <= 0 or self._confirmed(seq) >= needed:
            return
        if self._stopped:
            raise self._unconfirmed(seq, needed, "before the node stopped")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (seq, needed, fut)
        self._ack_waiters.append(entry)
        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.shield(fut)
        except TimeoutError:
            raise ReplicationTimeout(
                f"write {seq} is durable on the primary but only {self._confirmed(seq)} of "
                f"{needed} required replicas confirmed it within {timeout_s:.1f}s; "
                "it is not acknowledged and may or may not survive a failover",
                sequence=seq,
            ) from None
        finally:
            with contextlib.suppress(ValueError):
                self._ack_waiters.remove(entry)

    def stop_waiting(self) -> None:
        """The node stops: every write waiting for replicas ends now, unconfirmed (503
        ``replication_timeout``, as at its timeout: durable here, not acknowledged), and
        so does any that would wait from now on. A replica that stopped answering (paused,
        cut off) held the node's exit for a write's whole ``sync_timeout_ms``."""
        self._stopped = True
        self._end_waits("before the node stopped")

    def _end_waits(self, when: str) -> None:
        for seq, needed, fut in self._ack_waiters:
            if not fut.done():
                fut.set_exception(self._unconfirmed(seq, needed, when))

    def _unconfirmed(self, seq: int, needed: int, when: str) -> ReplicationTimeout:
        return ReplicationTimeout(
            f"write {seq} is durable on the primary but only {self._confirmed(seq)} of "
            f"{needed} required replicas confirmed it {when}; it is not "
            "acknowledged and may or may not survive a failover",
            sequence=seq,
        )

    def _confirmed(self, seq: int) -> int:
        return sum(1 for i in self.replicas.values() if i.connected and i.durable >= seq)

    def _acked(self, info: ReplicaInfo, seq: int, durable: int) -> None:
        if seq > info.acked:
            info.operations_synced += seq - info.acked
            info.acked = seq
        info.durable = max(info.durable, min(durable, seq))
        for s, needed, fut in self._ack_waiters:
            if not fut.done() and self._confirmed(s) >= needed:
                fut.set_result(None)

    # ---- one replica's link --------------------------------------------------------------

    def wake(self) -> None:
        """Have every link look for news now (e.g. changed API keys)."""
        for ev in self._wakeups:
            ev.set()

    async def close_all(self) -> None:
        """Every replica's link closes (the node stops, follows another or is fenced
        past its epoch): a write waiting for their confirmations can get none any more,
        and ends now (it waited for its whole ``sync_timeout_ms``)."""
        self._end_waits("before this node stopped streaming to its replicas")
        for ws in list(self._links.values()):
            await ws.close(code=1001, message=b"no longer primary")

    async def serve(
        self, ws: web.WebSocketResponse, admitted: Callable[[], bool] | None = None
    ) -> None:
        """Stream this primary's log to the replica at the other end of ``ws``, for as
        long as ``admitted()`` (its credentials, checked again whenever the API keys
        change and every second) holds."""
        try:
            hello = _hello(await ws.receive_str(timeout=10))
        except (ValueError, TypeError, KeyError) as exc:  # (not text, not JSON, not a hello)
            message = f"expected a hello: {exc}"
            await ws.send_str(protocol.message("error", code="protocol", message=message))
            return
        epoch, history = self._node()
        their_epoch = hello["epoch"]
        if their_epoch > epoch + EPOCH_STEP_MAX:
            message = f"epoch {their_epoch} is more than {EPOCH_STEP_MAX} past this node's {epoch}"
            await ws.send_str(protocol.message("error", code="protocol", message=message))
            return
        if their_epoch > epoch:
            # Someone promoted a newer primary: this node must stop taking writes at once.
            self._step_down(their_epoch)
            await ws.send_str(protocol.message("error", code="stale_epoch", message="stepped down"))
            if not self._is_primary():  # (a write waiting for replicas is answered now)
                await self.close_all()
            return
        if not self._is_primary():
            await ws.send_str(protocol.message("error", code="not_primary", message="not primary"))
            return
        node_id = hello["node_id"]
        stale = self._links.get(node_id)
        if stale is not None:  # the replica reconnected (or another node took its id):
            # one link per node id, or its acks land on a record no longer counted
            await stale.close(code=WSCloseCode.POLICY_VIOLATION, drain=False)
        info = ReplicaInfo(
            node_id=node_id,
            address=str(hello.get("address") or ""),
            confirms_snapshots=hello.get("confirms_snapshots") is True,
            record_checksums=hello.get("record_checksums") is True,
            record_parts=hello.get("record_parts") is True,
            waits_for_snapshots=hello.get("waits_for_snapshots") is True,
        )
        old = self.replicas.get(node_id)
        if old is not None:  # (what it was sent counts over its links, like its figures)
            info.operations_synced, info.full_syncs = old.operations_synced, old.full_syncs
            info.bytes_sent = old.bytes_sent
            info.refused_sync = old.refused_sync
        their_seq = hello["sequence"]
        their_history = hello["history"]
        diverged = divergence(their_history, history, their_seq)
        # A replica ahead of this primary holds records this one never wrote (a primary
        # that lost its disk, say): nothing it has can be trusted.
        ahead = their_seq > self.store.sequence
        full = ahead or diverged is not None or their_seq + 1 < self.store.log_first_sequence
        info.acked = their_seq if not full else 0
        info.durable = min(_durable(hello, their_seq), info.acked)
        self.replicas[node_id] = info
        self._links[node_id] = ws
        wake = asyncio.Event()
        self._wakeups.add(wake)
        reader = asyncio.create_task(self._read(ws, info))
        admission = Admission(
            admitted,
            self._key_revision,
            lambda: self._send_json(
                ws, info, "error", code="unauthenticated", message="credentials revoked"
            ),
        )
        try:
            await self._send_json(
                ws,
                info,
                "welcome",
                epoch=epoch,
                **history_json(history),
                sequence=self.store.sequence,
                mode="full" if full else "incremental",
                record_checksums=info.record_checksums,
            )
            if full:
                log.info(
                    "replica %s needs a full sync (diverged at %s, asked for %d%s)",
                    node_id,
                    diverged,
                    their_seq + 1,
                    f", ahead of this primary at {self.store.sequence}" if ahead else "",
                )
                next_seq = await self._full_sync(ws, info, admission) + 1
            else:
                next_seq = their_seq + 1
            await self._stream(ws, info, epoch, next_seq, wake, reader, admission)
        except SyncRefused as exc:
            log.warning("replica %s refused a full sync: %s", node_id, exc)
        except StorageError as exc:  # (no snapshot to send: a full disk, a failed store)
            log.error("replica %s cannot be synced: %s (it will try again)", node_id, exc)
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_str(protocol.message("error", code=exc.code, message=str(exc)))
        except CredentialsRevoked:
            log.warning("replica %s: its credentials are no longer valid", node_id)
        finally:
            info.connected = False
            info.syncing, info.installing = False, None
            self._wakeups.discard(wake)
            if self._links.get(node_id) is ws:
                del self._links[node_id]
            await stop(reader)

    async def _stream(
        self,
        ws: web.WebSocketResponse,
        info: ReplicaInfo,
        epoch: int,
        next_seq: int,
        wake: asyncio.Event,
        reader: asyncio.Task[None],
        admission: Admission,
    ) -> None:
        """Ship records from ``next_seq`` on, for as long as this node streams at the
        ``epoch`` the link was welcomed at: promoted again (a fenced primary after an
        abandoned switchover), the link ends before a record of the new epoch goes out,
        and the replica reconnects to read the new history in its welcome (else it
        applied the new epoch's records under the old history, and its next link had to
        start over with a full sync)."""
        last_beat = 0.0
        keys_sent = -1
        logged: LogReader | None = None  # where this link is in the log files, if there
        while not ws.closed and not reader.done() and self._is_primary():
            if self._node()[0] != epoch:
                await ws.close(code=WSCloseCode.GOING_AWAY, message=b"new epoch: reconnect")
                return
            wake.clear()
            revision, key_file = self._keys() if self._keys is not None else (keys_sent, dict)
            await admission.check()
            if revision != keys_sent:  # hashes only: a replica checks keys, never issues them
                await self._send_json(ws, info, "keys", file=key_file())
                keys_sent = revision
            if next_seq <= self.store.sequence:
                batch = self._recent_from(next_seq)
                if batch is None:
                    if logged is None or logged.done or logged.next_seq != next_seq:
                        logged = self.store.log_reader(next_seq)
                    batch = await self._read_log(logged)
                    if ws.closed:  # (while the log was read: a node stopping, say)
                        continue
                if batch is None:  # the log moved on while we were away: snapshot again
                    logged = None
                    next_seq = await self._full_sync(ws, info, admission) + 1
                    continue
                with tracing.tracer.start_as_current_span(
                    "replication.send", attributes={"vectorizer.records": len(batch)}
                ):
                    for seq, body, traceparent in batch:
                        await admission.check()
                        frame = protocol.record_frame(
                            seq, body, traceparent, checksum=info.record_checksums
                        )
                        for message in protocol.record_messages(frame, info.record_parts):
                            await ws.send_bytes(message)
                            self._count(info, len(message))
                        next_seq = seq + 1
            now = time.monotonic()
            if now - last_beat >= self.thresholds.heartbeat_s:
                await self._send_json(
                    ws, info, "heartbeat", epoch=epoch, sequence=self.store.sequence
                )
                last_beat = now
            if next_seq > self.store.sequence:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.thresholds.heartbeat_s):
                        await wake.wait()

    @staticmethod
    async def _read_log(logged: LogReader | None) -> list[tuple[int, bytes, str | None]] | None:
        """The next chunk of records from the log files, read off the loop (None: the log
        no longer reaches back). A replica far behind was sent the whole retained log,
        read at once, on the loop: the node stalled for as long, and held all of it in
        memory (once for each replica catching up). Now it holds a chunk at a time, and
        reads the next one once this one is sent: the link's pace."""
        if logged is None:
            return None
        loop = asyncio.get_running_loop()
        chunk = await loop.run_in_executor(None, logged.read, LOG_CHUNK_BYTES)
        return None if chunk is None else [(s, body, None) for s, body in chunk]

    async def _read(self, ws: web.WebSocketResponse, info: ReplicaInfo) -> None:
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    break
                data = protocol.parse(msg.data)
                info.last_heard = time.monotonic()
                info.last_heard_wall = time.time()
                if data["type"] in ("ack", "heartbeat"):
                    seq = int(data["sequence"])
                    self._acked(info, seq, _durable(data, seq))
                    installing = info.installing  # (a sync's beats say 0: they confirm none)
                    if data["type"] == "ack" and installing is not None and seq >= installing:
                        self._installed(info)
                elif data["type"] in ("snapshot_take", "snapshot_refused"):
                    info.answers.put_nowait(data)
        finally:  # a sync waiting for an answer learns that none will come
            info.answers.put_nowait({"type": "closed"})

    async def _confirmed_sync(self, info: ReplicaInfo) -> None:
        """Wait for the replica to take the snapshot just announced; raise if it does not."""
        try:
            async with asyncio.timeout(protocol.ANSWER_TIMEOUT_S):
                answer = await info.answers.get()
        except TimeoutError:
            raise SyncRefused("no answer to the snapshot header") from None
        if answer["type"] == "snapshot_take":
            info.refused_sync = None
            return
        if answer["type"] == "snapshot_refused":
            info.refused_sync = str(answer.get("code") or "refused")
            raise SyncRefused(f"{info.refused_sync}: {answer.get('message')}")
        raise SyncRefused("the link closed before it answered")

    async def _full_sync(
        self, ws: web.WebSocketResponse, info: ReplicaInfo, admission: Admission
    ) -> int:
        info.syncing, info.installing = True, None
        loop = asyncio.get_running_loop()
        with contextlib.ExitStack() as pin:
            async with self._beating(ws, info):
                snap = await self.store.snapshot()
                pin.enter_context(self.store.pinned(snap.sequence))
                files, listing, indexed = await self._describe(snap)
            await admission.check()
            await self._send_json(
                ws,
                info,
                "snapshot",
                sequence=snap.sequence,
                files=listing,
                name=snap.path.name,
                index_values=indexed,
            )
            if info.confirms_snapshots:
                await self._confirmed_sync(info)
            for index, f in enumerate(files):
                with await loop.run_in_executor(None, open, f, "rb") as fh:
                    while chunk := await loop.run_in_executor(None, fh.read, protocol.CHUNK_BYTES):
                        await admission.check()
                        frame = protocol.chunk_frame(index, chunk)
                        await ws.send_bytes(frame)
                        self._count(info, len(frame))
            await admission.check()
            await self._send_json(ws, info, "snapshot_done")
        # Counted once the replica confirms it installed it (``_installed``): sent is not
        # installed (it may fail its checksum there, or the replica stop while it
        # installs), and until then the replica is Syncing, not Lagging.
        info.installing = snap.sequence
        log.info("sent a snapshot at sequence %d to %s", snap.sequence, info.node_id)
        return snap.sequence

    async def _describe(self, snap: SnapshotInfo) -> Description:
        """``snap``'s files, their entries in the snapshot's header (name, size, SHA-256)
        and the values its indexes hold; described once for the replicas it goes to."""
        held = self._described
        if held is None or held[0] is not snap or (held[1].done() and held[1].exception()):
            held = self._described = (snap, asyncio.ensure_future(_description(snap)))
        return await asyncio.shield(held[1])  # (one link going away stops no other's)

    @contextlib.asynccontextmanager
    async def _beating(self, ws: web.WebSocketResponse, info: ReplicaInfo) -> AsyncIterator[None]:
        """Heartbeats meanwhile, to a replica that takes them before a snapshot's header:
        a large node's snapshot and its digests take longer than a replica waits for a
        message, and it dropped the link, for ever (each try took a new snapshot)."""

        async def beat() -> None:
            while True:
                await asyncio.sleep(self.thresholds.heartbeat_s)
                epoch, sequence = self._node()[0], self.store.sequence
                await self._send_json(ws, info, "heartbeat", epoch=epoch, sequence=sequence)

        beats = asyncio.create_task(beat()) if info.waits_for_snapshots else None
        try:
            yield
        finally:
            if beats is not None:
                await stop(beats)

    def _installed(self, info: ReplicaInfo) -> None:
        """The replica confirmed the snapshot sent to it (it acknowledged its sequence)."""
        info.syncing, info.installing = False, None
        info.full_syncs += 1
        self.full_syncs += 1
        log.info("replica %s installed the snapshot sent to it", info.node_id)

    def _key_revision(self) -> object:
        return self._keys()[0] if self._keys is not None else None

    async def _send_json(
        self, ws: web.WebSocketResponse, info: ReplicaInfo, kind: str, **f: Any
    ) -> None:
        text = protocol.message(kind, **f)
        await ws.send_str(text)
        self._count(info, len(text))

    def _count(self, info: ReplicaInfo, n: int) -> None:
        info.last_sent = time.monotonic()
        info.bytes_sent += n
        self.bytes_sent += n


def _durable(said: dict[str, Any], sequence: int) -> int:
    """What a replica's hello or ack says is on its disk (a replica from before they
    said so: its ``sequence``, as before)."""
    durable = said.get("durable", sequence)
    return durable if type(durable) is int else 0


def _hello(text: str) -> dict[str, Any]:
    """A replica's hello, checked: ``epoch`` and ``sequence`` integers in range (an epoch
    from a hello can fence this primary: a string or a float is no epoch), ``node_id``
    a string, ``history`` parsed. ValueError (or KeyError, TypeError) otherwise."""
    hello = protocol.parse(text)
    if hello["type"] != "hello":
        raise ValueError(f"a {hello['type']!r} message")
    if not valid_epoch(hello.get("epoch")):
        raise ValueError("epoch is not an integer from 0 to 2**63-1")
    sequence = hello.get("sequence")
    if not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 0:
        raise ValueError("sequence is not a non-negative integer")
    if not isinstance(hello.get("node_id"), str) or not hello["node_id"]:
        raise ValueError("node_id is not a string")
    return {**hello, "history": parse_history(hello)}


async def _description(snap: SnapshotInfo) -> Description:
    loop = asyncio.get_running_loop()
    files = sorted(p for p in snap.path.rglob("*") if p.is_file())
    digests = [await loop.run_in_executor(None, sha256, f) for f in files]
    listing = [
        {"name": str(f.relative_to(snap.path)), "size": f.stat().st_size, "sha256": d}
        for f, d in zip(files, digests, strict=True)
    ]
    return files, listing, await loop.run_in_executor(None, snapshot.index_values, snap.path)
