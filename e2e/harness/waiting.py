"""Polling helpers for tests: wait until the cluster reaches a state."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T | None]],
    what: str,
    limit: float = 60.0,
    interval: float = 0.25,
) -> T:
    """Call `probe` until it returns something truthy; fail with `what` after `limit` seconds."""
    deadline = time.monotonic() + limit
    last: T | None = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval)
    msg = f"timed out after {limit:.0f}s waiting for {what} (last: {last!r})"
    raise AssertionError(msg)
