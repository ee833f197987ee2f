"""A replica behind the primary's in-memory records is sent the log files a bounded chunk
at a time, read off the loop (``LogReader``). The primary used to read the whole
retained log into memory at once, on its event loop: a 247 MB log stalled it 0.77 s and
took 200 MB more for one replica, 1.36 s and 700 MB for three."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.logs import CHUNK, read_all
from vectorizer.engine import records
from vectorizer.engine.store import Store, StoreOptions
from vectorizer.engine.wal import FsyncPolicy, WriteAheadLog
from vectorizer.errors import CorruptLog


def body(seq: int) -> bytes:
    return bytes([seq % 251]) * (50 + seq * 37 % 400)  # 50-449 bytes, all different


def open_log(path: Path, n: int, segment_bytes: int = 2048) -> WriteAheadLog:
    wal = WriteAheadLog(path, FsyncPolicy("never"), segment_bytes)
    wal.recover()
    wal.start(1)
    for seq in range(1, n + 1):
        wal.append(seq, body(seq))
    return wal


@pytest.mark.parametrize("first", [1, 2, 57, 199, 200])
def test_the_log_is_read_in_bounded_chunks_in_order_none_skipped(
    tmp_path: Path, first: int
) -> None:
    wal = open_log(tmp_path, 200)
    assert len(list(tmp_path.iterdir())) > 10  # (many segments)
    reader = wal.reader(first, 200)
    assert reader is not None
    chunks = read_all(reader)
    assert [r for chunk in chunks for r in chunk] == [(s, body(s)) for s in range(first, 201)]
    for chunk in chunks:  # each ends with the record that reached the bound
        assert sum(len(b) for _, b in chunk[:-1]) < CHUNK
    assert reader.done and reader.read(CHUNK) == []


def test_a_reader_reads_no_record_after_the_last_committed(tmp_path: Path) -> None:
    """What it reads is fixed when it is made: records appended later (the last of them
    may still be cut off the log again) wait for the next reader."""
    wal = open_log(tmp_path, 30)
    reader = wal.reader(10, 30)
    assert reader is not None
    for seq in range(31, 60):
        wal.append(seq, body(seq))
    assert [s for chunk in read_all(reader) for s, _ in chunk] == list(range(10, 31))
    later = wal.reader(31, 59)
    assert later is not None
    assert [s for chunk in read_all(later) for s, _ in chunk] == list(range(31, 60))


def test_a_log_truncated_behind_the_reader_ends_it_with_none(tmp_path: Path) -> None:
    """A snapshot truncated the log past the replica meanwhile: the reader says so (the
    primary sends a snapshot instead), it never skips to the records still there."""
    wal = open_log(tmp_path, 200)
    assert wal.reader(0, 200) is None
    reader = wal.reader(5, 200)
    assert reader is not None
    first = reader.read(CHUNK)
    assert first is not None and first[0][0] == 5
    wal.truncate_before(150)  # (the segments wholly before 150 go)
    assert reader.read(CHUNK) is None
    assert wal.reader(5, 200) is None
    after = wal.reader(wal.first_seq, 200)
    assert after is not None
    assert [s for chunk in read_all(after) for s, _ in chunk] == list(range(wal.first_seq, 201))


def test_a_damaged_committed_record_is_an_error_not_the_end(tmp_path: Path) -> None:
    """Stopping short there would send the replica the records before it and have it
    wait for ever (or be read again and again); skipping it would lose it."""
    wal = open_log(tmp_path, 20, segment_bytes=1 << 20)
    seg = next(tmp_path.iterdir())
    data = bytearray(seg.read_bytes())
    data[-300] ^= 0xFF  # (inside one of the last records)
    seg.write_bytes(bytes(data))
    reader = wal.reader(1, 20)
    assert reader is not None
    with pytest.raises(CorruptLog):
        read_all(reader)


async def test_the_store_reads_its_committed_records(tmp_path: Path) -> None:
    store = Store(tmp_path, StoreOptions(fsync=FsyncPolicy("never"), segment_bytes=1024))
    await store.open()
    try:
        await store.create_collection("c", {"dimension": 2})
        for i in range(40):
            await store.upsert("c", [i], [[1.0, float(i)]], [{"i": i}])
        reader = store.log_reader(3)
        assert reader is not None and reader.last == store.sequence == 41
        got = [r for chunk in read_all(reader) for r in chunk]
        assert [s for s, _ in got] == list(range(3, 42))
        ops = [records.decode(body)[0] for _, body in got]
        assert [(op["op"], op["ids"]) for op in ops] == [("upsert", [i]) for i in range(1, 40)]
    finally:
        await store.close(take_snapshot=False)
