from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import resource
from collections.abc import Iterator
from pathlib import Path

import pytest

from vectorizer.engine.wal import FRAME, FsyncPolicy, WriteAheadLog, frame
from vectorizer.errors import (
    CorruptLog,
    InsufficientStorage,
    StorageError,
    StorageFailed,
    ValidationError,
)


def write_log(path: Path, n: int, segment_bytes: int = 1 << 20) -> WriteAheadLog:
    wal = WriteAheadLog(path, FsyncPolicy("never"), segment_bytes)
    wal.recover()
    wal.start(1)
    for seq in range(1, n + 1):
        wal.append(seq, f"record-{seq}".encode() * 3)
    wal.close()
    return wal


def reopen(path: Path) -> WriteAheadLog:
    wal = WriteAheadLog(path, FsyncPolicy("never"))
    wal.recover()
    return wal


def test_records_read_back_from_any_sequence(tmp_path: Path) -> None:
    write_log(tmp_path, 50, segment_bytes=300)
    wal = reopen(tmp_path)
    assert len(list(tmp_path.iterdir())) > 3  # several segments
    assert wal.last_seq == 50 and wal.first_seq == 1
    assert [s for s, _ in wal.read_from(37)] == list(range(37, 51))
    assert dict(wal.read_from(1))[20] == b"record-20" * 3


