"""Writing files so that a failure says so: fsync of a file or directory, numpy arrays
written through Python's file objects, and a check for libraries that write short
without an error (hnswlib's graph).

numpy writes an array with ``tofile``, whose short write raises an ``OSError`` without
an errno, and hnswlib writes through a C++ stream that never reports one; a full disk
must come back as ENOSPC (or EFBIG over a file size limit) so that the caller can tell
"no room" from "broken disk".
"""

from __future__ import annotations

import errno
import os
import resource
import shutil
from pathlib import Path

import numpy as np
import numpy.typing as npt


def fsync_path(path: Path) -> None:
    """fsync a file or a directory (a directory: so that entries made in it last)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
