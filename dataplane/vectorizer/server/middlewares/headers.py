"""Security headers on every response, and the rate-limit headers when a limit applied."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from vectorizer.security.ratelimit import Decision
from vectorizer.server.keys import RATE_DECISION, SETTINGS

_ALWAYS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Server": "vectorizer",  # not aiohttp's name and version
}
HSTS = "max-age=31536000"


@web.middleware
async def headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    if response.prepared:  # a WebSocket: its headers went out with the upgrade
        return response
    headers = response.headers
    for name, value in _ALWAYS.items():
        headers.setdefault(name, value)
    if request.app[SETTINGS].tls_enabled:
        headers["Strict-Transport-Security"] = HSTS
    decision: Decision | None = request.get(RATE_DECISION)
    if decision is not None:
        headers.update(decision.headers())
    return response
