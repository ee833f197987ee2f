"""Requests aiohttp cannot parse get the same structured errors as every other request.

A request line or header over aiohttp's size limits (8190 bytes), or bytes that are not
HTTP, are answered by aiohttp's protocol handler before any middleware runs: in plain
text, logged at ERROR with a traceback. ``Runner`` makes them a structured JSON error
(``malformed_request``, with the status aiohttp chose; in Qdrant's shape when an
over-long request line's path starts with /qdrant) with a request id and the security
headers, logged at INFO as the client's mistake they are and counted with the other
errors. The connection is closed afterwards, as aiohttp does (the rest of the stream
cannot be trusted); the requests that came before the bad bytes, even in the same TCP
segment, are answered first (``_Handler.data_received``).
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine
from typing import Any

from aiohttp import http_exceptions, web
from aiohttp.http_parser import RawRequestMessage
from aiohttp.web_protocol import RequestHandler

from vectorizer.errors import MalformedRequest
from vectorizer.observability import context
from vectorizer.observability.metrics import RequestMetrics
from vectorizer.server.http import holds_body_back
from vectorizer.server.keys import METRICS, SETTINGS
from vectorizer.server.middlewares.errors import render
from vectorizer.server.middlewares.headers import add_security_headers
from vectorizer.server.middlewares.metrics import UNMATCHED
from vectorizer.server.middlewares.request_id import request_id

log = logging.getLogger(__name__)

_HEAD_END = b"\r\n\r\n"
# Pieces a chunk is cut into at most (as many requests as aiohttp queues): a body full
# of blank lines must not make each of them a call of its own.
_MAX_CUTS = 32


class Runner(web.AppRunner):
    """``web.AppRunner`` whose connections answer unparsable requests in JSON."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _Server  # the same server; only its handler class differs
        assert isinstance(server, _Server)
        if self.app[SETTINGS].metrics_enabled:
            server.metrics = self.app[METRICS].requests
        return server


class _Server(web.Server):
    metrics: RequestMetrics | None = None  # where answered parse errors are counted

    def __call__(self) -> RequestHandler:
        return _Handler(self, loop=self._loop, **self._kwargs)


class _Handler(RequestHandler):
    _edge = b""  # the last bytes received: a head's end may straddle two chunks

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

    def _body_arriving(self) -> bool:
        request = self._current_request
        return request is not None and not request.content.is_eof()

    def _take(self, data: bytes) -> None:
        """aiohttp feeds a chunk to its parser whole and, when the parser raises on bytes
        that are not HTTP, queues only the 400: requests parsed from the same chunk
        before those bytes were dropped, unanswered and not executed (and the client,
        given one answer, takes the 400 for its valid request). The parser streams, so
        the chunk is fed in pieces instead, each ending where a request's head may end
        (CRLFCRLF): every request is queued before the bytes after it are parsed, and
        the error after them, in order (RFC 9112 section 9.3.2)."""
        cuts = self._head_ends(data)
        if not cuts:
            super().data_received(data)
            return
        start = 0
        for end in (*cuts, len(data)):
            if end > start:
                super().data_received(data[start:end])
                start = end
                if self._messages and not isinstance(self._messages[-1][0], RawRequestMessage):
                    return  # an unparsable request: nothing after it is read

    def _head_ends(self, data: bytes) -> list[int]:
        """Where in ``data`` a CRLFCRLF ends (when it is not the end of ``data``)."""
        edge = self._edge
        self._edge = data[-3:] if len(data) >= 3 else (edge + data)[-3:]
        cuts = []
        if edge and (at := (edge + data[:3]).find(_HEAD_END)) != -1:
            cuts.append(at + 4 - len(edge))
        at = data.find(_HEAD_END)
        while at != -1 and len(cuts) < _MAX_CUTS:
            cuts.append(at + 4)
            at = data.find(_HEAD_END, at + 4)
        if cuts and cuts[-1] == len(data):
            cuts.pop()
        return cuts

    def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> Coroutine[Any, Any, tuple[web.StreamResponse, bool]]:
        """Close the connection after an answer sent while the client holds its body
        back (``http.HELD_BACK``): ``Connection: close`` tells it so. (No coroutine of
        its own: aiohttp's is returned, to be awaited as usual.)"""
        if holds_body_back(request) and isinstance(resp, web.StreamResponse):
            resp.force_close()
        return super().finish_response(request, resp, start_time)

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
