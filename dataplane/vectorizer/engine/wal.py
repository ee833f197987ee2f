"""The write-ahead log: numbered, checksummed records in segment files.

Frame: ``u32 body length | u32 crc32(seq || body) | u64 seq | body``. Segments are named
after the first sequence number they hold, so the log can be read from any retained
sequence and dropped a whole segment at a time behind a snapshot.

Durability (``FsyncPolicy``): ``always`` acknowledges a write only once an fsync covers
it; concurrent writers share one fsync (group commit). ``interval`` fsyncs in the
background every N ms; ``never`` leaves it to the OS.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np

from vectorizer.engine.files import Mapped, fsync_path, make_dir_durably, mapped
from vectorizer.errors import CorruptLog, StorageError, StorageFailed, ValidationError

log = logging.getLogger(__name__)

FRAME = struct.Struct("<IIQ")
_SEQ = struct.Struct("<Q")
_SEQ_AT = 8  # the sequence field's offset in a frame
MAX_RECORD = 1 << 30
MAX_FSYNC_INTERVAL_MS = 3_600_000
# The highest sequence a snapshot may end at (a restored one's is checked against it): the
# log's frames and the replication state hold sequences up to 2**64 - 1, so a node there
# could not log its next record; this leaves room for 2**63 more, and every sequence fits
# a signed 64-bit integer, as clients of the API may read it.
MAX_SEQUENCE = (1 << 63) - 1
_SEGMENT_RE = re.compile(r"(\d{20})\.wal")


@dataclass(frozen=True)
class FsyncPolicy:
    mode: Literal["always", "interval", "never"] = "always"
    interval_ms: int = 0

    @classmethod
    def parse(cls, value: str | int) -> FsyncPolicy:
        """``always``, ``never``, or an interval such as ``100`` / ``100ms``."""
        text = str(value).strip().lower()
        if text in ("always", "never"):
            return cls(mode=text)  # type: ignore[arg-type]
        digits = text.removesuffix("ms")
        if digits.isascii() and digits.isdigit() and 0 < int(digits) <= MAX_FSYNC_INTERVAL_MS:
            return cls(mode="interval", interval_ms=int(digits))
        raise ValidationError(
            "wal_fsync is 'always', 'never' or an interval in milliseconds "
            f"(1..{MAX_FSYNC_INTERVAL_MS}: an hour; longer is 'never' in disguise)",
            field="wal_fsync",
        )


def _crc(seq: int, body: bytes) -> int:
    return zlib.crc32(body, zlib.crc32(_SEQ.pack(seq)))


def frame(seq: int, body: bytes) -> bytes:
    return FRAME.pack(len(body), _crc(seq, body), seq) + body


def _parse_at(data: Mapped, pos: int) -> tuple[int, bytes, int] | None:
    """(seq, body, next position) of a valid frame at ``pos``, or None."""
    if pos + FRAME.size > len(data):
        return None
    length, crc, seq = FRAME.unpack_from(data, pos)
    end = pos + FRAME.size + length
    if length > MAX_RECORD or end > len(data):
        return None
    body = data[pos + FRAME.size : end]
    if _crc(seq, body) != crc:
        return None
    return seq, body, end


@dataclass
class _Segment:
    first_seq: int
    path: Path


class WriteAheadLog:
    def __init__(self, directory: Path, policy: FsyncPolicy, segment_bytes: int = 64 << 20) -> None:
        self.directory = directory
        self.policy = policy
        self.segment_bytes = segment_bytes
        self.last_seq = 0
        self._segments: list[_Segment] = []
        self._fd: int | None = None
        self._size = 0
        self._written = 0
        self._synced = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._retired: list[int] = []
        self.on_fsync: Callable[[float], None] | None = None  # seconds each fsync took
        # Why the log takes no more records (a failed fsync, or a failed append that could
        # not be cut off again); None while it is healthy.
        self.failure: str | None = None

    # ---- recovery ----------------------------------------------------------------------

    def recover(self) -> None:
        """Check every segment; cut a torn tail; refuse a hole or damage before the tail."""
        make_dir_durably(self.directory)  # (its entry in the data directory fsynced too)
        names = sorted(p for p in self.directory.iterdir() if _SEGMENT_RE.fullmatch(p.name))
        self._segments = [_Segment(int(p.name[:20]), p) for p in names]
        expected: int | None = None
        for i, seg in enumerate(self._segments):
            last = i == len(self._segments) - 1
            if expected is not None and seg.first_seq != expected:
                raise CorruptLog(
                    f"log segment {seg.path.name} starts at {seg.first_seq}, "
                    f"expected {expected}: records are missing"
                )
            expected = seg.first_seq
            with mapped(seg.path) as data:
                pos = 0
                while pos < len(data):
                    parsed = _parse_at(data, pos)
                    if parsed is None or parsed[0] != expected:
                        self._damaged(seg, data, pos, expected, last)
                        break  # (nothing reads the mapping past a cut)
                    pos = parsed[2]
                    expected += 1
            self.last_seq = expected - 1
            fsync_path(seg.path)
        # (each segment fsynced above: records a crash left in the page cache only, of a
        # "never" or interval policy, were counted as on disk, confirmed to a primary as
        # durable, and a power loss could still take them)
        self._synced = self._written = self.last_seq

    def _damaged(self, seg: _Segment, data: Mapped, pos: int, expected: int, last: bool) -> None:
        if not last or _valid_frame_after(data, pos, expected):
            raise CorruptLog(
                f"log segment {seg.path.name} is damaged at byte {pos} (record {expected}) "
                "and valid records follow; refusing to start rather than skip them"
            )
        log.warning(
            "log tail torn in %s at byte %d (%d bytes dropped); truncating after record %d",
            seg.path.name,
            pos,
            len(data) - pos,
            expected - 1,
        )
        with open(seg.path, "r+b") as f:
            f.truncate(pos)
            f.flush()
            os.fsync(f.fileno())

    def read_from(self, seq: int) -> Iterator[tuple[int, bytes]]:
        """Records with sequence >= ``seq``, in order."""
        for i, seg in enumerate(self._segments):
            nxt = self._segments[i + 1].first_seq if i + 1 < len(self._segments) else None
            if nxt is not None and nxt <= seq:
                continue
            with mapped(seg.path) as data:
                pos = 0
                while (parsed := _parse_at(data, pos)) is not None:
                    rec_seq, body, pos = parsed
                    if rec_seq > self._written:
                        return
                    if rec_seq >= seq:
                        yield rec_seq, body

    def reader(self, first: int, last: int) -> LogReader | None:
        """A reader of records ``first`` to ``last`` (records up to ``last`` are whole in
        the log: committed), for a thread; None when the log no longer holds ``first``."""
        if first < self.first_seq:
            return None
        at = max((i for i, seg in enumerate(self._segments) if seg.first_seq <= first), default=0)
        return LogReader(self._segments[at:], first, last)

    @property
    def first_seq(self) -> int:
        """The oldest sequence still retained (last_seq + 1 when the log is empty)."""
        return self._segments[0].first_seq if self._segments else self.last_seq + 1

    @property
    def size_bytes(self) -> int:
        return sum(s.path.stat().st_size for s in self._segments if s.path.exists())

    # ---- writing -----------------------------------------------------------------------

    def start(self, next_seq: int) -> None:
        """Open for appending; ``next_seq`` is the sequence of the next record. Records
        before it that the log holds (all of them older than the snapshot recovery loaded)
        are dropped; records from it on are never: they were acknowledged."""
        if self.last_seq >= next_seq:
            raise CorruptLog(
                f"the log holds records up to {self.last_seq}, after record {next_seq - 1} "
                "where recovery ended: refusing to start rather than drop them"
            )
        if self._segments and self.last_seq + 1 != next_seq:
            # Everything retained is older than what a snapshot already holds.
            for seg in self._segments:
                seg.path.unlink()
            self._segments = []
        self.last_seq = self._written = self._synced = next_seq - 1
        if self._segments:
            self._open(self._segments[-1].path)
        else:
            self._new_segment(next_seq)

    def _open(self, path: Path) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._size = os.fstat(self._fd).st_size

    def _new_segment(self, first_seq: int) -> None:
        """Start the segment for ``first_seq``; on failure nothing changes (no new file)."""
        path = self.directory / f"{first_seq:020d}.wal"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fsync_path(self.directory)
        except OSError:
            os.close(fd)
            path.unlink(missing_ok=True)  # (no segment holds this sequence yet)
            raise
        self._fd, self._size = fd, os.fstat(fd).st_size
        self._segments.append(_Segment(first_seq, path))

    def append(self, seq: int, body: bytes) -> int:
        """Write one record (no fsync); returns the bytes written. A record holding
        another valid record's bytes is refused (``ValidationError``, nothing written).

        A write the disk refuses (full, over a quota or a file size limit) is cut off
        again, so the log never holds half a record before later ones: the caller gets
        ``insufficient_storage`` and the next append may succeed once there is room."""
        if self.failure is not None:
            raise StorageFailed(self.failure)
        if self._fd is None:
            raise StorageError("the log is not open for writing")
        if seq != self.last_seq + 1:
            raise StorageError(f"log sequence gap: {seq} after {self.last_seq}")
        data = frame(seq, body)
        if _valid_frame_after(data, 0, seq):
            # Torn by a crash as it is written, recovery would find that record after the
            # tear, take the tear for damage before a record and refuse to start, until
            # the log were cut by hand: a trap any writer could set.
            raise ValidationError(
                "the write's bytes hold what reads as a record of the write-ahead log (a "
                "vector's components chosen so); refused: a crash while it was being "
                "written would keep the node from starting"
            )
        if self._size >= self.segment_bytes:
            self._rotate(seq)
        try:
            written = os.write(self._fd, data)
            while written < len(data):  # os.write may be partial on large writes
                written += os.write(self._fd, data[written:])
        except OSError as exc:
            self._cut_back(exc)
            raise StorageError.refused(exc, f"appending record {seq} to the log") from exc
        self._size += len(data)
        self.last_seq = self._written = seq
        return len(data)

    def _cut_back(self, exc: OSError) -> None:
        """Drop what a failed append wrote; if even that fails, the log is broken."""
        assert self._fd is not None
        try:
            os.ftruncate(self._fd, self._size)
        except OSError as again:
            raise self._fail(
                f"a failed append ({exc}) could not be cut off the log ({again})"
            ) from again

    def take_back(self, seq: int, written: int, why: str) -> StorageFailed:
        """Cut record ``seq``, just appended (``written`` bytes), off the log again: it
        could not be applied. Memory may hold part of it, so the log then takes no more
        records (the node restarts and replays the log without it); returns the error."""
        assert self._fd is not None and seq == self.last_seq
        try:
            os.ftruncate(self._fd, self._size - written)
        except OSError as exc:
            return self._fail(f"record {seq} could not be applied ({why}) nor cut off ({exc})")
        self._size -= written
        self.last_seq = self._written = seq - 1
        return self._fail(f"record {seq} could not be applied ({why}) and was cut off the log")

    def _fail(self, why: str) -> StorageFailed:
        """Stop taking records (for good: see ``StorageFailed``); returns the error."""
        if self.failure is None:
            self.failure = f"{why}; the node takes no writes until it restarts"
            log.critical("write-ahead log failed: %s", self.failure)
        self._fail_waiters()
        return StorageFailed(self.failure)

    def _rotate(self, next_seq: int) -> None:
        assert self._fd is not None
        old = self._fd
        if self.policy.mode != "never":
            started = time.perf_counter()
            try:
                os.fsync(old)
            except OSError as exc:
                raise self._fail(f"fsync of the log failed ({exc})") from exc
            if self.on_fsync is not None:  # (on the loop, so the ones most worth seeing)
                self.on_fsync(time.perf_counter() - started)
            self._synced = self._written
        try:
            self._new_segment(next_seq)
        except OSError as exc:  # the current segment goes on (and grows past its size)
            raise StorageError.refused(exc, f"starting log segment {next_seq}") from exc
        if self._flusher is not None and not self._flusher.done():
            self._retired.append(old)  # an fsync may be running on it: close it afterwards
        else:
            os.close(old)
        self._wake()

    @property
    def durable_sequence(self) -> int:
        """The newest sequence on disk (fsynced: by an ``always`` write, the interval's
        fsync, a rotation; under ``never``, what the log held when it was opened)."""
        return self._synced

    async def sync(self, seq: int) -> None:
        """Return once ``seq`` is durable under the policy (at once unless ``always``)."""
        if self.policy.mode != "always" or self._synced >= seq:
            return
        if self.failure is not None:
            raise StorageFailed(self.failure)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((seq, fut))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        await fut

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._waiters or self._synced < self._written and self.policy.mode != "always":
                target, fd = self._written, self._fd
                if fd is not None and target > self._synced:
                    started = time.perf_counter()
                    await loop.run_in_executor(None, os.fsync, fd)
                    if self.on_fsync is not None:
                        self.on_fsync(time.perf_counter() - started)
                    self._synced = max(self._synced, target)
                self._wake()
                if not self._waiters:
                    break
        except OSError as exc:
            # The kernel may have dropped the pages it could not write and will not say
            # so again: nothing since the last good fsync can be trusted to be on disk.
            self._fail(f"fsync of the log failed ({exc})")
        finally:
            for fd in self._retired:
                os.close(fd)
            self._retired.clear()

    def _fail_waiters(self) -> None:
        for _seq, fut in self._waiters:
            if not fut.done():
                fut.set_exception(StorageFailed(self.failure or ""))
        self._waiters.clear()

    def _wake(self) -> None:
        keep = []
        for seq, fut in self._waiters:
            if seq <= self._synced:
                if not fut.done():
                    fut.set_result(None)
            else:
                keep.append((seq, fut))
        self._waiters = keep

    async def run_interval_fsync(self) -> None:
        """Background fsync for the ``interval`` policy; cancel it to stop."""
        while self.failure is None:
            await asyncio.sleep(self.policy.interval_ms / 1000)
            if self._written > self._synced and (self._flusher is None or self._flusher.done()):
                self._flusher = asyncio.create_task(self._flush())
                await self._flusher

    def truncate_before(self, seq: int) -> int:
        """Drop whole segments whose records are all older than ``seq``; returns how many."""
        dropped = 0
        while len(self._segments) > 1 and self._segments[1].first_seq <= seq:
            self._segments.pop(0).path.unlink(missing_ok=True)
            dropped += 1
        if dropped:
            fsync_path(self.directory)
        return dropped

    def close(self) -> None:
        if self._fd is not None:
            if self.policy.mode != "never" and self.failure is None:
                try:
                    os.fsync(self._fd)
                except OSError as exc:
                    self._fail(f"fsync of the log failed at close ({exc})")
            os.close(self._fd)
            self._fd = None
            if self.failure is None:
                self._synced = self._written
        for fd in self._retired:
            os.close(fd)
        self._retired.clear()
        self._wake()


class LogReader:
    """Records ``first`` to ``last`` of the log, read a bounded chunk at a time, on any
    thread (one read at a time): a replica catching up from the log files once made its
    primary read all of them into memory at once, on the event loop.

    What it reads is fixed when it is made (``WriteAheadLog.reader``, on the loop): the
    segments listed then, up to record ``last``. Records after it may be half-written,
    and the last of them may be cut off again (a record that could not be applied); so
    it never reads past ``last``, and it reads the files rather than mapping them (a
    mapped page cut off the file is a SIGBUS). A segment dropped before a read opens it
    (a snapshot truncated the log behind the reader) ends the read with None, as a log
    that no longer reaches back: the caller sends a snapshot instead, as it would have
    had it asked for these records then."""

    BUFFER = 1 << 20

    def __init__(self, segments: list[_Segment], first: int, last: int) -> None:
        self._segments = list(segments)  # (a copy: the log's list changes on the loop)
        self.next_seq = first
        self.last = last
        self._offset: int | None = None  # where next_seq begins in the first segment

    @property
    def done(self) -> bool:
        return self.next_seq > self.last

    def read(self, max_bytes: int) -> list[tuple[int, bytes]] | None:
        """The next records in order, bodies of about ``max_bytes`` (at least one record,
        unless done: []); None when a segment it needs was dropped."""
        out: list[tuple[int, bytes]] = []
        size = 0
        while not self.done and size < max_bytes:
            if not self._segments:
                raise CorruptLog(f"record {self.next_seq} is in none of the log's segments")
            seg = self._segments[0]
            try:
                with open(seg.path, "rb", buffering=self.BUFFER) as f:
                    size += self._read_segment(f, seg, out, max_bytes - size)
            except FileNotFoundError:  # (only opening raises it)
                return None
        return out

    def _read_segment(
        self, f: BinaryIO, seg: _Segment, out: list[tuple[int, bytes]], room: int
    ) -> int:
        """Read records from ``seg`` (open as ``f``) into ``out`` up to ``room`` bytes of
        bodies; move on to the next segment at its end. Returns the bytes read."""
        if self._offset is None:  # the first read: skip the records before, unchecked
            self._offset = self._skip_to(f, seg)
        f.seek(self._offset)
        size = 0
        while not self.done and size < room:
            header = f.read(FRAME.size)
            if not header:  # the end of this segment: the next one goes on from here
                self._segments.pop(0)
                self._offset = 0
                if self._segments and self._segments[0].first_seq != self.next_seq:
                    raise CorruptLog(
                        f"log segment {self._segments[0].path.name} does not start at "
                        f"record {self.next_seq}, where {seg.path.name} ends"
                    )
                return size
            length, crc, seq = FRAME.unpack(header) if len(header) == FRAME.size else (0, 0, -1)
            body = f.read(length) if seq == self.next_seq and length <= MAX_RECORD else b""
            if seq != self.next_seq or len(body) != length or _crc(seq, body) != crc:
                raise CorruptLog(
                    f"log segment {seg.path.name} is damaged at byte {self._offset} "
                    f"(record {self.next_seq}), a record the log has committed"
                )
            out.append((seq, body))
            size += length
            self._offset += FRAME.size + length
            self.next_seq += 1
        return size

    def _skip_to(self, f: BinaryIO, seg: _Segment) -> int:
        """The offset of record ``next_seq`` in ``seg``, found by its frames' headers."""
        pos, seq = 0, seg.first_seq
        while seq < self.next_seq:
            header = f.read(FRAME.size)
            if len(header) < FRAME.size:
                break  # (read as damage where the record should begin)
            length = FRAME.unpack(header)[0]
            pos += FRAME.size + length
            f.seek(pos)
            seq += 1
        return pos


def _valid_frame_after(data: Mapped, pos: int, expected: int) -> bool:
    """Whether a valid record numbered ``expected`` or later begins anywhere after
    ``pos``: then the damage at ``pos`` is not a torn tail, however many records it spans
    (two flipped bits, a lost page of zeros). The sequence field is read at every byte
    offset, eight alignments of numpy-wide reads; each that could follow (each record
    takes at least ``FRAME.size`` bytes) is checked as a whole frame."""
    highest = expected + (len(data) - pos) // FRAME.size
    first_field = pos + 1 + _SEQ_AT  # the sequence field of a frame at pos + 1
    for align in range(8):
        base = first_field + align
        count = (len(data) - base) // 8
        if count <= 0:
            continue
        seqs = np.frombuffer(data, dtype="<u8", count=count, offset=base)
        for i in np.flatnonzero((seqs >= expected) & (seqs <= highest)).tolist():
            if _parse_at(data, base + 8 * i - _SEQ_AT) is not None:
                return True
        del seqs  # (the mapping cannot close while an array views it)
    return False
