"""The HTTPS listener: our own accept loop in front of aiohttp's protocol.

Doing the accept ourselves (instead of ``loop.create_server(ssl=…)``) buys four things:

- each connection gets the *current* TLS context, so reloaded certificates apply to
  the next handshake without a restart;
- a handshake that fails (an untrusted client certificate, no certificate where one is
  required, a client that distrusts us) is seen, with the peer's address, and audited;
- plain HTTP sent to this port is recognised by its first byte and answered with a
  structured 400 ``tls_required`` instead of silence. A TLS record starts with its
  content type (0x14 to 0x17, control characters no HTTP request starts with), and
  every record goes to the TLS layer, not only a handshake (0x16): a client that opens
  with an alert (what one that gives up before its hello sends, e.g. ``openssl
  s_client`` with no cipher in common) fails its handshake there, is audited with
  OpenSSL's reason, and is never answered in HTTP;
- connections not yet through their handshake are bounded so that no client can keep
  the others out by holding connections open without speaking (the attack every
  listener that waits for a handshake invites): at most ``MAX_PENDING_PER_SOURCE`` from
  one address and ``MAX_PENDING`` in all, room being made by closing the connection that
  has been silent longest rather than by refusing the newcomer (see ``_make_room``); a
  client must send its first byte within ``FIRST_BYTE_TIMEOUT_S``. What is refused or
  dropped is audited as a failed handshake and logged in a summary, at most every
  ``SUMMARY_EVERY_S``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections import Counter
from collections.abc import Callable
from functools import partial
from http import HTTPStatus

import orjson
from aiohttp import web

from vectorizer.errors import TlsRequired
from vectorizer.observability.metrics import RequestMetrics
from vectorizer.security.tls import ServerTls
from vectorizer.server.middlewares.headers import SECURITY_HEADERS
from vectorizer.server.middlewares.metrics import UNMATCHED
from vectorizer.server.middlewares.request_id import HEADER, new_request_id
from vectorizer.tasks import stop

log = logging.getLogger(__name__)

# The content types a TLS record starts with: change_cipher_spec, alert, handshake,
# application_data (the byte after is the version's major, 3).
TLS_RECORDS = frozenset({0x14, 0x15, 0x16, 0x17})
MAX_PENDING = 512  # connections between accept and the end of their handshake
MAX_PENDING_PER_SOURCE = 128  # of them from one address
# A client sends its hello as soon as it is connected: one that has said nothing after
# this long (or the handshake timeout, if shorter) is not a client that will.
FIRST_BYTE_TIMEOUT_S = 3.0
SUMMARY_EVERY_S = 5.0  # refused and dropped connections are logged together, this often
_SOURCES_COUNTED = 1000  # sources named in a summary's tally; beyond, counted as "other"

# What happened to a connection that never got through its handshake.
SILENT = "silent"  # sent nothing within the first-byte timeout
EVICTED = "evicted"  # closed to make room for a newer connection
REFUSED = "refused"  # closed at once: its address had too many handshakes in progress
FAILED = "failed"  # the handshake failed or timed out
PLAINTEXT = "plaintext"  # not TLS on the TLS port: taken for HTTP (answered with a 400)
_SAID = {
    SILENT: "sent nothing",
    EVICTED: "closed to make room",
    REFUSED: "refused",
    FAILED: "failed handshakes",
    PLAINTEXT: "plain HTTP",
}
_PRESSURE = frozenset({EVICTED, REFUSED})  # the listener is full: logged as a warning
# The method a request is counted under when it was not parsed (aiohttp's, for the
# requests ``protocol`` answers as malformed): HTTP is not read on this port.
UNPARSED_METHOD = "UNKNOWN"
# asyncio's and uvloop's timers may fire this much before their time.
_TIMER_SLACK_S = 0.05


def plaintext_answer(rid: str) -> bytes:
    """The 400 ``tls_required`` sent in plain HTTP to a client speaking it on the TLS
    port: with a request id and the security headers, as every answer has them (HTTP is
    not read here: the id is a new one)."""
    body = orjson.dumps(
        {
            "error": {
                "code": TlsRequired.code,
                "message": "this port speaks HTTPS only",
                "field": None,
            },
            "request_id": rid,
        }
    )
    headers = [
        ("Content-Type", "application/json"),
        ("Connection", "close"),
        ("Content-Length", str(len(body))),
        (HEADER, rid),
        *SECURITY_HEADERS,
    ]
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    status = HTTPStatus(TlsRequired.status)
    return f"HTTP/1.1 {status.value} {status.phrase}\r\n{head}\r\n".encode() + body


# (event, source address, reason) -> None
RejectHook = Callable[[str, str, str], None]


class _Pending:
    """A connection accepted whose handshake has not finished."""

    __slots__ = ("accepted", "conn", "counted", "first", "handed_over", "silent", "source", "task")

    def __init__(self, conn: socket.socket, source: str, first: bytes | None, now: float) -> None:
        self.conn, self.source, self.first, self.accepted = conn, source, first, now
        self.silent = first is None  # nothing received yet
        self.counted = False  # in the listener's tally of pending connections
        self.handed_over = False  # the socket belongs to an asyncio transport
        self.task: asyncio.Task[None] | None = None


class TlsSite(web.BaseSite):
    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        tls: ServerTls,
        *,
        handshake_timeout_s: float = 10.0,
        on_reject: RejectHook | None = None,
        backlog: int = 128,
    ) -> None:
        super().__init__(runner, backlog=backlog)
        self._host, self._port = host, port
        self._tls = tls
        self._timeout = handshake_timeout_s
        self._first_byte_timeout = min(FIRST_BYTE_TIMEOUT_S, handshake_timeout_s)
        self._on_reject = on_reject or (lambda event, source, reason: None)
        self._sock: socket.socket | None = None
        self._acceptor: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()
        # The connections in their handshake: by source, and those silent so far, each
        # oldest first; how many in all.
        self._by_source: dict[str, dict[_Pending, None]] = {}
        self._silent: dict[_Pending, None] = {}
        self._count = 0
        self._recent: Counter[str] = Counter()  # refused or dropped since the last summary
        self._recent_sources: Counter[str] = Counter()
        self._last_reason: dict[str, str] = {}
        self._summary: asyncio.TimerHandle | None = None

    @property
    def name(self) -> str:
        return f"https://{self._host}:{self.port}"

    @property
    def port(self) -> int:
        return self._sock.getsockname()[1] if self._sock is not None else self._port

    async def start(self) -> None:
        await super().start()
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.create_server(
            (self._host, self._port), family=family, backlog=self._backlog, reuse_port=False
        )
        sock.setblocking(False)
        self._sock = sock
        self._acceptor = asyncio.create_task(self._accept_loop(sock))

    async def stop(self) -> None:
        self._runner._check_site(self)
        tasks = [t for t in (self._acceptor, *self._pending) if t is not None]
        await stop(*tasks)
        if self._sock is not None:
            self._sock.close()
        if self._summary is not None:
            self._summary.cancel()
        self._summarize()
        self._runner._unreg_site(self)

    async def _accept_loop(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, addr = await loop.sock_accept(listener)
            except OSError as exc:  # e.g. out of file descriptors: let some close first
                log.warning("accept failed: %s", exc)
                await asyncio.sleep(0.1)
                continue
            conn.setblocking(False)
            try:
                first = _peek(conn)
            except OSError:  # reset already
                conn.close()
                continue
            if first == b"":  # connected and left (a TCP probe): nothing to report
                conn.close()
                continue
            source = str(addr[0])
            if not self._make_room(source):
                conn.close()
                continue
            pending = _Pending(conn, source, first, loop.time())
            self._add(pending)
            task = pending.task = asyncio.create_task(self._open(pending))
            self._pending.add(task)
            task.add_done_callback(partial(self._closed, pending))

    def _make_room(self, source: str) -> bool:
        """Whether a new connection from ``source`` may be taken, closing another first
        if need be: the oldest silent one of the same address when that address is at
        its cap (else the newcomer is refused); when the listener is full, the one silent
        longest, else the oldest of the address holding the most."""
        mine = self._by_source.get(source)
        if mine is not None and len(mine) >= MAX_PENDING_PER_SOURCE:
            victim = next((p for p in mine if p.silent), None)
            if victim is None:
                self._report(
                    REFUSED, source, f"over {MAX_PENDING_PER_SOURCE} handshakes in progress"
                )
                return False
            self._evict(victim, "a newer connection from the same address")
        elif self._count >= MAX_PENDING:
            victim = next(iter(self._silent), None)
            if victim is None:
                busiest = max(self._by_source.values(), key=len)
                victim = next(iter(busiest))
            self._evict(victim, f"over {MAX_PENDING} handshakes in progress")
        return True

    def _add(self, p: _Pending) -> None:
        self._by_source.setdefault(p.source, {})[p] = None
        if p.silent:
            self._silent[p] = None
        self._count += 1
        p.counted = True

    def _spoke(self, p: _Pending) -> None:
        p.silent = False
        self._silent.pop(p, None)

    def _forget(self, p: _Pending) -> None:
        if not p.counted:
            return
        p.counted = False
        mine = self._by_source[p.source]
        del mine[p]
        if not mine:
            del self._by_source[p.source]
        self._silent.pop(p, None)
        self._count -= 1

    def _evict(self, p: _Pending, why: str) -> None:
        self._forget(p)
        assert p.task is not None
        p.task.cancel()  # (the socket is closed as the task ends)
        loop = asyncio.get_running_loop()
        held = loop.time() - p.accepted
        said = "having sent nothing" if p.silent else "in its handshake"
        self._report(EVICTED, p.source, f"closed after {held:.1f}s {said}, for {why}")

    def _closed(self, p: _Pending, task: asyncio.Task[None]) -> None:
        self._forget(p)
        if not p.handed_over:  # (once it is, closing it is the transport's business)
            p.conn.close()

    async def _open(self, p: _Pending) -> None:
        loop = asyncio.get_running_loop()
        conn, source, first = p.conn, p.source, p.first
        if first is None:
            try:
                async with asyncio.timeout(self._first_byte_timeout):
                    first = await _first_byte(loop, conn)
            except TimeoutError:
                self._report(SILENT, source, f"sent nothing in {self._first_byte_timeout:g}s")
                return
            except OSError:  # reset meanwhile
                return
            except Exception:  # one connection must never take the listener down
                log.exception("cannot read from a connection from %s", source)
                return
            self._spoke(p)
            if not first:  # connected and left (a TCP probe): nothing to report
                return
        if first[0] not in TLS_RECORDS:
            self._tally(PLAINTEXT, source, "not a TLS record")
            self._on_reject("plaintext_on_tls_port", source, "not a TLS record")
            self._count_plaintext()
            await _answer_plaintext(loop, conn)
            return
        server = self._runner.server
        assert server is not None
        left = max(self._timeout - (loop.time() - p.accepted), 0.001)  # from accept
        deadline = loop.time() + left
        p.handed_over = True
        try:
            await loop.connect_accepted_socket(
                server,
                conn,
                ssl=self._tls.context,  # read per connection: reloads apply to the next one
                ssl_handshake_timeout=left,
            )
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            # asyncio and uvloop abort a handshake that runs out of time with a
            # ConnectionAbortedError, not a TimeoutError: one raised once the time is up
            # is the timeout.
            out_of_time = loop.time() >= deadline - _TIMER_SLACK_S
            self._report(FAILED, source, _reason(exc, out_of_time))
            conn.close()
        except Exception:  # one connection must never take the listener down
            log.exception("cannot open a connection from %s", source)
            conn.close()
        else:
            self._forget(p)

    def _count_plaintext(self) -> None:
        """Count the 400 ``tls_required`` as ``protocol`` counts the requests it answers
        as malformed: a request on no route, and its error code. (The metrics live on the
        runner's server when ``metrics_enabled``.)"""
        metrics = getattr(self._runner.server, "metrics", None)
        if isinstance(metrics, RequestMetrics):
            metrics.request(UNPARSED_METHOD, UNMATCHED, TlsRequired.status, 0.0)
            metrics.error(TlsRequired.code)

    def _report(self, kind: str, source: str, reason: str) -> None:
        """A connection refused or dropped before its handshake ended: audited (the
        audit log throttles these itself) and tallied for the next summary."""
        self._tally(kind, source, reason)
        self._on_reject("tls_handshake_failed", source, reason)

    def _tally(self, kind: str, source: str, reason: str) -> None:
        self._recent[kind] += 1
        if source in self._recent_sources or len(self._recent_sources) < _SOURCES_COUNTED:
            self._recent_sources[source] += 1
        else:
            self._recent_sources["other"] += 1
        self._last_reason[kind] = reason
        log.debug("TLS connection from %s: %s", source, reason)
        if self._summary is None:
            self._summary = asyncio.get_running_loop().call_later(SUMMARY_EVERY_S, self._summarize)

    def _summarize(self) -> None:
        """One line for what was refused or dropped since the last: how many of each
        kind (with the last reason), and the addresses they came from most."""
        self._summary = None
        if not self._recent:
            return
        kinds = "; ".join(
            f"{n} {_SAID[kind]} ({self._last_reason[kind]})" for kind, n in self._recent.items()
        )
        sources = ", ".join(f"{s} ({n})" for s, n in self._recent_sources.most_common(5))
        level = logging.WARNING if _PRESSURE & self._recent.keys() else logging.INFO
        log.log(
            level,
            "TLS connections refused or dropped before their handshake ended, over %gs: "
            "%s; from %s (%d in progress)",
            SUMMARY_EVERY_S,
            kinds,
            sources,
            self._count,
        )
        self._recent.clear()
        self._recent_sources.clear()


def _peek(conn: socket.socket) -> bytes | None:
    """The first byte the client sent, left in the socket for the TLS layer to read;
    None if nothing has come yet (b"" if the client has closed)."""
    try:
        return conn.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return None


async def _first_byte(loop: asyncio.AbstractEventLoop, conn: socket.socket) -> bytes:
    while (first := _peek(conn)) is None:
        ready = loop.create_future()
        fd = conn.fileno()
        loop.add_reader(fd, _wake, ready)
        try:
            await ready
        finally:
            loop.remove_reader(fd)
    return first


def _wake(ready: asyncio.Future[None]) -> None:
    if not ready.done():
        ready.set_result(None)


async def _answer_plaintext(loop: asyncio.AbstractEventLoop, conn: socket.socket) -> None:
    """A 400 in plain HTTP, then close (after reading what the client sent, so that the
    close is not a reset that would destroy the answer before the client reads it)."""
    try:
        with contextlib.suppress(BlockingIOError):
            conn.recv(65536)
        async with asyncio.timeout(5):
            await loop.sock_sendall(conn, plaintext_answer(new_request_id()))
        conn.shutdown(socket.SHUT_WR)
        async with asyncio.timeout(2):
            while await loop.sock_recv(conn, 65536):
                pass
    except (OSError, TimeoutError):
        pass
    finally:
        conn.close()


def _reason(exc: BaseException, out_of_time: bool = False) -> str:
    """Why a handshake failed; ``out_of_time``: it failed once its time was up."""
    if isinstance(exc, ssl.SSLError):
        return str(exc.reason or exc.__class__.__name__)
    if isinstance(exc, TimeoutError) or (out_of_time and isinstance(exc, ConnectionAbortedError)):
        return "handshake timeout"
    return exc.__class__.__name__
