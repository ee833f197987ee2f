"""Record frames carry a CRC-32 to replicas that check it: a damaged record is refused
before it is logged; a record of an unknown operation is refused unlogged too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vectorizer.engine import records
from vectorizer.engine.store import Store, StoreOptions
from vectorizer.engine.wal import FsyncPolicy
from vectorizer.errors import CorruptLog
from vectorizer.replication import protocol

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.mark.parametrize("traceparent", [None, TRACEPARENT])
@pytest.mark.parametrize("checksum", [True, False])
def test_record_frames_round_trip(traceparent: str | None, checksum: bool) -> None:
    frame = protocol.record_frame(7, b"a body", traceparent, checksum=checksum)
    assert protocol.parse_record(frame) == (7, b"a body", traceparent)


@pytest.mark.parametrize("size", [0, 1, protocol.PART_BYTES, protocol.PART_BYTES + 1, 200_000])
def test_a_record_sent_in_pieces_is_joined_whole(size: int) -> None:
    frame = protocol.record_frame(9, bytes(range(256)) * (size // 256) + b"x" * (size % 256))
    messages = list(protocol.record_messages(frame, parts=True))
    assert all(len(m) <= protocol.PART_BYTES + 1 for m in messages)
    assert list(protocol.record_messages(frame, parts=False)) == [frame]
    parts = protocol.Parts()
    joined = [parts.frame(m) for m in messages]
    assert joined == [None] * (len(messages) - 1) + [frame]
    assert parts.frame(frame) == frame  # (nothing left over)


def test_a_record_begun_before_the_last_one_ended_is_refused() -> None:
    frame = protocol.record_frame(9, b"y" * (protocol.PART_BYTES * 2))
    first, *_ = protocol.record_messages(frame, parts=True)
    parts = protocol.Parts()
    assert parts.frame(first) is None
    with pytest.raises(protocol.DamagedRecord):
        parts.frame(protocol.record_frame(10, b"z"))


@pytest.mark.parametrize("traceparent", [None, TRACEPARENT])
def test_a_damaged_byte_of_a_checked_record_is_refused(traceparent: str | None) -> None:
    frame = protocol.record_frame(7, b"a record body", traceparent)
    tp_at = 1 + 8 + 4 + 2  # (a traceparent is not covered: it only names a trace)
    tp_end = tp_at + (len(traceparent) if traceparent else 0)
    for i in range(len(frame)):  # the frame's kind too: R or T is refused where C/D is due
        if traceparent and tp_at <= i < tp_end:
            continue
        for flip in (0x04, 0x11):  # (C ^ 0x11 is R)
            damaged = bytearray(frame)
            damaged[i] ^= flip
            with pytest.raises(protocol.DamagedRecord):
                protocol.parse_record(bytes(damaged), checked=True)


async def test_a_record_of_an_unknown_operation_is_refused_unlogged(tmp_path: Path) -> None:
    store = Store(tmp_path, StoreOptions(fsync=FsyncPolicy("never"), snapshot_interval_s=0))
    await store.open()
    await store.apply_replicated(
        1, records.encode({"op": "create_collection", "name": "c", "config": {"dimension": 2}})
    )
    bad = records.encode({"op": "create_fie6d_index", "collection": "c", "key": "k"})
    with pytest.raises(CorruptLog):
        await store.apply_replicated(2, bad)
    assert store.sequence == 1
    good = {"op": "upsert", "collection": "c", "ids": [1], "payloads": [None]}
    await store.apply_replicated(2, records.encode(good, np.ones((1, 2), np.float32)))
    await store.close(take_snapshot=False)
    again = Store(tmp_path, StoreOptions(fsync=FsyncPolicy("never"), snapshot_interval_s=0))
    await again.open()  # the log holds nothing it cannot replay
    assert again.sequence == 2 and len(again.collection("c")) == 1
    await again.close(take_snapshot=False)
