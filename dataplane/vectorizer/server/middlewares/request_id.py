"""Every request's id: the client's ``X-Request-ID`` when sane, else a new one.

New ids are 32 hex digits, unique across processes and restarts: a random prefix drawn
when the process starts, then a counter (cheaper per request than fresh random bytes,
which is a system call each).
"""

from __future__ import annotations

import itertools
import os
import re

from aiohttp import web

HEADER = "X-Request-ID"
_SANE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_PREFIX = os.urandom(8).hex()
_COUNTER = itertools.count(int.from_bytes(os.urandom(4), "big"))


def request_id(request: web.Request) -> str:
    return given_request_id(request.headers.get(HEADER)) or new_request_id()


def given_request_id(given: str | None) -> str | None:
    """The client's id (the ``X-Request-ID`` header's value) when it is sane."""
    return given if given and _SANE.fullmatch(given) else None


def new_request_id() -> str:
    return f"{_PREFIX}{next(_COUNTER) & 0xFFFFFFFFFFFFFFFF:016x}"
