"""Searches answered beside aiohttp's per-request machinery: the fast path.

At 32 connections the event loop's thread bounds a node's searches, and about a third
of its work per search is aiohttp's machinery around the request rather than the
search: a task, a ``web.Request``, the router, the middleware call, a ``web.Response``
and its preparation (docs/PERFORMANCE.md). ``FastSearch.take`` answers a request that
aiohttp's own parser has read whole, when it is exactly the common shape:

- a native search or a plain Qdrant ``query_points`` (``fastroutes.ROUTES``) over
  HTTP/1.1, the name plain (letters, digits, ``-``, ``_``: nothing to decode), no query
  string;
- a body received (with its head, or soon after: ``protocol.PARK_S``), not compressed,
  not chunked, within ``max_body_bytes`` and small enough not to be checked against the
  node's memory (``http.SMALL_BODY``);
- only the headers in ``_PLAIN_HEADERS`` (each once), no ``Connection: close``;
- a node without tracing (spans stay the pipeline's);
- a caller ``admit`` lets in: the same authentication, RBAC and rate
  (``auth.caller_at_once``, ``auth.within_rate_at_once``); the rate's headers and the
  audit line are the pipeline's too;
- a body the view would accept (it is checked by the view's own functions) and that
  does not ask for vectors back (``fastroutes``: the shapes each route takes).

Who the caller is, and whether it may search the collection its path names, is known
before the body is decoded or the store consulted: a caller refused for its credentials
or its scope costs no more than on the pipeline (which refuses before a view reads a
byte), and learns nothing from how long its refusal took (not even whether the
collection exists). The rate's token is taken only once the body is found to be the fast
path's: a request left to the pipeline has its token taken there, once, as before.

Anything else goes aiohttp's way as before, the bytes unchanged: a request that fails
a check is handed on with its body (``protocol._Handler``), so every error answer is
the pipeline's own, refusals (401, 403, 429) and their audit lines included. The answer
is the one the pipeline gives: the same batching, the same headers in the same order,
request id, log context, metrics, audit line and idle polling.
Which connection may use it (none while aiohttp has a request of it in hand, one answer
at a time) is ``protocol._Handler``'s business.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import time

from aiohttp import HttpVersion11, web
from aiohttp.base_protocol import BaseProtocol
from aiohttp.helpers import rfc822_formatted_time
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader

from vectorizer.engine.collection import ScoredPoint
from vectorizer.errors import MalformedRequest, RateLimited, VectorizerError
from vectorizer.observability import context
from vectorizer.security.permissions import Rule, rule_for
from vectorizer.security.roles import Permission, Principal
from vectorizer.server.exchange import Exchange
from vectorizer.server.fastroutes import ROUTES, Asked, Route
from vectorizer.server.http import SMALL_BODY
from vectorizer.server.keys import (
    GUARD,
    IDLE_POLLER,
    METRICS,
    REPLICATION,
    SEARCH_BATCHER,
    SETTINGS,
    STORE,
)
from vectorizer.server.middlewares.audit import record_call
from vectorizer.server.middlewares.auth import caller_at_once, within_rate_at_once
from vectorizer.server.middlewares.errors import CLIENT_CLOSED, as_error, render
from vectorizer.server.middlewares.headers import HSTS, SECURITY_HEADERS
from vectorizer.server.middlewares.metrics import observe_request
from vectorizer.server.middlewares.replication import staleness_headers
from vectorizer.server.middlewares.request_id import HEADER, given_request_id, new_request_id

log = logging.getLogger(__name__)

# What clients send with a plain request; the pipeline ignores them all but the id and
# the credentials (and the parser has read the framing ones). Any other header sends the
# request aiohttp's way.
_PLAIN_HEADERS = frozenset(
    {
        b"host",
        b"content-type",
        b"content-length",
        b"accept",
        b"accept-encoding",
        b"user-agent",
        b"connection",
        b"x-request-id",
        b"x-api-key",
        b"api-key",
        b"authorization",
    }
)
_JSON = b"Content-Type: application/json\r\n"

# aiohttp's read buffer size (``read_bufsize``), as its parser gives payloads
_READ_BUFSIZE = 2**16

# Permissions ``admit`` treats otherwise (public, public by setting, mTLS): the pipeline's
_NOT_HERE = frozenset({Permission.PUBLIC, Permission.METRICS, Permission.REPLICATION_STREAM})


class Answering(BaseProtocol, abc.ABC):
    """The connection's side of it (``protocol._Handler``)."""

    @abc.abstractmethod
    def answering(self, task: asyncio.Task[None]) -> None:
        """``task`` answers the connection's request in hand."""

    @abc.abstractmethod
    def answer(self, response: bytes) -> None:
        """Send ``response`` (the request in hand's answer)."""

    @property
    @abc.abstractmethod
    def source(self) -> str | None:
        """The client's address, as ``request.remote`` gives it."""


