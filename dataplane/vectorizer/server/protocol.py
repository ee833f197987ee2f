"""The connection handler: aiohttp's, with unparsable requests answered in JSON and
plain searches answered on the fast path.

Requests aiohttp cannot parse get the same structured errors as every other request.
A request line or header over aiohttp's size limits (8190 bytes), or bytes that are not
HTTP, are answered by aiohttp's protocol handler before any middleware runs: in plain
text, logged at ERROR with a traceback. ``Runner`` makes them a structured JSON error
(``malformed_request``, with the status aiohttp chose; in Qdrant's shape when an
over-long request line's path starts with /qdrant) with a request id and the security
headers, logged at INFO as the client's mistake they are and counted with the other
errors. The connection is closed afterwards, as aiohttp does (the rest of the stream
cannot be trusted); the requests that came before the bad bytes, even in the same TCP
segment, and however many were pipelined, are answered first (``_Handler._take_pieces``).

Plain searches are answered by ``fastsearch.FastSearch`` from here, without aiohttp's
per-request machinery (see that module). The handler parses as aiohttp does
(``_Handler._feed``) and offers each request read whole to it while aiohttp has no
request of the connection in hand (one whose small body is still to come waits for it
over the next reads, ``PARK_S`` at most, then is aiohttp's: httpx writes a request's
head and body apart; only a caller ``FastSearch.caller`` lets in waits, and one whose client
hangs up meanwhile is recorded as the pipeline records it, ``FastSearch.lost``); the
requests after one being answered there are
held back and queued for aiohttp once its answer is sent, so answers keep the order
of the requests. A stop waits for it as for aiohttp's request in hand, and the
keep-alive timer does not close a connection whose answer (or body) is on its way; a
stop hands a request still waiting for its body to aiohttp. This leans on
aiohttp's protocol handler's private parts, hence aiohttp's pin to one minor version;
``_FAST_PATH_FITS`` turns the fast path off where they are not what it expects.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Coroutine
from typing import Any

from aiohttp import http_exceptions, web
from aiohttp.http_parser import HttpRequestParser, RawRequestMessage
from aiohttp.streams import EMPTY_PAYLOAD, StreamReader
from aiohttp.web_protocol import RequestHandler, _ErrInfo, _MsgType

from vectorizer.errors import MalformedRequest
from vectorizer.observability import context
from vectorizer.observability.metrics import RequestMetrics
from vectorizer.security.roles import Principal
from vectorizer.server.fastsearch import Answering, FastSearch
from vectorizer.server.http import holds_body_back
from vectorizer.server.keys import METRICS, SETTINGS
from vectorizer.server.middlewares.audit import source_of
from vectorizer.server.middlewares.errors import render
from vectorizer.server.middlewares.headers import add_security_headers
from vectorizer.server.middlewares.metrics import UNMATCHED
from vectorizer.server.middlewares.request_id import request_id

log = logging.getLogger(__name__)

_Message = RawRequestMessage | _ErrInfo
# What of aiohttp the fast path uses beyond what this module used before it.
_FAST_PATH_FITS = hasattr(HttpRequestParser, "message_consumed") and all(
    hasattr(RequestHandler, name)
    for name in ("_max_msg_queue_size", "_buffer_paused", "_pause_reading_for_buffer")
)

_HEAD_END = b"\r\n\r\n"
# A fast path request whose body has not all come with its head waits for it over the
# next reads this long (clients such as httpx, qdrant-client's, write a request's head
# and its body apart), then is aiohttp's, which reads the rest as it comes. Only a body
# this small waits: a larger one may fill aiohttp's payload buffer, which pauses reading.
PARK_S = 0.1
_PARK_BYTES = 1 << 16
# Pieces without a request a chunk is cut into at most (as many as aiohttp queues): a
# body full of blank lines must not make each of them a call of its own.
_MAX_CUTS = 32


class Runner(web.AppRunner):
    """``web.AppRunner`` whose connections answer unparsable requests in JSON."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _Server  # the same server; only its handler class differs
        assert isinstance(server, _Server)
        if self.app[SETTINGS].metrics_enabled:
            server.metrics = self.app[METRICS].requests
        fast = FastSearch(self.app)
        server.fast = fast if fast.on and _FAST_PATH_FITS else None
        return server


class _Server(web.Server):
    metrics: RequestMetrics | None = None  # where answered parse errors are counted
    fast: FastSearch | None = None  # the fast path for plain searches, when on

    def __call__(self) -> RequestHandler:
        handler = _Handler(self, loop=self._loop, **self._kwargs)
        handler._fast = self.fast
        return handler


