"""The level-based loop: every known cluster is reconciled again and again.

Each cluster has a due time. A reconcile says when it wants to be looked at again
(soon while something is in progress, ``resync`` when all is well); watch events
wake a cluster at once; errors back off. Only the leader reconciles: no pass starts
while it does not lead, and when its term ends the running passes are cancelled
(``cancel_running``) or, if they get to act first, stopped by ``NotLeading`` from the
leader-only ports (see leader.py); either way the cluster is due again at once, for
the next term. At most one reconcile per cluster runs at a time, and a few clusters
run concurrently.

This is the "timer" of the operator. It is not a kopf timer because those put a
finalizer on every cluster, so that deleting a cluster would hang while the operator
is down (nolar/kopf#833, #1001).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable

from vectorizer.tasks import stop
from vectorizer_operator.leader import NotLeading
from vectorizer_operator.metrics import OperatorMetrics
from vectorizer_operator.reconcile.cluster import Result

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name)
BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)


class ClusterLoop:
    def __init__(
        self,
        reconcile: Callable[[str, str], Awaitable[Result]],
        *,
        keys: Callable[[], Iterable[Key]],
        is_leader: Callable[[], bool] = lambda: True,
        concurrency: int = 4,
        idle_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        metrics: OperatorMetrics | None = None,
    ) -> None:
        self._reconcile = reconcile
        self.metrics = metrics
        self._keys = keys
        self._is_leader = is_leader
        self._limit = concurrency
        self._idle_s = idle_s
        self._clock = clock
        self._due: dict[Key, float] = {}
        self._failures: dict[Key, int] = {}
        self._running: dict[Key, asyncio.Task[None]] = {}
        self._seen: set[Key] = set()
        self._wakeup = asyncio.Event()
        self.passes = 0
        self.last_pass_at: float | None = None

    def wake(self, namespace: str, name: str) -> None:
        self._due[(namespace, name)] = self._clock()
        self._wakeup.set()

    def wake_all(self) -> None:
        now = self._clock()
        for key in set(self._keys()) | set(self._due):
            self._due[key] = now
        self._wakeup.set()

    def _schedule_new(self) -> None:
        """Clusters that appeared since the last look are due now."""
        now = self._clock()
        current = set(self._keys())
        for key in current - self._seen:
            if key not in self._running:
                self._due.setdefault(key, now)
        self._seen = current

    def _ready(self) -> list[Key]:
        now = self._clock()
        free = self._limit - len(self._running)
        ready = sorted(
            (k for k, t in self._due.items() if t <= now and k not in self._running),
            key=lambda k: self._due[k],
        )
        return ready[: max(free, 0)]

    async def _one(self, key: Key) -> None:
        started = self._clock()
        try:
            result = await self._reconcile(*key)
            log.debug("reconciled %s/%s in %.2fs: %s", *key, self._clock() - started, result.phase)
        except asyncio.CancelledError:
            raise
        except NotLeading as err:
            # Not a failure: the term ended mid-pass. Every action is idempotent, so the
            # next leader (maybe this replica again) simply starts the pass afresh.
            log.info("reconciling %s/%s stopped: %s", *key, err)
            self._due[key] = self._clock()
            return
        except Exception:
            if self.metrics is not None:
                self.metrics.observe_reconcile(*key, self._clock() - started, error=True)
            failures = self._failures.get(key, 0)
            delay = BACKOFF_S[min(failures, len(BACKOFF_S) - 1)]
            self._failures[key] = failures + 1
            log.exception("reconciling %s/%s failed; again in %.0fs", *key, delay)
            self._due[key] = self._clock() + delay
            return
        finally:
            self._running.pop(key, None)
            self.passes += 1
            self.last_pass_at = self._clock()
            self._wakeup.set()
        self._failures.pop(key, None)
        if self.metrics is not None:
            self.metrics.observe_reconcile(
                *key,
                self._clock() - started,
                phase=result.phase,
                gone=result.requeue_after is None,
            )
        if result.requeue_after is None:
            return  # gone: only a watch event or its return to the index brings it back
        again = self._clock() + result.requeue_after
        # A wake-up while it ran is already in _due: keep the earlier of the two.
        self._due[key] = min(self._due.get(key, again), again)

    def _sleep_for(self) -> float:
        if not self._due:
            return self._idle_s
        return min(max(min(self._due.values()) - self._clock(), 0.0), self._idle_s)

    def cancel_running(self) -> None:
        """Cancel every running pass now (the term ended); each is due again at once."""
        now = self._clock()
        for key, task in self._running.items():
            if task.cancel():
                log.info("reconciling %s/%s cancelled: no longer the leader", *key)
                self._due[key] = now

    async def run_once(self) -> None:
        """Start every due reconcile (tests drive the loop with this)."""
        self._schedule_new()
        if not self._is_leader():
            self.cancel_running()
            return
        for key in self._ready():
            del self._due[key]  # consumed; _one schedules the next pass
            self._running[key] = asyncio.create_task(self._one(key), name=f"reconcile {key}")

    async def run(self) -> None:
        try:
            while True:
                self._wakeup.clear()
                await self.run_once()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._sleep_for()):
                        await self._wakeup.wait()
        finally:
            await self.stop()

    async def stop(self) -> None:
        await stop(*self._running.values())

    async def drain(self) -> None:
        """Wait for the running reconciles (tests)."""
        while self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)
