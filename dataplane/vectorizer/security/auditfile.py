"""A file of lines appended by a thread of its own, in batches, and rotated by size.

The audit log writes a line per API call. Through ``logging`` (a ``QueueHandler`` and a
``RotatingFileHandler`` on a ``QueueListener``'s thread) each line cost the event loop a
``LogRecord`` and its formatting, and the writer thread, woken for every line, two
``stat`` calls, a seek and a write, each a turn of Python that took the GIL from the
event loop: a node with its audit log on answered half the searches of one without.
Here the loop's side is one ``put`` of the encoded line; the thread, once woken, lets
lines gather for ``GATHER_S`` and writes them with one ``write`` (one per file when the
batch crosses a rotation). Lines reach the file within ``GATHER_S`` of being put.

Rotation is ``RotatingFileHandler``'s: before a line that would bring the file to
``max_bytes``, ``path.N-1`` becomes ``path.N`` (the oldest is dropped), ``path`` becomes
``path.1`` and a new ``path`` is begun. The files are created readable by their owner
only. A write that fails (a full disk) is logged once and its lines are dropped, not
retried without end; the writer goes on with the next batch.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

GATHER_S = 0.02

_STOP = b""  # (no line is empty: each ends with a newline)


class RotatingLines:
    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        self.path = path
        self._max, self._backups = max_bytes, backups
        self._queue: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self._fd: int | None = None
        self._size = 0
        self._failing = False
        self._open()  # (a path that cannot be a file refuses the start, plainly)
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()

    def put(self, line: bytes) -> None:
        """Append ``line`` (it ends with a newline) soon; never waits on the disk."""
        self._queue.put(line)

    def close(self) -> None:
        """Write every line put before, then stop the thread and close the file."""
        self._queue.put(_STOP)
        self._thread.join()

    def _run(self) -> None:
        get = self._queue.get
        stopping = False
        while not stopping:
            batch = [get()]
            time.sleep(GATHER_S)  # (the lines put meanwhile join this write)
            try:
                while True:
                    batch.append(self._queue.get_nowait())
            except queue.Empty:
                pass
            if _STOP in batch:
                stopping = True
                batch = [line for line in batch if line]
            self._write(batch)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _write(self, lines: list[bytes]) -> None:
        try:
            fd = self._open()
            chunk: list[bytes] = []
            size = self._size
            for line in lines:
                if size and size + len(line) >= self._max:
                    _write_all(fd, b"".join(chunk))
                    chunk, size = [], 0
                    fd = self._rotate()
                chunk.append(line)
                size += len(line)
            _write_all(fd, b"".join(chunk))
            self._size = size
        except OSError as exc:
            self._failed(exc, len(lines))
            return
        if self._failing:
            self._failing = False
            log.warning("audit log %s is written again", self.path)

    def _open(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._size = os.fstat(self._fd).st_size
        return self._fd

    def _rotate(self) -> int:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        for n in range(self._backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{n + 1}"))
        self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        return self._open()

    def _failed(self, exc: OSError, lines: int) -> None:
        """A failed write: its lines are lost; said once per run of failures."""
        if self._fd is not None:  # (opened again for the next batch: the file may be back)
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        if not self._failing:
            self._failing = True
            log.error(
                "audit log %s cannot be written (%s): its lines are lost until it can",
                self.path,
                exc,
            )
        else:
            log.debug("audit log %s: %d more lines lost", self.path, lines)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