class _Handler(RequestHandler, Answering):
    _edge = b""  # the last bytes received: a head's end may straddle two chunks
    _fast: FastSearch | None = None
    # The fast path's answer being worked on, and the requests that came after it, held
    # back from aiohttp until it is sent (answers go out in the order of the requests).
    _answering: asyncio.Task[None] | None = None
    _held: deque[_MsgType] | None = None
    _given = 0  # requests handed to aiohttp (before the first, it has none in hand)
    _finished_count = 0  # of them, answered with the connection kept open
    _parked: tuple[RawRequestMessage, StreamReader] | None = None
    _parked_at = 0.0  # (its head read: perf_counter)
    _parked_caller: Principal | None = None  # (``FastSearch.caller``'s, at its head)
    _park_timer: asyncio.TimerHandle | None = None  # (hands the parked request on)
    _taking = False  # a chunk is being taken (``_take``): what comes meanwhile waits
    _eof = False  # the client half-closed with requests to answer (``eof_received``)
    _backlog = b""  # what was read and not yet fed to the parser (``_take_pieces``)
    _later: list[bytes]

    def data_received(self, data: bytes) -> None:
        """Bytes in; while the node stops, still the body of the request being handled.

        A stop closes every connection (``RequestHandler.close``, then ``shutdown``) and
        waits for the requests being handled, but aiohttp drops every byte received
        after that, the rest of a body arriving too: an upsert whose body was on its
        way when SIGTERM came waited out ``request_body_timeout_s`` (30 s, the stop with
        it) and was answered a false 408. That body is read on (nothing after it is
        taken: the connection closes once it is answered)."""
        closing, forced = self._close, self._force_close
        if not (closing or forced) or not self._body_arriving():
            self._take(data)
            return
        self._close = self._force_close = False
        try:
            self._take(data)
        finally:
            self._close, self._force_close = closing or self._close, forced or self._force_close

    def eof_received(self) -> bool | None:  # type: ignore[override]  # (asyncio's contract)
        """The client has sent all it will: a half-close (``shutdown(SHUT_WR)``, as ``nc
        -N`` and some proxies do). The requests it sent whole are answered, then the
        connection closes (``_closing_if_done``). aiohttp let the transport close at once,
        answering none, while the fast path's answer raced the close. With nothing to
        answer, a body still to come (the client hung up mid-request), a WebSocket, or
        over TLS (where asyncio closes anyway), it closes at once, as before."""
        transport = self.transport
        if (
            transport is None
            or transport.get_extra_info("ssl_object") is not None
            or self._upgraded
            or self._payload_parser is not None  # (a WebSocket: its reader must see it end)
            or self._parked is not None
            or self._body_arriving()
            or not self._busy()
        ):
            return None
        self._eof = True
        return True

    def _busy(self) -> bool:
        """Whether a request of the connection is in hand or waits to be: aiohttp's or
        the fast path's."""
        return (
            self._answering is not None
            or bool(self._held)
            or bool(self._backlog)
            or not self._idle()
        )

    def _closing_if_done(self) -> bool:
        """After an answer, once the client half-closed: whether that was the last (the
        connection is then to close)."""
        return self._eof and not self._busy()

    def _body_arriving(self) -> bool:
        """Whether a request aiohttp has in hand or queued still reads its body."""
        request = self._current_request
        return (request is not None and not request.content.is_eof()) or any(
            not payload.is_eof() for _, payload in self._messages
        )

    def close(self) -> None:
        """A stop's first step: a request whose body is still to come is aiohttp's now
        (aiohttp's ``close`` ends its wait for the next request: given it after that, it
        would not be answered)."""
        self._unpark()
        super().close()

    def _take(self, data: bytes) -> None:
        """One chunk, then whatever came in while it was taken: reading a body here
        (the fast path's) may resume reading, and aiohttp then feeds its parser b""
        from within; fed then, a parser that failed on the chunk's bytes would queue a
        second 400 before the request being answered."""
        if self._taking:
            self._later.append(data)
            return
        self._taking, self._later = True, []
        try:
            self._take_chunk(data)
            while self._later and not self._unparsable():
                self._take_chunk(self._later.pop(0))
        finally:
            self._taking = False

    def _take_chunk(self, data: bytes) -> None:
        try:
            self._take_pieces(data)
        finally:
            self._settle(final=True)
        if not self._buffer_paused and self._queued() >= self._max_msg_queue_size:
            self._pause_reading_for_buffer()

    def _take_pieces(self, data: bytes) -> None:
        """aiohttp feeds a chunk to its parser whole and, when the parser raises on bytes
        that are not HTTP, queues only the 400: requests parsed from the same chunk
        before those bytes were dropped, unanswered and not executed (and the client,
        given one answer, takes the 400 for its valid request). The parser streams, so
        the chunk is fed in pieces instead, each ending where a request's head may end
        (CRLFCRLF): every request is queued before the bytes after it are parsed, and
        the error after them, in order (RFC 9112 section 9.3.2). A body's blank lines
        are cut at too: ``_MAX_CUTS`` of them at most, then the rest is fed whole.

        The parser stops at as many requests as aiohttp queues (32) and keeps the bytes
        after them, to parse in one call once the queue drains, where bytes that are
        not HTTP would drop the requests before them again. So those bytes are kept
        here instead, before the parser would stop (``_backlog``, reading paused), and
        fed once the queue drains (aiohttp then feeds b"": ``_resume_reading_if_drained``)."""
        lead = b"" if self._backlog else self._edge  # (the bytes fed before ``data``)
        self._edge = (self._edge + data)[-3:]
        data, self._backlog = self._backlog + data, b""
        start, idle = 0, 0
        while True:
            if start < len(data) and self._queued() >= self._max_msg_queue_size - 2:
                self._backlog = data[start:]  # (a piece may end two requests)
                if not self._buffer_paused:
                    self._pause_reading_for_buffer()
                return
            end = _head_end(lead if start == 0 else b"", data, start) if idle < _MAX_CUTS else -1
            last = end == -1 or end >= len(data)
            parsed = self._request_count
            self._feed(data[start:] if last else data[start:end])
            if last or self._unparsable():
                return  # (after an unparsable request nothing is read)
            idle += self._request_count == parsed
            start = end

    def _queued(self) -> int:
        """Requests parsed and not yet taken up (what the parser counts to stop at)."""
        return len(self._messages) + len(self._held or ()) + (self._parked is not None)

    def _resume_reading_for_buffer(self) -> None:
        """Reading resumes once the pieces kept back are all fed (until then each drain
        of aiohttp's queue feeds more of them)."""
        if not self._backlog:
            super()._resume_reading_for_buffer()

    def _end_bodies_cut_short(self) -> None:
        """After bytes that are not HTTP (their 400 queued last), a body still being read
        gets no more: its request fails at once as ``malformed_request``. aiohttp's C
        parser leaves the body waiting (a chunk size that is not hex, say), and the
        request was answered a false 408 once ``request_body_timeout_s`` had passed."""
        if not self._unparsable():
            return
        queue = self._held or self._messages
        error = queue[-1][0]
        assert isinstance(error, _ErrInfo)
        # (a parked request's body is whole by now: bytes after a Content-Length body
        # are the next request's, and it was settled before the error was queued)
        request = self._current_request
        bodies = [payload for _, payload in (*self._messages, *(self._held or ()))]
        if request is not None:
            bodies.append(request.content)
        # (aiohttp's reason, its first line: the lines after it echo the bytes)
        reason = str(error.message or "unreadable").strip().splitlines()[0].rstrip(":")
        for body in bodies:
            if not body.is_eof() and body.exception() is None:
                body.set_exception(web.RequestPayloadError(reason))

    def _unparsable(self) -> bool:
        """Whether the last request queued is bytes that are not HTTP (the 400 to come
        is the connection's last answer)."""
        queue = self._held or self._messages
        return bool(queue) and not isinstance(queue[-1][0], RawRequestMessage)

    def _feed(self, data: bytes) -> None:
        """aiohttp's parsing of ``data`` (``RequestHandler.data_received``), with each
        request offered to the fast path first, while aiohttp has none in hand."""
        parser = self._parser
        if (
            self._fast is None
            or parser is None
            or self._close
            or self._force_close
            or self._payload_parser is not None
            or self._upgraded
        ):
            self._given += 1  # (whether or not the bytes hold a request)
            super().data_received(data)
            self._end_bodies_cut_short()
            return
        try:
            messages, upgraded, tail = parser.feed_data(data)
        except http_exceptions.HttpProcessingError as exc:
            error = _ErrInfo(status=400, exc=exc, message=exc.message)
            messages, upgraded, tail = [(error, EMPTY_PAYLOAD)], False, b""
        for message, payload in messages:
            self._request_count += 1
            self._offer(message, payload)
        self._settle(final=False)  # (its body may have come in this piece)
        self._end_bodies_cut_short()
        self._upgraded = upgraded
        if upgraded and tail:
            self._message_tail = tail

    def _offer(self, message: _Message, payload: StreamReader) -> None:
        """A request to the fast path when it is its shape, else to aiohttp's queue; one
        whose body is not all in yet waits (``_parked``) until the chunk is fed."""
        self._settle(final=False)  # (a request parked before this one is all in)
        fast = self._fast
        if (
            fast is not None
            and isinstance(message, RawRequestMessage)
            and self._answering is None
            and self._idle()
            and fast.wants(message)
        ):
            if payload.is_eof():
                left = fast.take(message, payload, self)
                if left is None:
                    self._consumed()
                    return
                payload = left
            elif (caller := fast.caller(message, self)) is not None:  # (else the pipeline's)
                self._parked, self._parked_at = (message, payload), time.perf_counter()
                self._parked_caller = caller
                return
        self._queue(message, payload)

    def _settle(self, final: bool) -> None:
        """The parked request, all in, to the fast path. Once the chunk is fed
        (``final``) with its body still to come: a small body is waited for over the
        next reads, ``PARK_S`` at most; a larger one is aiohttp's (``_unpark``)."""
        parked = self._parked
        if parked is None or self._fast is None:
            return
        message, payload = parked
        if not payload.is_eof():
            if final and self._park_timer is None:
                length = int(message.headers.get("Content-Length", 0))
                if length <= _PARK_BYTES:
                    self._park_timer = self._loop.call_later(PARK_S, self._unpark)
                else:
                    self._unpark()
            return
        self._unparked()
        left = self._fast.take(message, payload, self, self._parked_caller)
        if left is None:
            self._consumed()
        else:
            self._queue(message, left)

    def _unpark(self) -> None:
        """The parked request to aiohttp, which reads the rest of its body as it comes."""
        parked = self._unparked()
        if parked is not None:
            self._queue(*parked)

    def _unparked(self) -> tuple[RawRequestMessage, StreamReader] | None:
        """The parked request, no longer parked."""
        parked, self._parked = self._parked, None
        if self._park_timer is not None:
            self._park_timer.cancel()
            self._park_timer = None
        return parked

    def _consumed(self) -> None:
        if self._parser is not None:
            self._parser.message_consumed()  # (aiohttp does so as it takes one)

    def _queue(self, message: _Message, payload: StreamReader) -> None:
        """To aiohttp; held back while the fast path answers the request before it."""
        if self._answering is not None:
            self._held_back().append((message, payload))
            return
        self._messages.append((message, payload))
        self._given += 1
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _idle(self) -> bool:
        """Whether aiohttp has no request in hand or queued: it waits for one, or it
        answered each it was given, none at first (its task may not wait again yet: a
        client that asks as soon as it has its answer is often quicker, and every request
        of the connection would be aiohttp's from then on)."""
        if self._messages:
            return False
        waiter = self._waiter
        return self._given == self._finished_count or (waiter is not None and not waiter.done())

    def _held_back(self) -> deque[_MsgType]:
        if self._held is None:
            self._held = deque()
        return self._held

    def answering(self, task: asyncio.Task[None]) -> None:
        self._answering = task
        task.add_done_callback(self._unanswered)

    def _unanswered(self, task: asyncio.Task[None]) -> None:
        """A fast answer's task that ended without sending it (cancelled, or a bug): the
        client must not wait on a connection that will never answer."""
        if self._answering is not task:
            return
        self._answering = None
        if not task.cancelled():
            log.error("a search on the fast path failed unanswered", exc_info=task.exception())
        self.force_close()

    @property
    def source(self) -> str | None:
        return source_of(self.peername)

    def answer(self, response: bytes) -> None:
        """Send the fast path's answer; then the requests held back are aiohttp's."""
        self._answering = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return  # the client went away: no one to answer (as aiohttp does)
        transport.write(response)
        if transport.is_closing():
            return  # the client reset the connection: nothing more of it is handled
        if self._keepalive_timeout > 0:  # (as aiohttp does after an answer)
            self._next_keepalive_close_time = self._loop.time() + self._keepalive_timeout
            if self._keepalive_handle is None:
                self._keepalive_handle = self._loop.call_at(
                    self._next_keepalive_close_time, self._process_keepalive
                )
        held = self._held
        while held:
            self._queue(*held.popleft())
        if self._closing_if_done():
            transport.close()  # (what was written goes out first)

    def _process_keepalive(self) -> None:
        """aiohttp closes a connection idle past ``keepalive_timeout``: one whose
        request the fast path is answering, or waits for the body of, is not idle."""
        if self._answering is not None or self._parked is not None:
            self._next_keepalive_close_time = self._loop.time() + self._keepalive_timeout
        super()._process_keepalive()

    async def shutdown(self, timeout: float | None = 15.0) -> None:  # noqa: ASYNC109 - aiohttp's
        """A stop answers the request in hand first, the fast path's too (one whose
        body is still to come is aiohttp's now, to be read on as a stop does)."""
        self._unpark()
        task = self._answering
        if task is not None:
            await asyncio.wait([task], timeout=timeout)
        await super().shutdown(timeout)

    def connection_lost(self, exc: BaseException | None) -> None:
        parked = self._unparked()  # (no one to answer: recorded as the pipeline does)
        try:
            caller = self._parked_caller
            if parked is not None and self._fast is not None and caller is not None:
                self._fast.lost(parked[0], self, caller, self._parked_at)
        finally:
            super().connection_lost(exc)

    def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> Coroutine[Any, Any, tuple[web.StreamResponse, bool]]:
        """Close the connection after an answer sent while the client holds its body
        back (``http.HELD_BACK``): ``Connection: close`` tells it so."""
        if holds_body_back(request) and isinstance(resp, web.StreamResponse):
            resp.force_close()
        return self._finished(super().finish_response(request, resp, start_time))

    async def _finished(
        self, finishing: Coroutine[Any, Any, tuple[web.StreamResponse, bool]]
    ) -> tuple[web.StreamResponse, bool]:
        """aiohttp's answer sent: when the connection stays open, aiohttp is done with
        the request (its task is on its way back to wait for the next: ``_idle``)."""
        resp, reset = await finishing
        if not reset and resp.keep_alive:
            self._finished_count += 1
            if self._closing_if_done():
                self._close = True  # (aiohttp then closes the connection)
        return resp, reset

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500 or request.writer.output_size > 0:
            return super().handle_error(request, status, exc, message)
        err = MalformedRequest(_reason(exc, message))
        rid = request_id(request)  # type: ignore[arg-type]  # (only its headers are read)
        token = context.request_id.set(rid)
        try:
            log.info("unparsable request from %s: %s", request.remote, err.message)
        finally:
            context.request_id.reset(token)
        resp = render(err, _path(exc), rid)
        resp.set_status(status)
        resp.headers["X-Request-ID"] = rid
        add_security_headers(resp, request.secure, None)
        resp.force_close()
        metrics = self._manager.metrics if isinstance(self._manager, _Server) else None
        if metrics is not None:
            metrics.request(request.method, UNMATCHED, status, 0.0)
            metrics.error(err.code)
        return resp

    def log_exception(self, *args: Any, **kw: Any) -> None:
        if isinstance(kw.get("exc_info"), web.RequestPayloadError):
            # aiohttp reading on past a body it could not decode (a Content-Encoding it
            # is not in), already answered as malformed_request: the client's mistake,
            # not a traceback at ERROR per request
            log.debug("dropped the rest of a request body that could not be read")
            return
        super().log_exception(*args, **kw)


