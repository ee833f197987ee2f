"""Keep the event loop polling its sockets for a moment after each answer.

An idle event loop sleeps in ``epoll_wait``; the next request must then wake its CPU
(on a virtual machine an exit to the hypervisor and back, and caches gone cold), which
costs a sequential client ~15% of its round trip on a 2-core VM. After each answer the
loop instead polls without sleeping for ``window`` seconds: a client that sends its next
request within that window finds the loop awake. ScyllaDB's Seastar does the same
(``--idle-poll-time-us``, 200 µs by default). A request in flight keeps the loop polling
too, for up to ``IN_FLIGHT_WINDOWS`` windows after it began: a write waiting for its
fsync (a thread's work, ~150 µs) is then answered without a wake-up; a longer wait
(a slow disk, a replica's confirmation, a stream) sleeps as before.

The cost is CPU: at most a few windows per request, none while no requests come. A
loop that is busy anyway polls without sleeping regardless. Spinning only pays where the
process has a CPU to itself, so it is off when fewer than two CPUs are available (CPU
affinity or a cgroup quota): there it would take time from the client or eat the
quota.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)

MIN_CPUS = 2.0
IN_FLIGHT_WINDOWS = 5
CGROUP_ROOT = Path("/sys/fs/cgroup")


class IdlePoller:
    """Polls after each answer for ``window_s``, and while a request is in flight (one
    waiting for its fsync, say) for up to ``IN_FLIGHT_WINDOWS`` windows after it began."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self.in_flight_s = window_s * IN_FLIGHT_WINDOWS
        self._until = 0.0  # poll until then whatever else happens
        self._in_flight = 0
        self._in_flight_until = 0.0  # poll until then while a request is in flight
        self._polling = False

    @property
    def polling(self) -> bool:
        return self._polling

    def began(self, now: float) -> None:
        """A request began at ``now`` (``time.perf_counter()``)."""
        self._in_flight += 1
        self._in_flight_until = now + self.in_flight_s
        self._start()

    def answered(self, now: float) -> None:
        """A request that ``began`` was answered at ``now``."""
        self._in_flight -= 1
        self._until = now + self.window_s
        self._start()

    def _start(self) -> None:
        if not self._polling:
            self._polling = True
            asyncio.get_running_loop().call_soon(self._poll)

    def _poll(self) -> None:
        # A ready callback makes the loop's next wait for I/O a poll that returns at once.
        now = time.perf_counter()
        if now < self._until or (self._in_flight and now < self._in_flight_until):
            asyncio.get_running_loop().call_soon(self._poll)
        else:
            self._polling = False


def available_cpus(cgroup_root: Path = CGROUP_ROOT) -> float:
    """CPUs this process may use: its affinity, capped by a cgroup CPU quota if any."""
    cpus = float(len(os.sched_getaffinity(0)))
    quota = _cgroup_quota(cgroup_root)
    return min(cpus, quota) if quota is not None else cpus


def _cgroup_quota(root: Path) -> float | None:
    """The cgroup v2 (``cpu.max``) or v1 (``cpu.cfs_quota_us``) quota in CPUs, or None."""
    try:
        quota, period = (root / "cpu.max").read_text().split()
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota_us <= 0 else quota_us / period_us


def idle_poller(window_us: int, cpus: float | None = None) -> IdlePoller | None:
    """A poller for ``window_us`` microseconds, or None when off (0) or not worth it."""
    if window_us <= 0:
        return None
    cpus = available_cpus() if cpus is None else cpus
    if cpus < MIN_CPUS:
        log.info("idle polling off: %.2g CPU(s) available, it needs %g", cpus, MIN_CPUS)
        return None
    return IdlePoller(window_us / 1e6)
