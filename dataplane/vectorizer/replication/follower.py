"""The replica's side: follow a primary, apply its log in order, confirm what is durable.

The loop connects, says hello (epoch, sequence, history), and either continues from
its own sequence or receives a full snapshot first; a snapshot is written to a scratch
folder, every file checked against the primary's SHA-256, then verified and installed
by the store — a bad transfer is dropped and retried, never applied. Any failure closes
the link and the loop reconnects after ``reconnect_interval_ms``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import logging
import shutil
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import WSMsgType

from vectorizer.engine.files import fsync_tree
from vectorizer.engine.snapshot import INCOMING_PREFIX
from vectorizer.engine.store import Store
from vectorizer.errors import InsufficientMemory
from vectorizer.observability import tracing
from vectorizer.replication import protocol, redirects
from vectorizer.replication.state import History, history_json, parse_history
from vectorizer.settings import no_password
from vectorizer.tasks import stop

log = logging.getLogger(__name__)


REFUSED_BACKOFF_S = 10.0


def _why(exc: Exception) -> str:
    if isinstance(exc, aiohttp.ClientResponseError):  # (a handshake's or a redirect's)
        return f"HTTP {exc.status} {exc.message}"
    return str(exc)


class LinkError(Exception):
    """The link to the primary must be dropped (and retried)."""


@dataclass
class FollowerStats:
    primary_sequence: int = 0
    bytes_received: int = 0
    # Monotonic times that date the records this replica lacks (see ``Follower.lag``):
    # when it last held everything the primary had, and, until it first has since this
    # follower started, when it first learned of a record it lacked (None: not yet).
    caught_up_at: float | None = None
    behind_since: float | None = None
    last_heard: float = 0.0  # monotonic time of the primary's last word (0: none since start)
    last_sync: float | None = None  # wall time of the last full sync
    connected: bool = False
    syncing: bool = False
    full_syncs: int = 0
    failed_syncs: int = 0


@dataclass(frozen=True)
class FollowerConfig:
    node_id: str
    address: str
    reconnect_s: float
    heartbeat_s: float
    silence_s: float


class Follower:
    def __init__(
        self,
        store: Store,
        primary_url: str,
        config: FollowerConfig,
        node: Callable[[], tuple[int, History]],
        adopt: Callable[[int, History], None],
        headers: Callable[[], dict[str, str]] | None = None,
        tls: Callable[[], ssl.SSLContext | bool] | None = None,
        keys: Callable[[Any], None] | None = None,
    ) -> None:
        self.store = store
        self.primary_url = primary_url.rstrip("/")
        self._shown = no_password(self.primary_url)  # (in logs: a password it holds hidden)
        self.config = config
        self._node = node  # (epoch, history) of this node now
        self._adopt = adopt  # take the primary's epoch and history
        self._headers = headers or (lambda: {})  # the replication credential
        self._tls = tls or (lambda: True)  # how to verify an https primary (and our cert)
        self._keys = keys  # adopt the primary's API keys
        self.stats = FollowerStats()
        self._applied = asyncio.Event()
        # The primary's epoch and history, and the part of it adopted: only as far as the
        # records this node holds (a promotion must not claim records it never got).
        self._their: tuple[int, History] = (0, ())
        self._adopted: History | None = None

    def lag(self) -> tuple[int, float]:
        """Operations behind the primary, and the age of the oldest record lacked.

        A replica does not know when the primary wrote a record: the records it lacks
        are dated from the last time it held everything the primary had (they were
        written after). Until it first has, since this follower started, they are dated
        from the moment it first learned of one it lacked (they existed then): a lower
        bound, like the primary's for the records written before it started."""
        ops = max(self.stats.primary_sequence - self.store.sequence, 0)
        if ops == 0:
            return 0, 0.0
        stats = self.stats
        since = stats.caught_up_at if stats.caught_up_at is not None else stats.behind_since
        if since is None:  # (none lacked when the primary last said what it holds)
            return ops, 0.0
        return ops, (time.monotonic() - since) * 1000

    def _heard(self, sequence: int) -> None:
        """The primary holds records up to ``sequence`` (the newest word of it)."""
        self.stats.primary_sequence = sequence
        if self.stats.behind_since is None and self.store.sequence < sequence:
            self.stats.behind_since = time.monotonic()

    async def run(self) -> None:
        """Follow until cancelled, in a context of its own.

        The task that runs this is created where the node is told to follow: inside the
        ``POST /replication/follow`` request, whose context (request id, current span)
        a task copies. Inherited, it stamped every log line of the link with that
        request's id and trace, and made every record applied without a trace of its own
        a child of that long-finished request: one trace growing for the replica's life.
        (Cancelling this cancels the inner task, and waits for it to end.)"""
        await asyncio.create_task(self._follow(), context=contextvars.Context())

    async def _follow(self) -> None:
        # in a row: the primary does not accept our credential or certificate, or this
        # replica has no memory for the next record
        refusals = 0
        while True:
            refused = False
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except (
                aiohttp.WSServerHandshakeError,
                aiohttp.ClientSSLError,
                redirects.RedirectRefused,
            ) as exc:
                refused = not isinstance(exc, aiohttp.WSServerHandshakeError) or exc.status in (
                    401,
                    403,
                )
                if isinstance(exc, aiohttp.WSServerHandshakeError) and exc.status >= 500:
                    # (a primary recovering, 503 not_ready, or a proxy before it: retried)
                    log.warning("replication link to %s lost: %s", self._shown, _why(exc))
                else:
                    log.error("primary %s refused this replica: %s", self._shown, _why(exc))
            except InsufficientMemory as exc:  # held at the record before; retried
                refused = True
                log.error("replication from %s paused: %s", self._shown, exc.message)
            except (LinkError, aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                # (a message not received in time: a TimeoutError without a text)
                why = str(exc) or f"no message in {self.config.silence_s:g} s"
                log.warning("replication link to %s lost: %s", self._shown, why)
            except Exception:
                log.exception("replication link to %s failed", self._shown)
            finally:
                self.stats.connected = False
                self.stats.syncing = False
            # A refusal does not fix itself within milliseconds (a Secret or a memory limit
            # has to change): back off, up to REFUSED_BACKOFF_S, instead of hammering the
            # primary.
            refusals = refusals + 1 if refused else 0
            delay = self.config.reconnect_s * 2 ** min(refusals, 10)
            await asyncio.sleep(min(delay, max(REFUSED_BACKOFF_S, self.config.reconnect_s)))

    async def _session(self) -> None:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=5)
        async with (
            redirects.session(timeout) as session,
            session.ws_connect(
                self.primary_url + protocol.STREAM_PATH,
                headers=self._headers(),
                max_msg_size=0,
                autoping=True,
                ssl=self._tls() if self.primary_url.startswith("https:") else True,
            ) as ws,
        ):
            epoch, history = self._node()
            await ws.send_str(
                protocol.message(
                    "hello",
                    node_id=self.config.node_id,
                    address=self.config.address,
                    epoch=epoch,
                    sequence=self.store.sequence,
                    durable=self.store.durable_sequence,
                    **history_json(history),
                    confirms_snapshots=True,
                    record_checksums=True,
                    record_parts=True,
                    waits_for_snapshots=True,
                )
            )
            welcome = await self._receive_json(ws)
            if welcome["type"] == "error":
                raise _told(welcome)
            if welcome["type"] != "welcome":
                raise LinkError(f"expected welcome, got {welcome['type']}")
            their_epoch = int(welcome["epoch"])
            if their_epoch < epoch:
                raise LinkError(f"primary epoch {their_epoch} is older than ours ({epoch})")
            self.stats.connected, self.stats.last_heard = True, time.monotonic()
            self._heard(int(welcome["sequence"]))
            their_history = parse_history(welcome)
            if welcome["mode"] == "full":
                await self._full_sync(ws)
            self._their, self._adopted = (their_epoch, their_history), None
            self._adopt_held()
            acker = asyncio.create_task(self._ack_loop(ws))
            try:
                checked = welcome.get("record_checksums") is True  # (older primaries: none)
                await self._apply_loop(ws, their_epoch, checked)
            finally:
                await stop(acker)

    async def _apply_loop(
        self, ws: aiohttp.ClientWebSocketResponse, epoch: int, checked: bool
    ) -> None:
        parts = protocol.Parts()
        while True:
            msg = await ws.receive(timeout=self.config.silence_s)
            self.stats.last_heard = time.monotonic()
            if msg.type == WSMsgType.BINARY:
                self.stats.bytes_received += len(msg.data)
                if msg.data[:1] == protocol.FILE_CHUNK:
                    raise LinkError("snapshot data outside a snapshot")
                try:
                    frame = parts.frame(msg.data)
                    if frame is None:
                        continue  # (more of the record to come)
                    seq, body, traceparent = protocol.parse_record(frame, checked)
                except protocol.DamagedRecord as exc:  # dropped: the primary sends it again
                    raise LinkError(str(exc)) from None
                if seq <= self.store.sequence:
                    continue  # already held (a resent record after a reconnect)
                # The primary's trace when the record carries one, else a trace of its
                # own (a root, never whatever context this task was started in).
                parent = (
                    tracing.extract({"traceparent": traceparent}) if traceparent else tracing.root()
                )
                with tracing.tracer.start_as_current_span(
                    "replication.apply", context=parent, attributes={"vectorizer.sequence": seq}
                ):
                    await self.store.apply_replicated(seq, body)
                if self._adopted != self._their[1]:
                    self._adopt_held()
                self._heard(max(self.stats.primary_sequence, seq))
                self._mark_progress()
            elif msg.type == WSMsgType.TEXT:
                self.stats.bytes_received += len(msg.data)
                data = protocol.parse(msg.data)
                if data["type"] == "heartbeat":
                    if int(data["epoch"]) < epoch:
                        raise LinkError("heartbeat from an older epoch")
                    self._heard(int(data["sequence"]))
                    self._mark_progress()
                elif data["type"] == "snapshot":  # (the log no longer reached back)
                    await self._receive_snapshot(ws, data)
                    self._adopt_held()  # (now, not at the next record: there may be none)
                elif data["type"] == "keys" and self._keys is not None:
                    self._keys(data.get("file"))
                elif data["type"] == "error":
                    raise _told(data)
            else:
                raise LinkError(f"link closed ({msg.type.name})")

    def _adopt_held(self) -> None:
        """Adopt the primary's history as far as the records held reach (an epoch that
        begins after them is adopted once its first record is applied)."""
        epoch, history = self._their
        held = tuple(h for h in history if h[1] <= self.store.sequence)
        if held != self._adopted:
            self._adopt(epoch, held)
            self._adopted = held

    def _mark_progress(self) -> None:
        if self.store.sequence >= self.stats.primary_sequence:
            self.stats.caught_up_at = time.monotonic()
        self._applied.set()

    async def _ack_loop(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Confirm what this node holds (``sequence``) and what of it is on disk
        (``durable``: under ``always`` the same, after its fsync; under an interval, as of
        the interval's last fsync; under ``never``, nothing new): a write that waits for
        replicas (``sync_replicas``) counts only what is on their disks."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.config.heartbeat_s):
                    await self._applied.wait()
            self._applied.clear()
            seq = self.store.sequence
            durable = await self.store.sync_log(seq)
            await ws.send_str(protocol.message("ack", sequence=seq, durable=durable))

    async def _receive_json(self, ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
        msg = await ws.receive(timeout=self.config.silence_s)
        if msg.type != WSMsgType.TEXT:
            raise LinkError(f"expected a message, got {msg.type.name}")
        self.stats.bytes_received += len(msg.data)
        return protocol.parse(msg.data)

    async def _full_sync(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        header = await self._receive_json(ws)
        while header["type"] == "heartbeat":  # (the primary prepares the snapshot)
            self.stats.last_heard = time.monotonic()
            header = await self._receive_json(ws)
        if header["type"] == "error":  # (the primary has no snapshot to send: a full disk)
            raise _told(header)
        if header["type"] != "snapshot":
            raise LinkError(f"expected a snapshot, got {header['type']}")
        await self._receive_snapshot(ws, header)

    async def _receive_snapshot(
        self, ws: aiohttp.ClientWebSocketResponse, header: dict[str, Any]
    ) -> None:
        files: list[dict[str, Any]] = header["files"]
        try:
            self.store.check_snapshot_fits(
                [(str(f["name"]), int(f["size"])) for f in files],
                int(header.get("index_values") or 0),  # (older primaries do not say)
            )
        except InsufficientMemory as exc:  # said before any of its data is sent
            await ws.send_str(
                protocol.message("snapshot_refused", code=exc.code, message=exc.message)
            )
            raise
        await ws.send_str(protocol.message("snapshot_take"))
        self.stats.syncing = True
        name = f"{INCOMING_PREFIX}{int(header['sequence']):020d}"
        incoming = self.store.data_dir / "snapshots" / name
        shutil.rmtree(incoming, ignore_errors=True)
        incoming.mkdir(parents=True)
        loop = asyncio.get_running_loop()
        installing = asyncio.Event()
        beats = asyncio.create_task(self._beat_while_syncing(ws, installing))
        installs = self.store.snapshots_installed
        try:
            hashes = [hashlib.sha256() for _ in files]
            handles = []
            for f in files:
                target = (incoming / f["name"]).resolve()
                if incoming.resolve() not in target.parents:
                    raise LinkError(f"snapshot file name escapes its folder: {f['name']!r}")
                target.parent.mkdir(parents=True, exist_ok=True)
                handles.append(await loop.run_in_executor(None, open, target, "wb"))
            try:
                while True:
                    msg = await ws.receive(timeout=self.config.silence_s)
                    self.stats.last_heard = time.monotonic()
                    if msg.type == WSMsgType.TEXT:
                        self.stats.bytes_received += len(msg.data)
                        done = protocol.parse(msg.data)
                        if done["type"] == "snapshot_done":
                            break
                        raise LinkError(f"unexpected {done['type']} during a snapshot")
                    if msg.type != WSMsgType.BINARY or msg.data[:1] != protocol.FILE_CHUNK:
                        raise LinkError("snapshot transfer interrupted")
                    self.stats.bytes_received += len(msg.data)
                    index, chunk = protocol.parse_chunk(msg.data)
                    hashes[index].update(chunk)
                    await loop.run_in_executor(None, handles[index].write, chunk)
            finally:
                for h in handles:
                    h.close()
            for f, digest in zip(files, hashes, strict=True):
                if digest.hexdigest() != f["sha256"]:
                    raise LinkError(f"snapshot file {f['name']} failed its checksum")
            installing.set()
            # (on disk before the install wipes the log and this node confirms records
            # after it: else a power loss could leave a snapshot that does not load)
            await loop.run_in_executor(None, fsync_tree, incoming)
            await self.store.install_snapshot(incoming)
            self._applied.set()  # (the primary counts the sync once this is confirmed)
        finally:
            # Installed, even if a promotion that waited for the install to end then
            # cancelled this: a sync made. Not installed only when something raised.
            if self.store.snapshots_installed != installs:
                self.stats.full_syncs += 1
                self.stats.last_sync = time.time()
            else:
                self.stats.failed_syncs += 1
                shutil.rmtree(incoming, ignore_errors=True)
            self.stats.syncing = False
            await stop(beats)

    async def _beat_while_syncing(
        self, ws: aiohttp.ClientWebSocketResponse, installing: asyncio.Event
    ) -> None:
        """Tell the primary every heartbeat that the snapshot is still coming in (more of
        it arrived since the last beat) or being installed: until its acks begin, once it
        is installed, this replica said nothing, and its primary listed it Disconnected
        for the rest of any sync longer than ``disconnect_timeout_ms``. A transfer that
        stalls stops the beats. The heartbeat says sequence 0: it confirms nothing (what
        this replica holds may be of another timeline, and is about to be replaced)."""
        beaten = self.stats.bytes_received
        while not ws.closed:
            await asyncio.sleep(self.config.heartbeat_s)
            if self.stats.bytes_received == beaten and not installing.is_set():
                continue
            beaten = self.stats.bytes_received
            with contextlib.suppress(ConnectionError):  # (closed: the transfer finds out)
                await ws.send_str(protocol.message("heartbeat", sequence=0))


def _told(error: dict[str, Any]) -> LinkError:
    """The link's end for an error the primary sent on it (instead of its welcome, or
    later)."""
    return LinkError(f"primary refused: {error.get('code')}: {error.get('message')}")
