"""The HTTPS listener: our own accept loop in front of aiohttp's protocol.

Doing the accept ourselves (instead of ``loop.create_server(ssl=…)``) buys three things:

- each connection gets the *current* TLS context, so reloaded certificates apply to
  the next handshake without a restart;
- a handshake that fails (an untrusted client certificate, no certificate where one is
  required, a client that distrusts us) is seen, with the peer's address, and audited;
- plain HTTP sent to this port is recognised by its first byte (a TLS record starts
  with 0x16) and answered with a structured 400 ``tls_required`` instead of silence.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable

import orjson
from aiohttp import web

from vectorizer.security.tls import ServerTls
from vectorizer.tasks import stop

log = logging.getLogger(__name__)

TLS_HANDSHAKE = 0x16
MAX_PENDING = 512  # connections between accept and the end of their handshake
_PLAINTEXT_BODY = orjson.dumps(
    {
        "error": {
            "code": "tls_required",
            "message": "this port speaks HTTPS only",
            "field": None,
        },
        "request_id": None,
    }
)
PLAINTEXT_ANSWER = (
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nConnection: close\r\n"
    b"Content-Length: " + str(len(_PLAINTEXT_BODY)).encode() + b"\r\n\r\n" + _PLAINTEXT_BODY
)

# (event, source address, reason) -> None
RejectHook = Callable[[str, str, str], None]


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
        self._on_reject = on_reject or (lambda event, source, reason: None)
        self._sock: socket.socket | None = None
        self._acceptor: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()

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
            if len(self._pending) >= MAX_PENDING:
                conn.close()
                continue
            conn.setblocking(False)
            task = asyncio.create_task(self._open(conn, str(addr[0])))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _open(self, conn: socket.socket, source: str) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._timeout):
                first = await _peek(conn)
        except (TimeoutError, OSError):
            conn.close()
            return
        if not first:  # connected and left (a TCP probe): nothing to report
            conn.close()
            return
        if first[0] != TLS_HANDSHAKE:
            self._on_reject("plaintext_on_tls_port", source, "not a TLS handshake")
            await _answer_plaintext(loop, conn)
            return
        server = self._runner.server
        assert server is not None
        try:
            await loop.connect_accepted_socket(
                server,
                conn,
                ssl=self._tls.context,  # read per connection: reloads apply to the next one
                ssl_handshake_timeout=self._timeout,
            )
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            reason = _reason(exc)
            log.info("TLS handshake from %s failed: %s", source, reason)
            self._on_reject("tls_handshake_failed", source, reason)
            conn.close()
        except Exception:  # one connection must never take the listener down
            log.exception("cannot open a connection from %s", source)
            conn.close()


async def _peek(conn: socket.socket) -> bytes:
    """The first byte the client sends, left in the socket for the TLS layer to read."""
    delay = 0.0005
    while True:
        try:
            return conn.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            await asyncio.sleep(delay)  # clients send their hello at once; this rarely loops
            delay = min(delay * 2, 0.05)


async def _answer_plaintext(loop: asyncio.AbstractEventLoop, conn: socket.socket) -> None:
    """A 400 in plain HTTP, then close (after reading what the client sent, so that the
    close is not a reset that would destroy the answer before the client reads it)."""
    try:
        with contextlib.suppress(BlockingIOError):
            conn.recv(65536)
        async with asyncio.timeout(5):
            await loop.sock_sendall(conn, PLAINTEXT_ANSWER)
        conn.shutdown(socket.SHUT_WR)
        async with asyncio.timeout(2):
            while await loop.sock_recv(conn, 65536):
                pass
    except (OSError, TimeoutError):
        pass
    finally:
        conn.close()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return str(exc.reason or exc.__class__.__name__)
    if isinstance(exc, TimeoutError):
        return "handshake timeout"
    return exc.__class__.__name__
