"""The level-based loop: schedules, wakes, backs off, runs only while leading."""

from __future__ import annotations

import asyncio
import contextlib

from vectorizer_operator.leader import NotLeading
from vectorizer_operator.loop import ClusterLoop
from vectorizer_operator.metrics import OperatorMetrics
from vectorizer_operator.reconcile.cluster import Result


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class Recorder:
    def __init__(self, results: dict[tuple[str, str], Result | Exception]) -> None:
        self.results = results
        self.calls: list[tuple[str, str]] = []

    async def __call__(self, namespace: str, name: str) -> Result:
        self.calls.append((namespace, name))
        result = self.results.get((namespace, name), Result(10.0))
        if isinstance(result, Exception):
            raise result
        return result


async def tick(loop: ClusterLoop) -> None:
    await loop.run_once()
    await loop.drain()


async def test_new_clusters_run_at_once_then_on_their_requeue() -> None:
    clock, keys = Clock(), [("db", "a"), ("db", "b")]
    rec = Recorder({("db", "b"): Result(2.0)})
    loop = ClusterLoop(rec, keys=lambda: keys, clock=clock)
    await tick(loop)
    assert sorted(rec.calls) == keys
    rec.calls.clear()
    clock.t = 2.0
    await tick(loop)
    assert rec.calls == [("db", "b")]
    clock.t = 3.0
    rec.calls.clear()
    await tick(loop)
    assert rec.calls == []
    clock.t = 10.0
    await tick(loop)
    assert sorted(rec.calls) == keys  # a after its 10 s, b after 2 s again


async def test_wake_runs_a_cluster_now() -> None:
    clock = Clock()
    rec = Recorder({})
    loop = ClusterLoop(rec, keys=lambda: [("db", "a")], clock=clock)
    await tick(loop)
    rec.calls.clear()
    loop.wake("db", "a")
    await tick(loop)
    assert rec.calls == [("db", "a")]


async def test_errors_back_off() -> None:
    clock = Clock()
    rec = Recorder({("db", "a"): RuntimeError("boom")})
    loop = ClusterLoop(rec, keys=lambda: [("db", "a")], clock=clock)
    await tick(loop)
    clock.t = 0.5
    await tick(loop)
    assert len(rec.calls) == 1
    clock.t = 1.0
    await tick(loop)
    assert len(rec.calls) == 2  # 1 s after the first failure, then 2 s, 5 s, ...


async def test_a_gone_cluster_is_dropped_until_woken() -> None:
    clock = Clock()
    rec = Recorder({("db", "a"): Result(None)})
    loop = ClusterLoop(rec, keys=lambda: [("db", "a")], clock=clock)
    await tick(loop)
    clock.t = 100
    await tick(loop)
    assert len(rec.calls) == 1
    loop.wake("db", "a")
    await tick(loop)
    assert len(rec.calls) == 2


async def test_followers_do_nothing_until_elected() -> None:
    clock, leading = Clock(), [False]
    rec = Recorder({})
    loop = ClusterLoop(rec, keys=lambda: [("db", "a")], is_leader=lambda: leading[0], clock=clock)
    await tick(loop)
    assert rec.calls == []
    leading[0] = True
    loop.wake_all()
    await tick(loop)
    assert rec.calls == [("db", "a")]


async def test_one_pass_per_cluster_at_a_time() -> None:
    gate = asyncio.Event()
    calls = 0

    async def slow(namespace: str, name: str) -> Result:
        nonlocal calls
        calls += 1
        await gate.wait()
        return Result(0.0)

    loop = ClusterLoop(slow, keys=lambda: [("db", "a")])
    await loop.run_once()
    loop.wake("db", "a")
    await loop.run_once()
    await asyncio.sleep(0)
    assert calls == 1
    gate.set()
    await loop.drain()


async def test_run_loops_until_cancelled() -> None:
    rec = Recorder({("db", "a"): Result(0.01)})
    loop = ClusterLoop(rec, keys=lambda: [("db", "a")], idle_s=0.05)
    task = asyncio.create_task(loop.run())
    await asyncio.sleep(0.2)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert len(rec.calls) >= 3 and loop.passes == len(rec.calls)


async def test_the_end_of_a_term_cancels_running_passes_and_reschedules_them() -> None:
    clock, leading = Clock(), [True]
    started, gate = asyncio.Event(), asyncio.Event()
    finished: list[str] = []

    async def hangs(namespace: str, name: str) -> Result:
        started.set()
        await gate.wait()
        finished.append(name)  # what a pass would do after the deadline
        return Result(10.0)

    loop = ClusterLoop(hangs, keys=lambda: [("db", "a")], is_leader=lambda: leading[0], clock=clock)
    await loop.run_once()
    await started.wait()
    clock.t = 7.0
    leading[0] = False
    loop.cancel_running()
    gate.set()
    await loop.drain()
    assert finished == [] and loop._due == {("db", "a"): 7.0}
    started.clear()
    leading[0] = True  # elected again: the pass starts afresh
    await loop.run_once()
    await started.wait()
    await loop.drain()
    assert finished == ["a"]


async def test_a_loop_that_finds_itself_no_longer_leading_cancels_its_passes() -> None:
    leading = [True]
    gate = asyncio.Event()

    async def hangs(namespace: str, name: str) -> Result:
        await gate.wait()
        return Result(10.0)

    loop = ClusterLoop(hangs, keys=lambda: [("db", "a")], is_leader=lambda: leading[0])
    await loop.run_once()
    await asyncio.sleep(0)
    leading[0] = False
    await loop.run_once()
    await loop.drain()
    assert loop.passes == 1 and ("db", "a") in loop._due


async def test_a_pass_stopped_for_not_leading_is_no_failure() -> None:
    clock = Clock()
    metrics = OperatorMetrics()
    rec = Recorder({("db", "a"): NotLeading("not the leader any more: not doing apply")})
    loop = ClusterLoop(rec, keys=lambda: [("db", "a")], clock=clock, metrics=metrics)
    await tick(loop)
    assert loop._failures == {} and loop._due == {("db", "a"): 0.0}  # no back-off
    assert metrics.registry.get_sample_value("vectorizer_operator_reconcile_errors_total") == 0
