"""One process per data directory: an exclusive lock on ``<data dir>/LOCK``.

Two servers (or a server and ``vectorizer restore``) writing one log would each
overwrite what the other acknowledged. The lock is ``flock``'s: the kernel releases it
when the process ends however it ends (``kill -9`` too), so a stale lock never keeps a
node from restarting; the file holds the holder's pid for the error message.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path

from vectorizer.errors import DataDirInUse

NAME = "LOCK"


class DirLock:
    def __init__(self, data_dir: Path) -> None:
        # Created for the node's eyes only: its log and snapshots hold every vector and
        # payload (a directory that exists keeps the mode it was given).
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(data_dir / NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise DataDirInUse(
                f"{data_dir} is in use by another process (pid {holder}); one server per "
                "data directory",
                field="data_dir",
            ) from None
        self._fd: int | None = fd
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError as exc:
            # The pid is only for the error message of the next one to try: a disk with no
            # room at all (or a quota reached) must not keep the node from starting (the
            # lock itself is the flock, held already).
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                self.release()
                raise

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # (closing the only descriptor releases the lock)
            self._fd = None

    def __enter__(self) -> DirLock:
        return self

    def __exit__(self, *_: object) -> None:
        self.release()
