"""Log records: one mutation each, a small JSON header plus raw float32 vectors.

Layout of a record body: ``u32 header length | orjson header | float32 rows``. The
header names the operation and, when vectors follow, their shape.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import orjson

from vectorizer.engine.validation import Matrix

Op = dict[str, Any]

_LEN = struct.Struct("<I")


def encode(op: Op, vectors: Matrix | None = None) -> bytes:
    header = dict(op)
    raw = b""
    if vectors is not None:
        header["shape"] = list(vectors.shape)
        raw = np.ascontiguousarray(vectors, dtype="<f4").tobytes()
    head = orjson.dumps(header)
    return _LEN.pack(len(head)) + head + raw


def decode(body: bytes) -> tuple[Op, Matrix | None]:
    (n,) = _LEN.unpack_from(body)
    op: Op = orjson.loads(body[_LEN.size : _LEN.size + n])
    shape = op.pop("shape", None)
    if shape is None:
        return op, None
    vectors = np.frombuffer(body, dtype="<f4", offset=_LEN.size + n).reshape(shape)
    return op, vectors.astype(np.float32, copy=True)
