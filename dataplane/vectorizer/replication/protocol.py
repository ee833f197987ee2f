"""The replication stream's messages (one WebSocket per replica at ``/replication/stream``).

Text frames are JSON objects with a ``type``:
- replica → primary: ``hello`` {node_id, address, epoch, sequence, history,
  confirms_snapshots}, ``ack`` {sequence} (durable on the replica), ``heartbeat``
  {sequence}, ``snapshot_take`` {} or ``snapshot_refused`` {code, message} (the answer
  to a ``snapshot`` header when the hello said ``confirms_snapshots``: the primary sends
  no file data before it)
- primary → replica: ``welcome`` {epoch, history, sequence, mode: incremental|full},
  ``heartbeat`` {epoch, sequence}, ``snapshot`` {sequence, files: [{name, size, sha256}],
  index_values (what its payload indexes will hold)},
  ``snapshot_done`` {}, ``keys`` {file: {revision, keys}} (the API keys, hashed only,
  sent on connect and whenever they change), ``error`` {code, message}

Binary frames carry data from the primary: ``b"R" + u64 sequence + record body`` (a log
record exactly as the primary logged it), ``b"T" + u64 sequence + u16 length + W3C
traceparent + record body`` (the same, for a write that was traced), and ``b"F" + u32
file index + bytes`` (a piece of a snapshot file during a full sync).
"""

from __future__ import annotations

import struct
from typing import Any

import orjson

RECORD = b"R"
TRACED_RECORD = b"T"
FILE_CHUNK = b"F"
_SEQ = struct.Struct("<Q")
_IDX = struct.Struct("<I")
_LEN = struct.Struct("<H")
CHUNK_BYTES = 1 << 20
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


def record_frame(seq: int, body: bytes, traceparent: str | None = None) -> bytes:
    if traceparent:
        tp = traceparent.encode()
        return TRACED_RECORD + _SEQ.pack(seq) + _LEN.pack(len(tp)) + tp + body
    return RECORD + _SEQ.pack(seq) + body


def chunk_frame(index: int, data: bytes) -> bytes:
    return FILE_CHUNK + _IDX.pack(index) + data


def parse_record(frame: bytes) -> tuple[int, bytes, str | None]:
    """(sequence, body, traceparent or None) of an R or T frame."""
    (seq,) = _SEQ.unpack_from(frame, 1)
    at = 1 + _SEQ.size
    if frame[:1] == RECORD:
        return seq, frame[at:], None
    (n,) = _LEN.unpack_from(frame, at)
    at += _LEN.size
    return seq, frame[at + n :], frame[at : at + n].decode()


def parse_chunk(frame: bytes) -> tuple[int, bytes]:
    (index,) = _IDX.unpack_from(frame, 1)
    return index, frame[1 + _IDX.size :]
