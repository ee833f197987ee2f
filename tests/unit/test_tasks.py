"""Stopping tasks: the stopper's own cancellation is never swallowed with theirs."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from vectorizer.tasks import stop


async def slow_to_stop() -> None:
    try:
        await asyncio.sleep(10)
    finally:
        await asyncio.sleep(0.05)  # cleaning up takes a moment, as a websocket's close does


async def stopping_its_helper(stopper: str, ended: list[str]) -> None:
    """Like a replica's follower: its link fails, and while it stops its helper task it is
    itself cancelled (a promotion). It must end, not carry on as if never cancelled."""
    helper = asyncio.create_task(slow_to_stop())
    await asyncio.sleep(0)
    try:
        raise ConnectionError("the link failed")
    except ConnectionError:
        pass
    finally:
        if stopper == "stop":
            await stop(helper)
        else:
            helper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await helper
    ended.append("carried on")
    await asyncio.sleep(10)


@pytest.mark.parametrize("stopper", ["stop", "suppress"])
async def test_a_cancel_that_comes_while_stopping_a_helper_is_kept(stopper: str) -> None:
    ended: list[str] = []
    task = asyncio.create_task(stopping_its_helper(stopper, ended))
    await asyncio.sleep(0.01)  # it is waiting for its helper now
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=1)
    if stopper == "stop":
        assert task in done and task.cancelled() and not ended
    else:  # the old way: the cancel is swallowed and the task runs on
        assert task not in done and ended == ["carried on"]
        task.cancel()
        await asyncio.wait([task])


async def test_a_task_that_failed_raises_its_error() -> None:
    async def fails() -> None:
        raise ValueError("broken")

    task = asyncio.create_task(fails())
    await asyncio.sleep(0)
    with pytest.raises(ValueError, match="broken"):
        await stop(task)
    await stop()  # nothing to stop
