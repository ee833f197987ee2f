"""Token buckets, one per credential: ``rps`` tokens a second, at most ``burst`` held.

A request takes one token or is refused with the time until one is there. Buckets live
in memory only (each node limits on its own); the least recently used are dropped past
``max_buckets`` (a dropped bucket comes back full).

A rate may be no slower than ``MIN_RPS`` (the key store and the settings see to that),
and the waits announced are at most ``MAX_WAIT_S`` whatever the rate: divided by a rate
near the smallest float, a token's wait is infinite, and a header that cannot be
written turns every answer to the credential into a 500.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from vectorizer.errors import MAX_WAIT_S

# The slowest limit that can be set: one request in 100 000 s, a little more than a day
# (one a day is 1/86400 = 1.16e-5). Slower is no rate a client could plan by.
MIN_RPS = 1e-5


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: float  # sustained requests per second
    remaining: int  # requests that would pass right now
    reset_s: float  # until the bucket is full again
    retry_after_s: float  # until the next request would pass (0 when allowed)

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": f"{self.limit:g}",
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(math.ceil(self.reset_s)),
        }


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(
        self, clock: Callable[[], float] = time.monotonic, max_buckets: int = 100_000
    ) -> None:
        self._clock = clock
        self._max = max_buckets
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, key: str, rps: float, burst: int) -> Decision:
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(burst), now)
            if len(self._buckets) > self._max:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.updated) * rps)
            bucket.updated = now
        allowed = bucket.tokens >= 1.0
        if allowed:
            bucket.tokens -= 1.0
        return Decision(
            allowed=allowed,
            limit=rps,
            remaining=int(bucket.tokens),
            reset_s=_wait(burst - bucket.tokens, rps),
            retry_after_s=0.0 if allowed else _wait(1.0 - bucket.tokens, rps),
        )

    def __len__(self) -> int:
        return len(self._buckets)


def _wait(tokens: float, rps: float) -> float:
    """Seconds until ``tokens`` more are in the bucket, at most ``MAX_WAIT_S``. Compared
    before dividing, so that a rate below ``MIN_RPS`` stored before it was enforced (in a
    key file, say), or one of 0, is a long wait rather than an overflow."""
    return tokens / rps if rps * MAX_WAIT_S > tokens else float(MAX_WAIT_S)
