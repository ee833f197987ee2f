"""The one middleware every request aiohttp handles goes through, in this order (plain
native searches are answered on the fast path, ``server/fastsearch.py``, with the same
outcome: the same checks, admission, headers, ids, metrics and audit line):

1. an id (the client's ``X-Request-ID`` when sane), set before anything can fail;
2. a server span, when tracing is configured;
3. admission: the route's permission rule, authentication, RBAC, the caller's rate
   (401/403/429, all before a view reads a byte of the body);
4. the view; whatever it (or admission) raised becomes a structured JSON error;
5. metrics and the audit line, with the final status;
6. security headers, the node's staleness headers and the request id on the answer;
7. the loop keeps polling for the next request a moment (``idlepoll``).

One function rather than a chain of aiohttp middlewares: each link of a chain costs a
coroutine and a wrapper call per request, and a search is answered in well under a
millisecond. The concerns themselves live in the sibling modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from vectorizer.observability import context
from vectorizer.server.exchange import EXCHANGE, Exchange
from vectorizer.server.keys import GUARD, IDLE_POLLER, METRICS, REPLICATION, SETTINGS
from vectorizer.server.middlewares.audit import audit_request
from vectorizer.server.middlewares.auth import admit
from vectorizer.server.middlewares.errors import CLIENT_CLOSED, failure_response
from vectorizer.server.middlewares.headers import add_security_headers
from vectorizer.server.middlewares.metrics import observe_request, route_template
from vectorizer.server.middlewares.replication import add_staleness_headers
from vectorizer.server.middlewares.request_id import HEADER, request_id
from vectorizer.server.middlewares.tracing import finish_span, server_span

_NO_SPAN = contextlib.nullcontext()


def pipeline(app: web.Application) -> Middleware:
    """The middleware for ``app``, its settings read once."""
    settings, guard, manager = app[SETTINGS], app[GUARD], app[REPLICATION]
    metrics = app[METRICS].requests if settings.metrics_enabled else None
    tracing = settings.tracing_exporter != "none"
    sample_ratio = settings.tracing_sample_ratio
    tls, auth_enabled = settings.tls_enabled, settings.auth_enabled
    poller = app[IDLE_POLLER]

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        rid = request_id(request)
        ex = request[EXCHANGE] = Exchange(rid)
        token = context.request_id.set(rid)
        template = route_template(request)
        status = 500
        # A WebSocket is a connection, not a request in flight: it must not keep the loop
        # polling while it lasts.
        polls = poller if poller is not None and hdrs.UPGRADE not in request.headers else None
        if polls is not None:
            polls.began(started)
        try:
            with server_span(request, ex, template, sample_ratio) if tracing else _NO_SPAN as span:
                try:
                    await admit(request, ex, guard, template)
                    response = await handler(request)
                except Exception as exc:  # noqa: BLE001 - every failure gets a structured answer
                    response = failure_response(request, exc, time.perf_counter() - started)
                status = response.status
                if span is not None:
                    finish_span(span, status)
        except web.HTTPException as exc:  # a redirect, passed on as is
            status = exc.status
            exc.headers[HEADER] = rid
            raise
        except asyncio.CancelledError:
            status = CLIENT_CLOSED
            raise
        finally:
            context.request_id.reset(token)
            took = time.perf_counter() - started
            if polls is not None:
                polls.answered(started + took)
            if metrics is not None:
                observe_request(metrics, request.method, ex, template, status, took)
            if guard.audit is not None:
                audit_request(request, ex, guard.audit, template, status, took * 1000)
        if not response.prepared:  # else a WebSocket: its headers went out with the upgrade
            add_security_headers(response, tls, ex.rate)
            if not auth_enabled or ex.principal is not None:  # strangers learn nothing of the node
                add_staleness_headers(response, manager)
            response.headers[HEADER] = rid
        return response

    return middleware
