"""The audit log: one JSON line per API call, authentication failure and denial.

Lines are handed to a background thread (the event loop never waits on the disk) that
appends them, in batches, to a file rotated by size, keeping ``backups`` old files
(``auditfile.RotatingLines``). A line holds who,
what route (its template, never the raw path or query), which collection, the outcome
and where from — never a secret, a token, a body or a vector. Text fields are cut to a
bounded length, and JSON encoding escapes control characters, so a hostile collection
name cannot forge or break lines.

Refusals (failed logins, denied and rate-limited calls, failed TLS handshakes) are what
anyone who reaches the port can send without end, so they are throttled: each kind from
each source address writes up to ``REFUSALS_PER_S`` lines a second (bursts of
``REFUSAL_BURST``), all sources together up to ``ALL_REFUSALS_PER_S``. Beyond that they
are counted, and the counts are written as ``audit_suppressed`` lines ({of, source,
suppressed}) a second after the first refusal counted (or with the next line written
after a second, whichever comes first; at most once a second), and at close: a flood
leaves its trace without rotating the rest of the log away, even when nothing follows it.
"""

from __future__ import annotations

import asyncio
import functools
import time
from pathlib import Path
from typing import Any

import orjson

from vectorizer.security.auditfile import RotatingLines
from vectorizer.security.ratelimit import RateLimiter

MAX_FIELD = 256

# Events (the ``event`` field).
REQUEST = "request"
AUTHENTICATION_FAILED = "authentication_failed"
AUTHORIZATION_DENIED = "authorization_denied"
RATE_LIMITED = "rate_limited"
STREAM_OPENED = "stream_opened"  # a WebSocket (replication stream) was accepted
TLS_HANDSHAKE_FAILED = "tls_handshake_failed"
PLAINTEXT_ON_TLS_PORT = "plaintext_on_tls_port"
SUPPRESSED = "audit_suppressed"  # refusals counted, not written one by one (see above)

REFUSALS = frozenset(
    {
        AUTHENTICATION_FAILED,
        AUTHORIZATION_DENIED,
        RATE_LIMITED,
        TLS_HANDSHAKE_FAILED,
        PLAINTEXT_ON_TLS_PORT,
    }
)
REFUSALS_PER_S, REFUSAL_BURST = 5.0, 20  # of one kind from one source
ALL_REFUSALS_PER_S, ALL_REFUSAL_BURST = 50.0, 200
_SUMMARY_EVERY_S = 1.0
_SOURCES_COUNTED = 10_000  # beyond: counted under source "*"
_SUMMARY_LINES = 20  # a summary's lines: the sources most refused, the rest as "*"


class AuditLog:
    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # (only its owner may read it: audit lines name principals and addresses)
        self._file = RotatingLines(path, max_bytes, backups)
        self._open = True
        self._buckets = RateLimiter()
        self._suppressed: dict[tuple[str, str], int] = {}  # (event, source) -> refusals
        self._summarized = time.monotonic()
        # Writes the counts when no line comes to carry them: started on the event loop
        # by the first refusal counted, one at a time, cancelled by a summary or close.
        self._timer: asyncio.TimerHandle | None = None

    def record(self, event: str, **fields: Any) -> None:
        if not self._open:
            return
        if event in REFUSALS and not self._admit(event, str(fields.get("source"))):
            return
        if self._suppressed and time.monotonic() - self._summarized >= _SUMMARY_EVERY_S:
            self._summarize()
        self._write(event, fields)

    def _admit(self, event: str, source: str) -> bool:
        """Whether a refusal gets its own line; counted when it does not."""
        take = self._buckets.take
        if (
            take(f"{event} {source}", REFUSALS_PER_S, REFUSAL_BURST).allowed
            and take("*", ALL_REFUSALS_PER_S, ALL_REFUSAL_BURST).allowed
        ):
            return True
        key = (event, source)
        if key not in self._suppressed and len(self._suppressed) >= _SOURCES_COUNTED:
            key = (event, "*")
        self._suppressed[key] = self._suppressed.get(key, 0) + 1
        if self._timer is None:
            self._start_timer()
        return False

    def _start_timer(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a tool, a test): written with the next line or at close
            return
        self._timer = loop.call_later(_SUMMARY_EVERY_S, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._open and self._suppressed:
            self._summarize()

    def _summarize(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        counts, self._suppressed = self._suppressed, {}
        self._summarized = time.monotonic()
        ranked = sorted(counts.items(), key=lambda kv: -kv[1])
        rest: dict[str, int] = {}
        for (event, _source), n in ranked[_SUMMARY_LINES:]:
            rest[event] = rest.get(event, 0) + n
        lines = [*ranked[:_SUMMARY_LINES], *(((event, "*"), n) for event, n in rest.items())]
        for (event, source), n in lines:
            self._write(SUPPRESSED, {"of": event, "source": source, "suppressed": n})

    def _write(self, event: str, fields: dict[str, Any]) -> None:
        line: dict[str, Any] = {"time": _now(), "event": event}
        for name, value in fields.items():
            line[name] = value[:MAX_FIELD] if isinstance(value, str) else value
        self._file.put(orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE))

    def close(self) -> None:
        """Write out every queued line (and the refusals counted), then stop the writer
        thread."""
        if self._open:
            if self._suppressed:
                self._summarize()  # (which stops the timer)
            self._open = False
            self._file.close()


def _now() -> str:
    """UTC, to the millisecond: ``2026-12-01T23:59:59.123Z``."""
    t = time.time()
    second = int(t)
    return f"{_second(second)}.{int((t - second) * 1000):03d}Z"


@functools.lru_cache(maxsize=2)
def _second(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
