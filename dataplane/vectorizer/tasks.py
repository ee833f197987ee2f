"""Stopping asyncio tasks without losing a cancellation, and work that must not stop
half-way."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")


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


async def to_the_end(work: Awaitable[T]) -> T:
    """Await ``work``; cancelled meanwhile, wait for it to end first and then raise the
    cancellation: for work that must not stop half-way (a thread cannot be cancelled
    anyway; files half-replaced must be finished)."""
    future = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await asyncio.wait({future})
        raise
