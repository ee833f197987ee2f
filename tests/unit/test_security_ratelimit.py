"""Token buckets: the burst passes at once, then the rate; headers say where one stands."""

from __future__ import annotations

from vectorizer.security.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_rate() -> None:
    clock = Clock()
    rl = RateLimiter(clock=clock)
    passed = sum(rl.take("k", 10, 5).allowed for _ in range(20))
    assert passed == 5
    refused = rl.take("k", 10, 5)
    assert not refused.allowed and 0 < refused.retry_after_s <= 0.1
    clock.now += 1.0  # ten more tokens, capped at the burst
    assert sum(rl.take("k", 10, 5).allowed for _ in range(20)) == 5
    # Over a long run the accepted rate is the configured one.
    accepted = 0
    for _ in range(10_000):
        clock.now += 0.001
        accepted += rl.take("k", 10, 5).allowed
    assert 99 <= accepted <= 101


def test_credentials_have_their_own_buckets_and_limits() -> None:
    rl = RateLimiter(clock=Clock())
    assert sum(rl.take("a", 1, 2).allowed for _ in range(5)) == 2
    assert sum(rl.take("b", 1, 4).allowed for _ in range(5)) == 4


def test_headers() -> None:
    clock = Clock()
    rl = RateLimiter(clock=clock)
    d = rl.take("k", 50, 100)
    assert d.headers() == {
        "X-RateLimit-Limit": "50",
        "X-RateLimit-Remaining": "99",
        "X-RateLimit-Reset": "1",
    }
    for _ in range(99):
        rl.take("k", 50, 100)
    d = rl.take("k", 50, 100)
    assert not d.allowed and d.headers()["X-RateLimit-Remaining"] == "0"
    assert d.headers()["X-RateLimit-Reset"] == "2"


def test_memory_is_bounded() -> None:
    rl = RateLimiter(clock=Clock(), max_buckets=100)
    for i in range(1000):
        rl.take(str(i), 1, 1)
    assert len(rl) == 100
