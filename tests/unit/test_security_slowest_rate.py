"""The slowest rate limit: refused below it, and no rate, however small, overflows a wait.

Divided by a rate near the smallest float, the wait for a token is infinite; a header
made of it cannot be written, and every answer to the credential became aiohttp's plain
500 (after the audit line had recorded a 200).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from vectorizer.errors import RateLimited, ValidationError
from vectorizer.security.keys import KeyStore
from vectorizer.security.ratelimit import RateLimiter
from vectorizer.settings import load

TINY = (5e-324, 1e-310, 1e-300, 9.9e-6)  # the first two overflowed, the third said 1e30 s
LONGEST = "2147483648"  # 2**31 s, the longest wait announced


def test_a_key_slower_than_the_slowest_rate_is_refused(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    for rps in TINY:
        with pytest.raises(ValidationError) as err:
            store.create("t", "viewer", rate_limit_rps=rps)
        assert err.value.field == "rate_limit_rps" and "1e-05" in err.value.message
    assert store.list() == []
    for rps in (1e-5, 1 / 86400):  # one request a day is a rate
        record, _ = store.create("daily", "viewer", rate_limit_rps=rps)
        assert record.rate_limit_rps == rps


def test_a_node_slower_than_the_slowest_rate_does_not_start() -> None:
    for rps in TINY:
        with pytest.raises(ValidationError) as err:
            load({"rate_limit_rps": repr(rps)}, env={})
        assert err.value.field == "rate_limit_rps" and "0 (no limit)" in err.value.message
    assert load({"rate_limit_rps": "0"}, env={}).rate_limit_rps == 0
    assert load({"rate_limit_rps": "1e-5"}, env={}).rate_limit_rps == 1e-5


@pytest.mark.parametrize("rps", (5e-324, 1e-310, 1e-300, 0.0))
def test_no_rate_overflows_a_wait(rps: float) -> None:
    """A rate stored before the bound (a key file) is honoured: waits just get long."""
    limiter = RateLimiter()
    passed = limiter.take("k", rps, 1)
    assert passed.allowed and passed.headers()["X-RateLimit-Reset"] == LONGEST
    refused = limiter.take("k", rps, 1)
    assert not refused.allowed and refused.headers()["X-RateLimit-Reset"] == LONGEST
    assert math.isfinite(refused.retry_after_s)
    error = RateLimited("over", retry_after_s=round(refused.retry_after_s, 3))
    assert error.headers() == {"Retry-After": LONGEST}


def test_retry_after_is_whole_seconds_within_bounds() -> None:
    cases = [(0.2, "1"), (1.5, "2"), (2**31 - 1, "2147483647")]
    cases += [(math.inf, LONGEST), (math.nan, LONGEST), (1e300, LONGEST)]  # (once overflows)
    for retry, header in cases:
        assert RateLimited("over", retry_after_s=retry).headers() == {"Retry-After": header}
