"""Secrets given as a value or as a file; a file is re-read when it changes.

Kubernetes updates a mounted Secret in place (an atomic symlink swap), so a rotated
admin key, replication key or JWT secret takes effect without a restart. The file is
stat-ed at most every ``recheck_s`` seconds, so a request rarely touches the disk.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)

MIN_KEY = 16  # characters of the bootstrap admin key and the replication key
MIN_HS256 = 32  # characters of the JWT HS256 secret


_GONE = (-1, -1, -1)  # the signature of a file that does not exist


class Secret:
    """The current value of a secret (``None`` when it is not configured or unreadable).
    A file's value shorter than ``min_length`` is refused, as a short value given
    directly is at start-up: the last good value stays (none, if it never had one), as
    it does while the file cannot be read; a file removed withdraws the secret."""

    def __init__(
        self, value: str = "", path: str = "", recheck_s: float = 2.0, min_length: int = 0
    ) -> None:
        self._value = value or None
        self._path = Path(path) if path else None
        self._recheck_s = recheck_s
        self._min_length = min_length
        self._checked = 0.0
        self._signature: tuple[int, int, int] | None = None
        if self._path is not None:
            self._reload()

    @property
    def configured(self) -> bool:
        return self._path is not None or self._value is not None

    def get(self) -> str | None:
        if self._path is not None and time.monotonic() - self._checked >= self._recheck_s:
            self._reload()
        return self._value

    def _reload(self) -> None:
        assert self._path is not None
        self._checked = time.monotonic()
        try:
            st = os.stat(self._path)
            signature = (st.st_mtime_ns, st.st_ino, st.st_size)
            if signature == self._signature:
                return
            text = self._path.read_text().strip()
        except FileNotFoundError:
            # Removed: the secret is withdrawn (a Secret's mount swaps its files whole,
            # it is never missing in between), not kept as a file it cannot read is.
            if self._value is not None or self._signature != _GONE:
                log.error("secret file %s does not exist; the secret is not used", self._path)
            self._value, self._signature = None, _GONE
            return
        except OSError as exc:
            log.error("cannot read secret file %s: %s", self._path, exc)
            return  # keep the last good value
        self._signature = signature  # (not read again until it changes)
        if text and len(text) < self._min_length:
            log.error(
                "secret file %s holds %d characters, fewer than the %d required; %s",
                self._path,
                len(text),
                self._min_length,
                "keeping the last good value" if self._value else "it is not used",
            )
            return
        if self._value is not None:
            log.info("secret file %s changed; using the new value", self._path)
        self._value = text or None
