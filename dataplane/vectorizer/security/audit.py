"""The audit log: one JSON line per API call, authentication failure and denial.

Lines are handed to a background thread (the event loop never waits on the disk) that
appends them to a file rotated by size, keeping ``backups`` old files. A line holds who,
what route (its template, never the raw path or query), which collection, the outcome
and where from — never a secret, a token, a body or a vector. Text fields are cut to a
bounded length, and JSON encoding escapes control characters, so a hostile collection
name cannot forge or break lines.
"""

from __future__ import annotations

import logging
import os
import queue
import time
from datetime import UTC, datetime
from logging.handlers import QueueHandler, QueueListener, RotatingFileHandler
from pathlib import Path
from typing import Any

import orjson

MAX_FIELD = 256

# Events (the ``event`` field).
REQUEST = "request"
AUTHENTICATION_FAILED = "authentication_failed"
AUTHORIZATION_DENIED = "authorization_denied"
RATE_LIMITED = "rate_limited"
STREAM_OPENED = "stream_opened"  # a WebSocket (replication stream) was accepted
TLS_HANDSHAKE_FAILED = "tls_handshake_failed"
PLAINTEXT_ON_TLS_PORT = "plaintext_on_tls_port"


class _PrivateRotatingFile(RotatingFileHandler):
    """A rotating file only its owner can read (audit lines name principals and addresses)."""

    def _open(self) -> Any:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.close(fd)
        return super()._open()


class AuditLog:
    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        handler = _PrivateRotatingFile(
            path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
        )
        handler.setFormatter(logging.Formatter("%(message)s"))
        self._queue: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        self._enqueue = QueueHandler(self._queue)
        self._listener = QueueListener(self._queue, handler)
        self._listener.start()
        self._open = True

    def record(self, event: str, **fields: Any) -> None:
        if not self._open:
            return
        line: dict[str, Any] = {"time": _now(), "event": event}
        for name, value in fields.items():
            line[name] = value[:MAX_FIELD] if isinstance(value, str) else value
        text = orjson.dumps(line).decode()
        self._enqueue.emit(logging.makeLogRecord({"msg": text, "levelno": logging.INFO}))

    def close(self) -> None:
        """Write out every queued line, then stop the writer thread."""
        if self._open:
            self._open = False
            self._listener.stop()
            for h in self._listener.handlers:
                h.close()


def _now() -> str:
    t = time.time()
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
