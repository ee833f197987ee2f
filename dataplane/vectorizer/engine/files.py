"""Writing files so that a failure says so: fsync of a file or directory, numpy arrays
written through Python's file objects, and a check for libraries that write short
without an error (hnswlib's graph). Reading and writing large files without a copy of
them on the heap: memory maps, JSON written a chunk at a time.

numpy writes an array with ``tofile``, whose short write raises an ``OSError`` without
an errno, and hnswlib writes through a C++ stream that never reports one; a full disk
must come back as ENOSPC (or EFBIG over a file size limit) so that the caller can tell
"no room" from "broken disk".
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import mmap
import os
import resource
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

# Items encoded at once by write_json_arrays.
_JSON_CHUNK = 4096
# A file's bytes as ``mapped`` gives them: a memory map, or empty.
Mapped = bytes | mmap.mmap


def fsync_path(path: Path) -> None:
    """fsync a file or a directory (a directory: so that entries made in it last)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file and folder under ``root``, then ``root``: a folder written without
    fsyncs (a snapshot received from a primary) made durable as a whole, before it is
    renamed into place (the rename, once its parent is fsynced, then names it for good)."""
    for folder, _, files in os.walk(root, topdown=False):  # (root comes last)
        for name in files:
            fsync_path(Path(folder, name))
        fsync_path(Path(folder))


def make_dir_durably(path: Path) -> None:
    """``mkdir -p`` whose directories last: each one made is fsynced into its parent.
    A directory's entry in its parent is durable only once the parent is fsynced; files
    made durable inside a directory whose own entry was not could vanish with it in a
    power loss (a snapshot, and the log truncated behind it)."""
    missing = []
    while not path.is_dir():
        missing.append(path)
        path = path.parent
    for directory in reversed(missing):
        directory.mkdir(exist_ok=True)  # (made meanwhile by another: fsynced all the same)
        fsync_path(directory.parent)


def save_array(path: Path, array: npt.NDArray[np.generic]) -> None:
    """``np.save`` (format 1.0, no pickles) whose write errors carry their errno."""
    data = np.ascontiguousarray(array)
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, np.lib.format.header_data_from_array_1_0(data))
        if data.size:  # (an empty view cannot be cast)
            f.write(data.data.cast("B"))


def check_written(path: Path, expected: int) -> None:
    """Raise the ``OSError`` a short write would have raised if ``path`` (written by a
    library that does not report errors) holds fewer than ``expected`` bytes."""
    written = path.stat().st_size
    if written >= expected:
        return
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit != resource.RLIM_INFINITY and expected > limit:
        code = errno.EFBIG
    elif shutil.disk_usage(path.parent).free < expected - written:
        code = errno.ENOSPC
    else:
        code = errno.EIO
    raise OSError(code, f"{os.strerror(code)} ({path.name}: {written} of {expected} bytes)")


@contextlib.contextmanager
def mapped(path: Path) -> Iterator[Mapped]:
    """A file's bytes mapped rather than read: its pages are the page cache's, which the
    kernel fills as they are read and may drop again under memory pressure, so reading a
    large file (a log segment, a snapshot's points) adds no copy of it to the heap. A node
    that ran close to its memory limit must be able to start again."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:  # (an empty file cannot be mapped)
            yield b""
            return
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            data.madvise(mmap.MADV_SEQUENTIAL)
            yield data


def load_json(path: Path) -> Any:
    """A JSON file's value, parsed from a map of the file (see ``mapped``)."""
    with mapped(path) as data, memoryview(data) as view:
        return orjson.loads(view)


def write_json_arrays(path: Path, arrays: Mapping[str, Sequence[Any]]) -> None:
    """Write ``{"name": [...], ...}`` byte for byte as ``orjson.dumps`` would, encoding
    a chunk of items at a time: a snapshot of many large payloads never holds all of
    them encoded at once."""
    with open(path, "wb") as f:
        f.write(b"{")
        for n, (name, items) in enumerate(arrays.items()):
            f.write(b"," if n else b"")
            f.write(orjson.dumps(name) + b":[")
            for start in range(0, len(items), _JSON_CHUNK):
                f.write(b"," if start else b"")
                f.write(orjson.dumps(items[start : start + _JSON_CHUNK])[1:-1])
            f.write(b"]")
        f.write(b"}")


def sha256(path: Path) -> str:
    """The SHA-256 of a file, read a MiB at a time (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
