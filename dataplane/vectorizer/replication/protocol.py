"""The replication stream's messages (one WebSocket per replica at ``/replication/stream``).

Text frames are JSON objects with a ``type``:
- replica → primary: ``hello`` {node_id, address, epoch, sequence, durable, history,
  timelines, confirms_snapshots, record_checksums, record_parts, waits_for_snapshots},
  ``ack`` {sequence, durable} (held by the replica, and on its disk: older replicas say
  only ``sequence``), ``heartbeat`` {sequence}, ``snapshot_take`` {} or
  ``snapshot_refused`` {code, message} (the answer to a ``snapshot`` header when the
  hello said ``confirms_snapshots``: the primary sends no file data before it)
- primary → replica: ``welcome`` {epoch, history, timelines, sequence, mode: incremental|full,
  record_checksums (the records will carry them)},
  ``heartbeat`` {epoch, sequence} (also between a full sync's welcome and its snapshot
  header, while the snapshot is prepared, when the hello said ``waits_for_snapshots``),
  ``snapshot`` {sequence, files: [{name, size, sha256}],
  index_values (what its payload indexes will hold)},
  ``snapshot_done`` {}, ``keys`` {file: {revision, keys}} (the API keys, hashed only,
  sent on connect and whenever they change), ``error`` {code, message}

Binary frames carry data from the primary: ``b"R" + u64 sequence + record body`` (a log
record exactly as the primary logged it), ``b"T" + u64 sequence + u16 length + W3C
traceparent + record body`` (the same, for a write that was traced), and ``b"F" + u32
file index + bytes`` (a piece of a snapshot file during a full sync). To a replica whose
hello said ``record_checksums`` (every replica since they exist), records go as
``b"C"`` / ``b"D"``: the same as R / T with a u32 CRC-32 of the sequence and the body
after the sequence, so that a record damaged on the way is refused before it is logged
(the link is dropped and the record sent again), never logged and applied as it came;
the welcome says so, and the replica then takes no record without one.

No message is larger than a slow link carries in a moment: a replica drops a link that
delivers no message for ``disconnect_timeout_ms``, and a WebSocket message arrives
whole or not at all (the bytes of one half-arrived count for nothing). Snapshot files go
in pieces of ``CHUNK_BYTES``; to a replica whose hello said ``record_parts``, a record
frame over ``PART_BYTES`` goes as ``b"P" + piece`` messages, the last piece as ``b"Q" +
piece`` (the replica joins them, then reads the frame as any other). Sent whole, a
record of a few MB never reached a replica whose link carries less than its size in
``disconnect_timeout_ms``: every try timed out mid-record, for ever.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from typing import Any

import orjson

RECORD = b"R"
TRACED_RECORD = b"T"
CHECKED_RECORD = b"C"
CHECKED_TRACED_RECORD = b"D"
FILE_CHUNK = b"F"
RECORD_PART = b"P"  # a piece of a record frame; more follow
RECORD_LAST_PART = b"Q"  # its last piece
_SEQ = struct.Struct("<Q")
_IDX = struct.Struct("<I")
_LEN = struct.Struct("<H")
_CRC = struct.Struct("<I")
CHUNK_BYTES = 1 << 16  # (a replica's 5 s default timeout: links down to ~13 KB/s)
PART_BYTES = 1 << 16
# The most a record's pieces may add up to (a replica holds them until the last).
MAX_PARTED_BYTES = 1 << 31
STREAM_PATH = "/replication/stream"
# how long a primary waits for a replica to take or refuse a snapshot it announced
ANSWER_TIMEOUT_S = 30.0


def message(kind: str, **fields: Any) -> str:
    return orjson.dumps({"type": kind, **fields}).decode()


def parse(text: str) -> dict[str, Any]:
    raw = orjson.loads(text)
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        raise ValueError("replication message without a type")
    return raw


class DamagedRecord(ValueError):
    """A record frame whose checksum does not match what it carries."""


def record_frame(
    seq: int, body: bytes, traceparent: str | None = None, checksum: bool = True
) -> bytes:
    packed = _SEQ.pack(seq)
    check = _CRC.pack(zlib.crc32(body, zlib.crc32(packed))) if checksum else b""
    if traceparent:
        tp = traceparent.encode()
        kind = CHECKED_TRACED_RECORD if checksum else TRACED_RECORD
        return kind + packed + check + _LEN.pack(len(tp)) + tp + body
    return (CHECKED_RECORD if checksum else RECORD) + packed + check + body


def record_messages(frame: bytes, parts: bool) -> Iterator[bytes]:
    """The messages that carry a record frame: itself, or (``parts``: the replica joins
    them) its pieces of ``PART_BYTES``."""
    if not parts or len(frame) <= PART_BYTES:
        yield frame
        return
    view = memoryview(frame)
    last = (len(frame) - 1) // PART_BYTES * PART_BYTES
    for at in range(0, last, PART_BYTES):
        yield RECORD_PART + view[at : at + PART_BYTES]
    yield RECORD_LAST_PART + view[last:]


class Parts:
    """A replica's side of ``record_messages``: the record frames its messages carry."""

    def __init__(self) -> None:
        self._pieces: list[bytes] = []
        self._size = 0

    def frame(self, message: bytes) -> bytes | None:
        """The record frame ``message`` is or completes (None: more pieces to come);
        ``DamagedRecord`` for pieces that do not add up."""
        kind = message[:1]
        if kind not in (RECORD_PART, RECORD_LAST_PART):
            if self._pieces:
                raise DamagedRecord("a record began before the last one ended")
            return message
        piece = message[1:]
        self._size += len(piece)
        if self._size > MAX_PARTED_BYTES:
            raise DamagedRecord(f"a record in pieces of more than {MAX_PARTED_BYTES} bytes")
        self._pieces.append(piece)
        if kind == RECORD_PART:
            return None
        frame = b"".join(self._pieces)
        self._pieces, self._size = [], 0
        return frame


def chunk_frame(index: int, data: bytes) -> bytes:
    return FILE_CHUNK + _IDX.pack(index) + data


_CHECKED = (CHECKED_RECORD, CHECKED_TRACED_RECORD)
_ANY_RECORD = (RECORD, TRACED_RECORD, *_CHECKED)


def parse_record(frame: bytes, checked: bool = False) -> tuple[int, bytes, str | None]:
    """(sequence, body, traceparent or None) of a record frame; ``DamagedRecord`` if its
    checksum does not match, or if it has none where ``checked`` says they all do."""
    kind = frame[:1]
    if kind not in (_CHECKED if checked else _ANY_RECORD):
        raise DamagedRecord(f"a record frame of kind {kind!r} (damaged, or not checked)")
    (seq,) = _SEQ.unpack_from(frame, 1)
    at = 1 + _SEQ.size
    check = None
    if kind in _CHECKED:
        (check,) = _CRC.unpack_from(frame, at)
        at += _CRC.size
    traceparent = None
    if kind in (TRACED_RECORD, CHECKED_TRACED_RECORD):
        (n,) = _LEN.unpack_from(frame, at)
        at += _LEN.size
        traceparent = frame[at : at + n].decode(errors="replace")
        at += n
    body = frame[at:]
    if check is not None and zlib.crc32(body, zlib.crc32(frame[1 : 1 + _SEQ.size])) != check:
        raise DamagedRecord(f"record {seq} arrived damaged (its checksum does not match)")
    return seq, body, traceparent


def parse_chunk(frame: bytes) -> tuple[int, bytes]:
    (index,) = _IDX.unpack_from(frame, 1)
    return index, frame[1 + _IDX.size :]
