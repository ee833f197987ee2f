"""Per-credential token buckets; a caller over its rate gets 429 with ``Retry-After``.

Checked after authentication (it keys on the principal). The decision is kept on the
exchange so that every response, errors included, carries ``X-RateLimit-*``.
"""

from __future__ import annotations

from vectorizer.errors import RateLimited
from vectorizer.security.guard import Guard
from vectorizer.security.roles import ANONYMOUS, Principal
from vectorizer.server.exchange import Exchange


def check_rate(ex: Exchange, guard: Guard, principal: Principal) -> None:
    if principal is ANONYMOUS:
        return
    rate = guard.rate_for(principal)
    if rate is None:
        return
    decision = guard.limiter.take(principal.id, rate.rps, rate.burst)
    ex.rate = decision
    if not decision.allowed:
        raise RateLimited(
            f"over the limit of {rate.rps:g} requests/s (burst {rate.burst}) for this credential",
            retry_after_s=round(decision.retry_after_s, 3),
        )
