"""One audit line per API call, written after the response (so with its final status).

It sits outside the error middleware and so sees refusals as the responses they
became: 401 lines are ``authentication_failed``, 403 ``authorization_denied``, 429
``rate_limited``, the rest ``request``. Liveness, readiness and public metrics are not
API calls and are left out (probes would drown everything else).
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from vectorizer.security import audit
from vectorizer.security.permissions import Rule
from vectorizer.security.roles import Principal
from vectorizer.server.keys import (
    AUDIT_CLAIMED,
    AUDIT_COLLECTION,
    AUDIT_REASON,
    AUDIT_TARGET,
    ERROR_CODE,
    GUARD,
    PRINCIPAL,
    REQUEST_ID,
    RULE,
)
from vectorizer.server.middlewares.auth import is_public
from vectorizer.server.middlewares.metrics import route_template

CLIENT_CLOSED = 499  # the client went away before the answer (nginx's convention)


@web.middleware
async def audit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    guard = request.app[GUARD]
    if guard.audit is None:
        return await handler(request)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except asyncio.CancelledError:
        status = CLIENT_CLOSED
        raise
    finally:
        rule: Rule | None = request.get(RULE)
        if rule is None or not is_public(rule, guard.settings.metrics_public) or status >= 500:
            _record(request, status, (time.perf_counter() - started) * 1000)


async def audit_stream_opened(request: web.Request, response: web.StreamResponse) -> None:
    """A WebSocket (the replication stream) is audited when it opens, not only when it ends.

    Installed as an ``on_response_prepare`` signal: the middleware's own line comes when
    the handler returns, which for a stream may be days later.
    """
    if isinstance(response, web.WebSocketResponse) and request.app[GUARD].audit is not None:
        _record(request, 101, 0.0, event=audit.STREAM_OPENED)


def _record(request: web.Request, status: int, took_ms: float, event: str | None = None) -> None:
    log = request.app[GUARD].audit
    assert log is not None
    principal: Principal | None = request.get(PRINCIPAL)
    code = request.get(ERROR_CODE)
    log.record(
        event or _event(status, code),
        principal=principal.id if principal else request.get(AUDIT_CLAIMED),
        role=principal.role.value if principal else None,
        method=request.method,
        route=route_template(request),
        collection=request.get(AUDIT_COLLECTION) or request.match_info.get("name"),
        target=request.get(AUDIT_TARGET) or request.match_info.get("key_id"),
        status=status,
        code=code,
        reason=request.get(AUDIT_REASON),
        request_id=request.get(REQUEST_ID),
        source=request.remote,
        duration_ms=round(took_ms, 3),
    )


def _event(status: int, code: str | None) -> str:
    if status == 401:
        return audit.AUTHENTICATION_FAILED
    if status == 403 and code == "forbidden":
        return audit.AUTHORIZATION_DENIED
    if status == 429:
        return audit.RATE_LIMITED
    return audit.REQUEST
