"""One audit line per API call, written after the response (so with its final status).

It is written after errors became responses, and so sees refusals as what they
became: 401 lines are ``authentication_failed``, 403 ``authorization_denied``, 429
``rate_limited``, the rest ``request``. Liveness, readiness and public metrics are not
API calls and are left out (probes would drown everything else).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from vectorizer.security import audit
from vectorizer.server.exchange import EXCHANGE, Exchange
from vectorizer.server.keys import GUARD
from vectorizer.server.middlewares.auth import is_public
from vectorizer.server.middlewares.metrics import route_template


def audit_request(
    request: web.Request,
    ex: Exchange,
    log: audit.AuditLog,
    template: str,
    status: int,
    took_ms: float,
) -> None:
    """The line of one finished request, unless it was a public call that went well."""
    metrics_public = request.app[GUARD].settings.metrics_public
    if ex.rule is None or not is_public(ex.rule, metrics_public) or status >= 500:
        _record(request, ex, log, template, status, took_ms)


def audit_stream_opened(request: web.Request) -> None:
    """A WebSocket (the replication stream) is audited when it opens, not only when it ends
    (the pipeline's own line comes when the view returns, which may be days later)."""
    log = request.app[GUARD].audit
    if log is not None:
        ex = request[EXCHANGE]
        _record(request, ex, log, route_template(request), 101, 0.0, event=audit.STREAM_OPENED)


def _record(
    request: web.Request,
    ex: Exchange,
    log: audit.AuditLog,
    template: str,
    status: int,
    took_ms: float,
    event: str | None = None,
) -> None:
    record_call(
        log,
        ex,
        request.method,
        template,
        request.match_info,
        request.remote,
        status,
        took_ms,
        event,
    )


def record_call(
    log: audit.AuditLog,
    ex: Exchange,
    method: str,
    template: str,
    match: Mapping[str, str],
    source: str | None,
    status: int,
    took_ms: float,
    event: str | None = None,
) -> None:
    """The line of one call (``match``: its path's parameters; ``source``: the client's
    address, as ``request.remote`` gives it: ``source_of``)."""
    principal = ex.principal
    code = ex.error_code
    log.record(
        event or _event(status, code),
        principal=principal.id if principal else ex.audit_claimed,
        role=principal.role.value if principal else None,
        method=method,
        route=template,
        collection=ex.audit_collection or match.get("name"),
        target=ex.audit_target or match.get("key_id"),
        status=status,
        code=code,
        reason=ex.audit_reason,
        request_id=ex.request_id,
        source=source,
        duration_ms=round(took_ms, 3),
    )


def source_of(peername: Any) -> str | None:
    """A connection's peer address as ``request.remote`` gives it (the IP of a TCP peer)."""
    if peername is None:
        return None
    if isinstance(peername, list | tuple):
        return str(peername[0])
    return str(peername)


def _event(status: int, code: str | None) -> str:
    if status == 401:
        return audit.AUTHENTICATION_FAILED
    if status == 403 and code == "forbidden":
        return audit.AUTHORIZATION_DENIED
    if status == 429:
        return audit.RATE_LIMITED
    return audit.REQUEST
