"""Stopping asyncio tasks without losing a cancellation."""

from __future__ import annotations

import asyncio
from typing import Any


async def stop(*tasks: asyncio.Task[Any]) -> None:
    """Cancel ``tasks`` and wait until they have ended.

    The usual ``with suppress(CancelledError): await task`` is wrong wherever the caller
    may itself be cancelled meanwhile: the caller's own CancelledError comes out of the
    same ``await``, is swallowed with the task's, and the caller carries on as if it had
    never been asked to stop (a replica's follower, stopping its acknowledger just as it
    was stopped itself, did exactly that, and a promotion waited for it forever).
    ``asyncio.wait`` does not raise what the tasks raise, so only the caller's own
    cancellation comes out. A task that failed (rather than being cancelled) has its
    error raised here, as awaiting it would.
    """
    for task in tasks:
        task.cancel()
    if not tasks:
        return
    await asyncio.wait(tasks)
    for task in tasks:
        if not task.cancelled() and (error := task.exception()) is not None:
            raise error
