"""The node's replication role and every transition of it (promote, follow, fence).

One object owns the persisted ``NodeState``; the store asks it whether a client write
may proceed (``write_guard``) and, in sync mode, waits through it for replicas
(``confirm``). Transitions persist the new state before they take effect.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import aiohttp
import msgspec

from vectorizer.engine.store import Store
from vectorizer.errors import (
    InsufficientStorage,
    NodeFenced,
    NotPrimary,
    ReplicationTimeout,
    StaleEpoch,
    StorageError,
    ValidationError,
)
from vectorizer.replication import redirects
from vectorizer.replication import state as node_state
from vectorizer.replication.follower import Follower, FollowerConfig, FollowerStats
from vectorizer.replication.primary import PrimaryHub, Thresholds
from vectorizer.replication.state import (
    EPOCH_MAX,
    History,
    NodeState,
    Role,
    history_json,
    last_epoch,
    new_node_id,
    valid_epoch,
)
from vectorizer.security.keys import KeyStore
from vectorizer.security.secrets import MIN_KEY, Secret
from vectorizer.security.tls import client_context
from vectorizer.settings import Settings, is_web_url, no_password
from vectorizer.tasks import stop

log = logging.getLogger(__name__)

# How often a restarted primary tries again to record its new timeline (see ``start``).
RECORD_RETRY_S = 1.0
# The errors of a disk without room (a file of a few bytes: no file size limit at play).
_NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT})


class ReplicationManager:
    def __init__(self, store: Store, settings: Settings, keys: KeyStore | None = None) -> None:
        self.store = store
        self.settings = settings
        self.keys = keys or KeyStore(store.data_dir)
        self.state = NodeState(role=Role(settings.role))
        # False until ``start`` loaded the persisted state: until then ``state`` is only a
        # placeholder, and acting on it (a replica's hello at a higher epoch, a control
        # call) would persist a transition over the real state.
        self.started = False
        # The replica's credential towards its primary (a file is re-read when it changes).
        self._credential = Secret(
            settings.replication_key, settings.replication_key_file, min_length=MIN_KEY
        )
        self.hub = PrimaryHub(
            store,
            Thresholds(
                heartbeat_s=settings.heartbeat_interval_ms / 1000,
                lagging_ms=settings.lagging_threshold_ms,
                disconnect_s=settings.disconnect_timeout_ms / 1000,
            ),
            node=lambda: (self.state.epoch, self.state.history),
            step_down=self._step_down,
            is_primary=self._streams,
            keys=lambda: (self.keys.revision, self.keys.export),
        )
        self.follower: Follower | None = None
        # The state a restarted primary could not record (a full disk; see ``start``), and
        # the task that tries again until it can.
        self._unrecorded: NodeState | None = None
        self._recording: asyncio.Task[None] | None = None
        # What the followers before ``follower`` counted: the replication counters are
        # totals over the process's life, whatever roles and primaries it had.
        self._past_followers = FollowerStats()
        self._follow_task: asyncio.Task[None] | None = None
        # One transition (promote, follow, fence) at a time: each waits (for the old
        # follower to stop, for the target's status), and two interleaved left a second
        # follower running beside the one the state named.
        self._transition = asyncio.Lock()
        # What the primary this node last followed had, as far as it heard: taken when
        # its follower stops. None: nothing heard of it since this node started or began
        # following it (a re-point to another primary drops what the old one had), or
        # since this node was promoted (its own log went on from there). Not persisted: a
        # restarted node has heard nothing yet.
        self._last_primary_sequence: int | None = None
        self.promoted_at: float | None = None
        self.on_sync_timeout: Callable[[], object] | None = None  # for metrics
        store.write_guard = self._write_guard
        store.confirm = self._confirm
        self.keys.write_guard = self._write_guard  # keys change on the primary only
        self.keys.on_change.append(self.hub.wake)
        self._refuse_a_start_following_itself()

    def _is_own_url(self, url: str) -> bool:
        return url.rstrip("/") == self.advertise_url.rstrip("/")

    def _refuse_a_start_following_itself(self) -> None:
        """Refuse ``primary_url`` naming this node where this start would follow it (a
        new node started as a replica, or a replica by its persisted state), as
        ``POST /replication/follow`` refuses it: here, before the store recovers and the
        node listens, the server does not start (``ValidationError``). It dialled itself
        every ``reconnect_interval_ms`` and was told ``not_primary`` for ever. (``start``
        checks the state it takes up again, a recorded primary included.)"""
        url = self.settings.primary_url
        if not url or not self._is_own_url(url):
            return
        try:
            recorded = node_state.load(self.store.data_dir)
        except ValueError:
            return  # (``start`` says what is wrong with it)
        role = recorded.role if recorded is not None else Role(self.settings.role)
        if role is Role.REPLICA:
            self._refuse_to_follow_itself(url, "primary_url")

    def _refuse_to_follow_itself(self, url: str, told: str) -> None:
        raise ValidationError(
            f"{told} ({no_password(url)}) is this node's own address: a node cannot follow itself; "
            "give it its primary's URL (--primary-url), or, if the node is reached under "
            "another address, that address as --advertise-url",
            field="primary_url",
        )

    @property
    def advertise_url(self) -> str:
        s = self.settings
        scheme = "https" if s.tls_enabled else "http"
        return s.advertise_url or f"{scheme}://{s.host}:{s.port}"

    # ---- lifetime ------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the persisted state (or create it from the settings) once the store is open.

        A primary begins a new timeline at each start (``NodeState.restarted``). Where
        the disk has no room to record it, the node starts all the same (reads go on, as
        on any full disk) but takes no write and streams to no replica until it is
        recorded, which it tries again every ``RECORD_RETRY_S`` and before each write. A
        record written under the old timeline would be unsafe: a replica may hold
        records this primary streamed before it crashed and then lost; those would read,
        after another crash, as the same timeline as the records written in their place,
        and the replica would stream on from its own."""
        loaded = node_state.load(self.store.data_dir)
        if loaded is None:
            fresh = NodeState(role=Role.REPLICA, node_id=self.settings.node_id or new_node_id())
            if self.settings.role == Role.PRIMARY:
                fresh = fresh.promoted(1, self.store.sequence + 1)
            elif self.settings.primary_url:
                fresh = fresh.following(self.settings.primary_url, 0)
            self._check_not_following_itself(fresh)
            self._persist(fresh)
        else:
            wanted = loaded
            if self.settings.node_id and self.settings.node_id != loaded.node_id:
                wanted = replace(wanted, node_id=self.settings.node_id)
            if wanted.role is Role.REPLICA and self.settings.primary_url:
                wanted = wanted.following(self.settings.primary_url, wanted.epoch)
            if wanted.role is Role.PRIMARY:
                wanted = wanted.restarted(self.store.sequence + 1)
            self._check_not_following_itself(wanted)
            self.state = loaded  # (as recorded: nothing to write when nothing changes)
            if wanted != loaded:
                self._start_recording(wanted)
        log.info(
            "replication: %s at epoch %d (node %s)",
            self.state.role,
            self.state.epoch,
            self.state.node_id,
        )
        self.started = True
        if self.state.role is Role.REPLICA and self.state.primary_url:
            self._start_following(self.state.primary_url)

    def _check_not_following_itself(self, state: NodeState) -> None:
        """Refuse the state a start takes up if it follows this node's own URL: from
        ``primary_url`` (see ``_refuse_a_start_following_itself``), or recorded by a
        start before that was refused (nothing is recorded over it here)."""
        url = state.primary_url
        if state.role is Role.REPLICA and url and self._is_own_url(url):
            told = "primary_url" if self.settings.primary_url else "its recorded primary"
            self._refuse_to_follow_itself(url, told)

    async def stop(self) -> None:
        self.hub.stop_waiting()  # (first: closing a link to a replica that stopped can wait)
        if self._recording is not None:
            await stop(self._recording)
        await self._stop_following()
        await self.hub.close_all()

    def _persist(self, new: NodeState) -> None:
        node_state.save(self.store.data_dir, new)
        self.state = new
        # (a transition made meanwhile starts from the state recorded, and takes the place
        # of the timeline not recorded: no record was written under either)
        self._unrecorded = None

    def _start_recording(self, wanted: NodeState) -> None:
        """Persist ``wanted``, the state this start makes; a primary's, on a disk without
        room, later (see ``start``)."""
        try:
            self._persist(wanted)
        except OSError as exc:
            if wanted.role is not Role.PRIMARY or exc.errno not in _NO_ROOM:
                raise
            self._unrecorded = wanted
            log.error(
                "this primary cannot record the new timeline its start begins (%s): it "
                "serves reads, but takes no write and streams to no replica until it can "
                "(tried again every %gs); make room on the disk",
                exc.strerror or exc,
                RECORD_RETRY_S,
            )
            self._recording = asyncio.create_task(self._record_when_there_is_room())

    async def _record_when_there_is_room(self) -> None:
        while self._unrecorded is not None:
            await asyncio.sleep(RECORD_RETRY_S)
            with contextlib.suppress(StorageError):
                self._record_timeline()

    def _record_timeline(self) -> None:
        """Record the timeline this restarted primary began, if it is not yet;
        ``StorageError`` (``InsufficientStorage`` on a full disk) while it cannot be."""
        if self._unrecorded is None:
            return
        try:
            self._persist(self._unrecorded)
        except OSError as exc:
            raise StorageError.refused(
                exc, "this restarted primary could not record the new timeline its writes begin"
            ) from exc
        log.warning("the new timeline of this primary is recorded: it takes writes again")

    # ---- the store's hooks ---------------------------------------------------------------

    def _write_guard(self) -> None:
        if self.state.role is Role.PRIMARY:
            self._record_timeline()  # (no write before its timeline is recorded)
            return
        if self.state.role is Role.FENCED:
            raise NodeFenced(f"this node is fenced at epoch {self.state.epoch} and takes no writes")
        raise NotPrimary(
            "this node is a replica; send writes to the primary",
            primary=no_password(self.state.primary_url),
        )

    async def _confirm(self, seq: int) -> None:
        needed = self.settings.sync_replicas
        if needed <= 0:
            return
        try:
            self._check_still_streaming(seq, needed)
            await self.hub.wait_for_acks(seq, needed, self.settings.sync_timeout_ms / 1000)
            self._check_still_streaming(seq, needed)
        except ReplicationTimeout:
            if self.on_sync_timeout is not None:
                self.on_sync_timeout()
            raise

    def _check_still_streaming(self, seq: int, needed: int) -> None:
        """Refuse to acknowledge a write once this node no longer streams its timeline:
        fenced by a newer primary, or told to follow, while the write was made durable
        here or confirmed (no replica will confirm it through this node now, and those
        that did will leave this timeline). A primary fenced for a switchover still
        streams, and its replicas' confirmations count."""
        if not self._may_stream():
            raise ReplicationTimeout(
                f"write {seq} is durable on this node, but it stopped being the primary "
                f"({self.state.role}) before {needed} replicas confirmed it; it is not "
                "acknowledged and may or may not survive a failover",
                sequence=seq,
            )

    # ---- transitions ---------------------------------------------------------------------

    def _check_epoch(self, epoch: Any, *, strictly_higher: bool) -> int:
        if not valid_epoch(epoch):
            # (JSON numbers beyond 64 bits arrive as floats: said as what is allowed)
            raise ValidationError(f"epoch must be an integer from 0 to {EPOCH_MAX}", field="epoch")
        if epoch < self.state.epoch or (strictly_higher and epoch == self.state.epoch):
            raise StaleEpoch(
                f"epoch {epoch} is not newer than this node's epoch {self.state.epoch}",
                field="epoch",
                epoch=self.state.epoch,
            )
        return epoch

    async def promote(self, epoch: Any) -> dict[str, Any]:
        """Become primary at ``epoch`` (higher than any this node has seen)."""
        async with self._transition:
            return await self._promote(epoch)

    async def follow(self, primary_url: Any, epoch: Any) -> dict[str, Any]:
        """Become a replica of ``primary_url`` (at ``epoch`` or the node's own)."""
        async with self._transition:
            return await self._follow(primary_url, epoch)

    async def fence(self, epoch: Any = None) -> dict[str, Any]:
        """Stop taking writes now. A fenced primary still streams what it has, so that a
        switchover target can catch up before it is promoted."""
        async with self._transition:
            return await self._fence(epoch)

    async def _promote(self, epoch: Any) -> dict[str, Any]:
        epoch = self._check_epoch(epoch, strictly_higher=True)
        await self._stop_following()
        heard = self._last_primary_sequence
        self._persist(self.state.promoted(epoch, self.store.sequence + 1))
        self._last_primary_sequence = None  # (said once: its log goes on from here)
        self.promoted_at = time.time()
        lost = None if heard is None else max(heard - self.store.sequence, 0)
        log.warning(
            "promoted to primary at epoch %d, sequence %d (%s)",
            epoch,
            self.store.sequence,
            "no word from the primary it followed since this node started or began "
            "following it: what it had is unknown"
            if lost is None
            else f"{lost} operations the old primary had were never received",
        )
        return {
            **self.status(),
            "possibly_lost_operations": lost,
            "last_known_primary_sequence": heard,
        }

    async def _follow(self, primary_url: Any, epoch: Any) -> dict[str, Any]:
        if not is_web_url(primary_url):
            raise ValidationError(
                "primary_url must be an http(s) URL with a host", field="primary_url"
            )
        if self._is_own_url(primary_url):
            raise ValidationError("a node cannot follow itself", field="primary_url")
        epoch = self._check_epoch(epoch, strictly_higher=False)
        if self._may_stream() and epoch == last_epoch(self.state.history):
            # It wrote as primary at this epoch: a primary of the same epoch elsewhere was
            # promoted beside it, and their records cannot be told apart.
            raise StaleEpoch(
                f"this node was primary at epoch {epoch}: follow a primary of a newer "
                "epoch (promote the one to follow again)",
                field="epoch",
                epoch=self.state.epoch,
            )
        await self._check_target(primary_url, epoch)
        streamed = self._may_stream()  # (a primary, or one fenced for a switchover)
        self._persist(self.state.following(primary_url, epoch))
        if streamed:
            await self.hub.close_all()
        await self._stop_following()
        self._start_following(primary_url)
        return self.status()

    async def _fence(self, epoch: Any = None) -> dict[str, Any]:
        if epoch is not None:
            epoch = self._check_epoch(epoch, strictly_higher=False)
        self._persist(self.state.fenced(epoch))
        await self._stop_following()
        if not self._may_stream():
            await self.hub.close_all()
        return self.status()

    def _streams(self) -> bool:
        """Whether replicas are streamed to: as ``_may_stream`` says, once the timeline a
        restarted primary began is recorded (a replica welcomed before, with the history
        without it, would go on receiving on that link the records written under it)."""
        return self._unrecorded is None and self._may_stream()

    def _may_stream(self) -> bool:
        """Primary, or a fenced primary while still at the epoch its own data was written
        in (not after learning of a newer primary, whose timeline may have left ours). A
        fenced replica (it has a primary) wrote nothing of its own: it streams to no one,
        and may follow its primary again at the same epoch."""
        role = self.state.role
        if role is Role.PRIMARY:
            return True
        return (
            role is Role.FENCED
            and self.state.primary_url is None
            and bool(self.state.history)
            and self.state.epoch == last_epoch(self.state.history)
        )

    def _step_down(self, epoch: int) -> None:
        """A newer primary exists: stop taking writes now (called from a replica's hello)."""
        if self.state.role is Role.REPLICA:
            return  # a replica takes no writes; its own primary decides what it follows
        if self.state.role is Role.PRIMARY:
            log.error(
                "a node at epoch %d exists; this primary (epoch %d) steps down to fenced",
                epoch,
                self.state.epoch,
            )
        self._persist(self.state.fenced(epoch))

    def _adopt(self, epoch: int, history: History) -> None:
        self._persist(
            replace(
                self.state, role=Role.REPLICA, epoch=max(epoch, self.state.epoch), history=history
            )
        )

    def _start_following(self, primary_url: str) -> None:
        assert self._follow_task is None or self._follow_task.done(), "one follower at a time"
        if self.follower is None or self.follower.primary_url != primary_url.rstrip("/"):
            # Another primary: what the last one had says nothing of what this one has
            # (a promotion reporting it would count against the wrong log).
            self._last_primary_sequence = None
        if self.follower is not None:
            past, old = self._past_followers, self.follower.stats
            past.bytes_received += old.bytes_received
            past.full_syncs += old.full_syncs
            past.failed_syncs += old.failed_syncs
        s = self.settings
        self.follower = Follower(
            self.store,
            primary_url,
            FollowerConfig(
                node_id=self.state.node_id,
                address=self.advertise_url,
                reconnect_s=s.reconnect_interval_ms / 1000,
                heartbeat_s=s.heartbeat_interval_ms / 1000,
                silence_s=s.disconnect_timeout_ms / 1000,
            ),
            node=lambda: (self.state.epoch, self.state.history),
            adopt=self._adopt,
            headers=self._replication_headers,
            tls=self._replication_tls,
            keys=self._adopt_keys,
        )
        self._follow_task = asyncio.create_task(self.follower.run())

    async def _check_target(self, primary_url: str, epoch: int) -> None:
        """Refuse a node to follow that says it is a replica (it streams to no one: the
        follower would retry for ever), and an epoch newer than the one it says it is
        at: this node's hello would carry it and make that primary step down for a
        promotion that never was. (An epoch this node has seen, it may carry to an older
        primary: that is how one learns of its successor. A fenced primary may be
        followed: a switchover's target catches up from it. Unreachable, the node cannot
        say: the follower keeps trying.)"""
        url = primary_url.rstrip("/") + "/replication/status"
        ssl_ctx: ssl.SSLContext | bool = (
            self._replication_tls() if url.startswith("https://") else True
        )
        try:
            async with (
                redirects.session(aiohttp.ClientTimeout(total=5)) as session,
                session.get(url, headers=self._replication_headers(), ssl=ssl_ctx) as resp,
            ):
                status = await resp.json() if resp.status == 200 else None
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError):
            return
        if not isinstance(status, dict):
            return
        if status.get("role") == "replica":
            their_primary = status.get("primary")
            raise NotPrimary(
                f"{primary_url} is a replica"
                + (f" of {their_primary}" if their_primary else "")
                + ": follow a primary",
                field="primary_url",
                primary=their_primary,
            )
        theirs = status.get("epoch")
        if epoch > self.state.epoch and isinstance(theirs, int) and theirs < epoch:
            raise StaleEpoch(
                f"{primary_url} is at epoch {theirs}, not {epoch}", field="epoch", epoch=theirs
            )

    def _replication_headers(self) -> dict[str, str]:
        credential = self._credential.get()
        return {"X-API-Key": credential} if credential else {}

    def _replication_tls(self) -> ssl.SSLContext:
        """Built per connection, so renewed certificate files are picked up on reconnect."""
        s = self.settings
        return client_context(
            ca_file=s.replication_tls_ca_file or s.tls_client_ca_file,
            cert_file=s.replication_tls_cert_file or s.tls_cert_file,
            key_file=s.replication_tls_key_file or s.tls_key_file,
        )

    def _adopt_keys(self, raw: Any) -> None:
        try:
            self.keys.adopt(raw)
        except msgspec.ValidationError as exc:
            raise ValueError(f"bad keys message from the primary: {exc}") from None

    async def _stop_following(self) -> None:
        """Stop the follower, if one runs, and keep what it heard of its primary's
        sequence (once: a follower stopped before says nothing more)."""
        if self._follow_task is None:
            return
        if self.follower is not None and self.follower.stats.last_heard:
            self._last_primary_sequence = self.follower.stats.primary_sequence
        await stop(self._follow_task)
        self._follow_task = None

    # ---- observation ---------------------------------------------------------------------

    def lag(self) -> tuple[int | None, float | None]:
        if self.state.role is Role.REPLICA and self.follower is not None:
            return self.follower.lag()
        return None, None

    def status(self) -> dict[str, Any]:
        ops, ms = self.lag()
        return {
            "role": self.state.role.value,
            "epoch": self.state.epoch,
            "sequence": self.store.sequence,
            "primary": no_password(self.state.primary_url)
            if self.state.role is Role.REPLICA
            else None,
            **history_json(self.state.history),
            "node_id": self.state.node_id,
            "address": self.advertise_url,
            "ready": self.store.ready,
            "lag_operations": ops,
            "lag_ms": None if ms is None else round(ms, 3),
            "connected": (
                self.follower.stats.connected
                if self.follower and self.state.role is Role.REPLICA
                else None
            ),
            "sync_replicas": self.settings.sync_replicas,
            "writes_refused": self._writes_refused(),
        }

    def _writes_refused(self) -> str | None:
        """Why writes (that add data) are refused now, as an error code; None if not."""
        if self._unrecorded is not None:  # (a restarted primary's timeline not recorded)
            return InsufficientStorage.code
        return self.store.writes_refused() if self.store.ready else None

    def stats(self) -> dict[str, Any]:
        """The node's figures: lag and sequences of its current role, and counters
        (bytes, full syncs) over the process's life, which never go back on a role change."""
        ops, ms = self.lag()
        f = self.follower.stats if self.follower and self.state.role is Role.REPLICA else None
        snap = self.store.stats()["snapshot"]
        replicas = self.hub.describe() if self.state.role is not Role.REPLICA else []
        pending = max((r["lag_operations"] for r in replicas), default=0) if f is None else ops
        received = self._received()
        return {
            "role": self.state.role.value,
            "epoch": self.state.epoch,
            "lag_ms": ms if ms is not None else max((r["lag_ms"] for r in replicas), default=0.0),
            "bytes_sent": self.hub.bytes_sent,
            "bytes_received": received.bytes_received,
            "last_sync": f.last_sync if f else None,
            "operations_pending": pending,
            "snapshot_size": snap["size_bytes"] if snap else 0,
            "connected_replicas": self.hub.connected_count(),
            "primary_sequence": f.primary_sequence if f else self.store.sequence,
            "replica_sequence": self.store.sequence if f else None,
            "full_syncs": self.hub.full_syncs + received.full_syncs,
            "full_syncs_sent": self.hub.full_syncs,
            "full_syncs_received": received.full_syncs,
            "failed_syncs": received.failed_syncs,
        }

    def _received(self) -> FollowerStats:
        """The followers' counters, the current one's included."""
        past = self._past_followers
        now = self.follower.stats if self.follower is not None else FollowerStats()
        return FollowerStats(
            bytes_received=past.bytes_received + now.bytes_received,
            full_syncs=past.full_syncs + now.full_syncs,
            failed_syncs=past.failed_syncs + now.failed_syncs,
        )
