"""Per-credential token buckets; a caller over its rate gets 429 with ``Retry-After``.

Runs after authentication (it keys on the principal). The decision is kept on the
request so the headers middleware can add ``X-RateLimit-*`` to every response, errors
included.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from vectorizer.errors import RateLimited
from vectorizer.security.roles import ANONYMOUS
from vectorizer.server.keys import GUARD, PRINCIPAL, RATE_DECISION


@web.middleware
async def rate_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    principal = request.get(PRINCIPAL)
    if principal is None or principal is ANONYMOUS:
        return await handler(request)
    guard = request.app[GUARD]
    rate = guard.rate_for(principal)
    if rate is None:
        return await handler(request)
    decision = guard.limiter.take(principal.id, rate.rps, rate.burst)
    request[RATE_DECISION] = decision
    if not decision.allowed:
        raise RateLimited(
            f"over the limit of {rate.rps:g} requests/s (burst {rate.burst}) for this credential",
            retry_after_s=round(decision.retry_after_s, 3),
        )
    return await handler(request)