def _head_end(lead: bytes, data: bytes, start: int) -> int:
    """Where in ``data`` the first CRLFCRLF from ``start`` on ends (one begun in ``lead``,
    the bytes before ``data``, too), or -1."""
    if lead and (at := (lead + data[:3]).find(_HEAD_END)) != -1:
        return at - len(lead) + 4
    at = data.find(_HEAD_END, start)
    return -1 if at == -1 else at + 4


def _path(exc: BaseException | None) -> str:
    """The path as far as it was read: an over-long request line's beginning."""
    if isinstance(exc, http_exceptions.LineTooLong) and isinstance(exc.args[0], bytes | bytearray):
        return bytes(exc.args[0][:64]).decode("latin-1")
    return "/"


def _reason(exc: BaseException | None, message: str | None) -> str:
    if isinstance(exc, http_exceptions.LineTooLong):
        return f"the request line or a header is longer than {exc.args[1]} bytes"
    text = exc.message if isinstance(exc, http_exceptions.HttpProcessingError) else message
    # Only aiohttp's reason, its first line: the lines after it echo the bytes it could
    # not parse (a header with a bad character: an API key, a bearer token), which
    # neither the log nor the answer may show.
    reason = str(text or "unreadable").strip().splitlines()[0].rstrip(":").strip()
    return f"not a valid HTTP request: {reason[:200]}"