class FastSearch:
    """The fast path of one node's app (see the module's docstring)."""

    def __init__(self, app: web.Application) -> None:
        settings = app[SETTINGS]
        self._settings = settings
        self._guard = app[GUARD]
        self._manager = app[REPLICATION]
        self._store = app[STORE]
        self._batcher = app[SEARCH_BATCHER]
        self._poller = app[IDLE_POLLER]
        self._metrics = app[METRICS].requests if settings.metrics_enabled else None
        # Admission here is ``admit``'s for a route whose rule names its collection in
        # the path and is neither public nor the stream; else the route is the pipeline's.
        self._rules: dict[str, Rule] = {}
        for route in ROUTES:
            rule = rule_for("POST", route.template)
            if rule is not None and rule.path and rule.permission not in _NOT_HERE:
                self._rules[route.template] = rule
        security = [*SECURITY_HEADERS, HSTS] if settings.tls_enabled else SECURITY_HEADERS
        self._security = "".join(f"{k}: {v}\r\n" for k, v in security).encode()
        self._largest = min(settings.max_body_bytes, SMALL_BODY)
        self.on = settings.tracing_exporter == "none" and len(self._rules) == len(ROUTES)

    def wants(self, message: RawRequestMessage) -> bool:
        """Whether ``message``'s head is the fast path's shape (its body yet to be seen)."""
        if (
            message.method != "POST"
            or message.version != HttpVersion11
            or message.should_close
            or message.upgrade
            or message.chunked
            or message.compression is not None
            or self._route_of(message.path) is None
        ):
            return False
        seen: set[bytes] = set()
        for raw_name, _ in message.raw_headers:
            lower = raw_name.lower()
            if lower not in _PLAIN_HEADERS or lower in seen:
                return False
            seen.add(lower)
        length = message.headers.get("Content-Length")
        return length is not None and 0 < int(length) <= self._largest

    def caller(self, message: RawRequestMessage, protocol: Answering) -> Principal | None:
        """Who asks ``message`` (which it ``wants``), if ``admit`` would let it in (the
        rate aside), else None: known from the head, before a byte of the body is read,
        as the pipeline knows it. A request whose body is still to come is waited for
        only when let in (a refused one is the pipeline's at once); ``take`` and ``lost``
        are then given the caller found here."""
        route, name = self._found(message)
        rule = self._rules[route.template]
        transport = protocol.transport
        return caller_at_once(self._guard, self._store, message.headers, transport, rule, name)

    def lost(
        self, message: RawRequestMessage, protocol: Answering, principal: Principal, since: float
    ) -> None:
        """A request it waited for the body of (its ``caller`` let in), its client gone
        before the body came: counted, audited and logged as the pipeline does a request
        whose body was cut short (499 ``malformed_request``; the caller's token taken:
        over its rate, the pipeline's 429). ``since``: when its head was read."""
        route, name = self._found(message)
        rule = self._rules[route.template]
        headers = message.headers
        ex = Exchange(given_request_id(headers.get(HEADER)) or new_request_id(), rule=rule)
        if within_rate_at_once(ex, self._guard, principal):
            status, ex.error_code = CLIENT_CLOSED, MalformedRequest.code
            token = context.request_id.set(ex.request_id)
            try:
                log.info("POST %s: the client closed the connection", message.path)
            finally:
                context.request_id.reset(token)
        else:  # (refused: the caller is named as the pipeline names it)
            status, ex.error_code, ex.principal = RateLimited.status, RateLimited.code, principal
        self._record(ex, route.template, name, status, time.perf_counter() - since, protocol)

    def take(
        self,
        message: RawRequestMessage,
        payload: StreamReader,
        protocol: Answering,
        principal: Principal | None = None,
    ) -> StreamReader | None:
        """Answer ``message``, which it ``wants`` and whose body is all in ``payload``,
        here (``protocol.answer`` gets the response's bytes, later): None. Else the
        payload for aiohttp to handle ``message`` with (its body again: it was read).
        ``principal``: its ``caller``, when found before its body came."""
        route, name = self._found(message)
        try:
            body = payload.read_nowait()
        except Exception:  # noqa: BLE001 - (a payload that failed: aiohttp's to answer)
            return payload
        headers = message.headers
        rule = self._rules[route.template]
        # Who asks, and may it search this collection, before the body is decoded or the
        # store consulted (the pipeline refuses before a view reads a byte, too).
        if principal is None:
            principal = self.caller(message, protocol)
        if principal is None:
            return _refilled(protocol, body)  # (refused: the pipeline says why)
        try:
            asked = route.ask(self._store, self._settings, name, body)
        except Exception:  # noqa: BLE001 - the pipeline answers it, as it would have
            return _refilled(protocol, body)  # (its token taken there: none was here)
        rid = given_request_id(headers.get(HEADER)) or new_request_id()
        ex = Exchange(rid, rule=rule)
        if not within_rate_at_once(ex, self._guard, principal):
            return _refilled(protocol, body)  # (the pipeline says 429, taking none)
        protocol.answering(
            asyncio.get_running_loop().create_task(
                self._answer(ex, route, name, message.path, asked, protocol)
            )
        )
        return None

    def _found(self, message: RawRequestMessage) -> tuple[Route, str]:
        found = self._route_of(message.path)
        assert found is not None  # (it wants it)
        return found

    def _route_of(self, path: str) -> tuple[Route, str] | None:
        for route in ROUTES:
            if (matched := route.path.fullmatch(path)) is not None:
                return route, matched.group(1)
        return None

    async def _answer(
        self,
        ex: Exchange,
        route: Route,
        name: str,
        path: str,
        asked: Asked,
        protocol: Answering,
    ) -> None:
        started = time.perf_counter()
        rid = ex.request_id
        token = context.request_id.set(rid)
        if (polls := self._poller) is not None:
            polls.began(started)
        try:
            hits = await self._search(asked)
            ex.searches.append(len(hits))
            status, reason, body = 200, b"OK", asked.show(hits, started)
            head = _JSON
        except Exception as exc:  # noqa: BLE001 - every failure gets a structured answer
            if isinstance(exc, VectorizerError):
                exc = route.error(exc, name)
            status, reason, head, body = self._failure(ex, exc, path, started)
        finally:
            context.request_id.reset(token)
        took = time.perf_counter() - started
        if polls is not None:
            polls.answered(started + took)
        self._record(ex, route.template, name, status, took, protocol)
        if (metrics := self._metrics) is not None:
            metrics.fast_path += 1
        protocol.answer(self._response(status, reason, head, body, ex))

    def _record(
        self, ex: Exchange, template: str, name: str, status: int, took: float, protocol: Answering
    ) -> None:
        """The request's metrics and audit line, as the pipeline's."""
        if (metrics := self._metrics) is not None:
            observe_request(metrics, "POST", ex, template, status, took)
        if (audit := self._guard.audit) is not None:
            source = protocol.source
            record_call(audit, ex, "POST", template, {"name": name}, source, status, took * 1000)

    async def _search(self, asked: Asked) -> list[ScoredPoint]:
        coll, query, params = asked.coll, asked.query, asked.params
        if not asked.filtered:  # answered together with other searches in flight
            return await self._batcher.search(coll, query, **params)
        await coll.graphs_settled()
        return coll.search(query, predicate=asked.predicate, **params)

    def _failure(
        self, ex: Exchange, exc: Exception, path: str, started: float
    ) -> tuple[int, bytes, bytes, bytes]:
        """What the pipeline answers for what a search raised once under way."""
        err = as_error(exc, "POST", path, time.perf_counter() - started)
        ex.error_code = err.code
        resp = render(err, path, ex.request_id)
        assert isinstance(resp.body, bytes)
        headers = ((k, v) for k, v in resp.headers.items() if k != "Content-Length")
        head = b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in headers)
        return resp.status, resp.reason.encode(), head, resp.body

    def _response(
        self, status: int, reason: bytes, head: bytes, body: bytes, ex: Exchange
    ) -> bytes:
        rate = (
            ""
            if ex.rate is None
            else "".join(f"{k}: {v}\r\n" for k, v in ex.rate.headers().items())
        )
        stale = "".join(f"{k}: {v}\r\n" for k, v in staleness_headers(self._manager))
        return b"".join(
            (
                b"HTTP/1.1 %d %s\r\n" % (status, reason),
                head,
                self._security,
                rate.encode(),
                stale.encode(),
                b"%s: %s\r\nContent-Length: %d\r\nDate: %s\r\n\r\n"
                % (
                    HEADER.encode(),
                    ex.request_id.encode(),
                    len(body),
                    rfc822_formatted_time().encode(),
                ),
                body,
            )
        )


def _refilled(protocol: BaseProtocol, body: bytes) -> StreamReader:
    """A whole body, read here, to be read again by the pipeline."""
    payload = StreamReader(protocol, _READ_BUFSIZE, loop=asyncio.get_running_loop())
    payload.feed_data(body)
    payload.feed_eof()
    return payload