def test_recovery_puts_every_segment_on_disk_before_counting_it_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records a crash left in the page cache only (a "never" or interval policy) were
    counted durable at the next start, and a replica confirmed them to its primary as
    on its disk: a power loss could still take them."""
    write_log(tmp_path, 50, segment_bytes=300)
    real, synced = os.fsync, set()

    def fsync(fd: int) -> None:
        synced.add(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    wal = reopen(tmp_path)
    segments = {str(p) for p in tmp_path.glob("*.wal")}
    assert len(segments) > 1 and segments <= synced
    assert wal.durable_sequence == 50


def test_torn_tail_is_truncated_not_fatal(tmp_path: Path) -> None:
    write_log(tmp_path, 10)
    seg = next(tmp_path.iterdir())
    size = seg.stat().st_size
    with open(seg, "r+b") as f:
        f.truncate(size - 5)  # the last record loses its end
    wal = reopen(tmp_path)
    assert wal.last_seq == 9
    assert [s for s, _ in wal.read_from(1)] == list(range(1, 10))
    wal.start(10)  # appending continues after the cut
    wal.append(10, b"again")
    wal.close()
    assert reopen(tmp_path).last_seq == 10


def test_garbage_tail_is_truncated(tmp_path: Path) -> None:
    write_log(tmp_path, 5)
    seg = next(tmp_path.iterdir())
    with open(seg, "ab") as f:
        f.write(b"\x00\xff" * 40)
    assert reopen(tmp_path).last_seq == 5


def test_a_record_holding_a_records_bytes_is_refused_whole(tmp_path: Path) -> None:
    """A record whose bytes hold another valid frame numbered as it or later (a client
    chooses a vector's raw float32 bytes), torn by a crash as it was written, made
    recovery take the tear for damage before a record and refuse every start."""
    write_log(tmp_path, 3)
    seg = next(tmp_path.iterdir())
    size = seg.stat().st_size
    wal = reopen(tmp_path)
    wal.start(4)
    trap = b"v" * 5 + frame(4, b"inside") + b"w" * 40  # (what recovery would find)
    with pytest.raises(ValidationError, match="reads as a record"):
        wal.append(4, trap)
    assert seg.stat().st_size == size and wal.last_seq == 3  # nothing written
    wal.append(4, b"v" * 5 + frame(3, b"older") + b"w" * 40)  # (never taken for a later one)
    wal.close()
    assert reopen(tmp_path).last_seq == 4
    # Why: such a record (the next, 5) torn halfway, as a kill -9 mid-write leaves it.
    with open(seg, "ab") as f:
        f.write(frame(5, b"v" * 5 + frame(5, b"inside") + b"w" * 40)[: FRAME.size + 60])
    with pytest.raises(CorruptLog, match="valid records follow"):
        reopen(tmp_path)


def test_damage_in_the_middle_refuses_to_start(tmp_path: Path) -> None:
    write_log(tmp_path, 10)
    seg = next(tmp_path.iterdir())
    data = bytearray(seg.read_bytes())
    data[FRAME.size + 2] ^= 0xFF  # flip a byte inside record 1's body
    seg.write_bytes(bytes(data))
    with pytest.raises(CorruptLog, match="valid records follow"):
        reopen(tmp_path)


def frame_starts(seg: Path) -> list[int]:
    """Where each record of a segment begins."""
    data, starts, pos = seg.read_bytes(), [], 0
    while pos < len(data):
        starts.append(pos)
        pos += FRAME.size + FRAME.unpack_from(data, pos)[0]
    return starts


@pytest.mark.parametrize("damage", ["two flipped bits", "a page of zeros", "records swapped"])
def test_damage_spanning_records_in_the_middle_refuses_to_start(
    tmp_path: Path, damage: str
) -> None:
    """Valid records after the damage, however many records it spans: not a torn tail
    (cutting there would drop acknowledged records)."""
    write_log(tmp_path, 60)
    seg = next(tmp_path.iterdir())
    data = bytearray(seg.read_bytes())
    at = frame_starts(seg)
    if damage == "two flipped bits":
        data[at[30] + FRAME.size + 1] ^= 0x04
        data[at[31] + FRAME.size + 1] ^= 0x10
    elif damage == "a page of zeros":
        data[at[20] + 3 : at[20] + 3 + 1500] = bytes(1500)
    else:  # an older record where a newer one belongs
        data[at[40] : at[42]] = data[at[10] : at[12]]
    seg.write_bytes(bytes(data))
    size = seg.stat().st_size
    with pytest.raises(CorruptLog, match="valid records follow"):
        reopen(tmp_path)
    assert seg.stat().st_size == size  # nothing cut


@pytest.mark.parametrize("tail", ["zeros after the last", "the last two zeroed", "garbage"])
def test_a_damaged_tail_is_still_cut(tmp_path: Path, tail: str) -> None:
    write_log(tmp_path, 60)
    seg = next(tmp_path.iterdir())
    data = bytearray(seg.read_bytes())
    at = [*frame_starts(seg), len(data)]  # (and where the next one would)
    if tail == "zeros after the last":  # (a power loss on some file systems)
        data += bytes(4096)
        kept = 60
    elif tail == "the last two zeroed":
        data[at[58] :] = bytes(len(data) - at[58])
        kept = 58
    else:
        data[at[59] + 5 :] = os.urandom(len(data) - at[59] - 5 + 3000)
        kept = 59
    seg.write_bytes(bytes(data))
    wal = reopen(tmp_path)
    assert wal.last_seq == kept and seg.stat().st_size == at[kept]
    assert [s for s, _ in wal.read_from(1)] == list(range(1, kept + 1))


def test_damaged_older_segment_refuses_to_start(tmp_path: Path) -> None:
    write_log(tmp_path, 30, segment_bytes=200)
    first = sorted(tmp_path.iterdir())[0]
    with open(first, "r+b") as f:
        f.truncate(first.stat().st_size - 3)
    with pytest.raises(CorruptLog):
        reopen(tmp_path)


def test_missing_segment_is_a_gap(tmp_path: Path) -> None:
    write_log(tmp_path, 30, segment_bytes=200)
    sorted(tmp_path.iterdir())[1].unlink()
    with pytest.raises(CorruptLog, match="missing"):
        reopen(tmp_path)


def test_truncate_before_drops_whole_old_segments(tmp_path: Path) -> None:
    write_log(tmp_path, 40, segment_bytes=200)
    wal = reopen(tmp_path)
    wal.start(41)
    before = len(list(tmp_path.iterdir()))
    wal.truncate_before(25)
    assert len(list(tmp_path.iterdir())) < before
    assert wal.first_seq <= 25
    assert [s for s, _ in wal.read_from(25)][0] == 25
    wal.close()


def test_start_drops_only_records_a_snapshot_holds(tmp_path: Path) -> None:
    """Opened after a snapshot newer than every record, the log starts again after it;
    opened before records it holds (acknowledged ones), it refuses rather than drop them."""
    write_log(tmp_path, 12, segment_bytes=200)
    segments = sorted((p.name, p.read_bytes()) for p in tmp_path.iterdir())
    for next_seq in (5, 12):
        with pytest.raises(CorruptLog, match="refusing to start rather than drop them"):
            reopen(tmp_path).start(next_seq)
        assert sorted((p.name, p.read_bytes()) for p in tmp_path.iterdir()) == segments
    wal = reopen(tmp_path)
    wal.start(20)  # a snapshot at 19 holds them all
    assert [p.name for p in tmp_path.iterdir()] == [f"{20:020d}.wal"]
    wal.append(20, b"next")
    wal.close()
    assert [s for s, _ in reopen(tmp_path).read_from(1)] == [20]


def test_the_fsync_of_a_rotation_is_timed_too(tmp_path: Path) -> None:
    """A rotation's fsync runs on the loop, yet only the flusher's were timed (the
    ``vectorizer_wal_fsync_seconds`` histogram): under an interval policy, none."""
    wal = WriteAheadLog(tmp_path, FsyncPolicy.parse("600000"), 64)
    timed: list[float] = []
    wal.on_fsync = timed.append
    wal.recover()
    wal.start(1)
    for seq in range(1, 11):
        wal.append(seq, b"x" * 50)  # (each record rotates the one before it away)
    assert len(wal._segments) == 10 and len(timed) == 9
    wal.close()


async def test_group_commit_covers_concurrent_writers(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path, FsyncPolicy("always"))
    wal.recover()
    wal.start(1)
    for seq in range(1, 101):
        wal.append(seq, b"x")
    await asyncio.gather(*(wal.sync(seq) for seq in range(1, 101)))
    assert wal._synced == 100
    wal.close()


@pytest.mark.parametrize(
    ("raw", "mode", "ms"),
    [
        ("always", "always", 0),
        ("never", "never", 0),
        ("100", "interval", 100),
        ("25ms", "interval", 25),
    ],
)
def test_fsync_policy_parse(raw: str, mode: str, ms: int) -> None:
    p = FsyncPolicy.parse(raw)
    assert (p.mode, p.interval_ms) == (mode, ms)


@pytest.mark.parametrize("raw", ["sometimes", "0", "-5", "", "²", "٣ms"])
def test_fsync_policy_rejects(raw: str) -> None:
    with pytest.raises(ValidationError):
        FsyncPolicy.parse(raw)


# ---- when the disk refuses -------------------------------------------------------------
# Real faults where a test can make them: a file size limit (RLIMIT_FSIZE; Python ignores
# SIGXFSZ, so a write past it fails with EFBIG as one past a full disk fails with ENOSPC)
# and a directory where the next segment file must go. A failing fsync cannot be made
# without root and a faulty device, so that one is injected at os.fsync.


@contextlib.contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def open_log(path: Path, policy: str = "never", segment_bytes: int = 1 << 20) -> WriteAheadLog:
    wal = WriteAheadLog(path, FsyncPolicy.parse(policy), segment_bytes)
    wal.recover()
    wal.start(wal.last_seq + 1)
    return wal


def test_an_append_the_disk_refuses_leaves_no_half_record(tmp_path: Path) -> None:
    wal = open_log(tmp_path)
    for seq in range(1, 4):
        wal.append(seq, bytes([seq]) * 40_000)
    seg = next(tmp_path.iterdir())
    size = seg.stat().st_size
    with file_size_limit(size + 10_000), pytest.raises(InsufficientStorage) as refused:
        wal.append(4, b"x" * 40_000)  # the first 10,000 bytes fit
    assert "record 4" in refused.value.message and refused.value.status == 507
    assert seg.stat().st_size == size and wal.last_seq == 3
    wal.append(4, b"y" * 40_000)  # room again: the same record goes in whole
    wal.append(5, b"z")
    wal.close()
    back = reopen(tmp_path)  # no torn tail, no damage before later records
    assert [(s, len(b)) for s, b in back.read_from(1)] == [
        (1, 40_000),
        (2, 40_000),
        (3, 40_000),
        (4, 40_000),
        (5, 1),
    ]
    assert dict(back.read_from(4))[4] == b"y" * 40_000


def test_a_segment_that_cannot_be_started_refuses_the_record_and_keeps_the_log(
    tmp_path: Path,
) -> None:
    wal = open_log(tmp_path, "always", segment_bytes=200)
    wal.append(1, b"a" * 300)  # the segment is full after this record
    blocker = tmp_path / f"{2:020d}.wal"
    blocker.mkdir()  # where the next segment must go
    with pytest.raises(StorageError) as refused:
        wal.append(2, b"b")
    assert refused.value.code == "storage_error" and "segment 2" in refused.value.message
    assert wal.failure is None and wal.last_seq == 1
    blocker.rmdir()
    wal.append(2, b"b")  # the next try starts the segment
    wal.close()
    assert [s for s, _ in reopen(tmp_path).read_from(1)] == [1, 2]
    assert len(list(tmp_path.iterdir())) == 2


async def test_a_failed_fsync_stops_the_log_for_good(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wal = open_log(tmp_path, "always")
    wal.append(1, b"kept")
    await wal.sync(1)
    wal.append(2, b"in doubt")

    def broken(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(StorageFailed):
        await wal.sync(2)  # never acknowledged
    assert wal.failure is not None and "fsync" in wal.failure
    monkeypatch.undo()  # the disk answers again, but what it lost is unknown:
    with pytest.raises(StorageFailed):
        wal.append(3, b"refused")
    with pytest.raises(StorageFailed):
        await wal.sync(2)
    wal.close()  # no fsync, no claim that record 2 is durable
    assert reopen(tmp_path).last_seq == 2  # (here the page cache did keep it)
