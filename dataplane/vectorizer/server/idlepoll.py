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
SELF_CGROUP = Path("/proc/self/cgroup")


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


def available_cpus(cgroup_root: Path = CGROUP_ROOT, self_cgroup: Path = SELF_CGROUP) -> float:
    """CPUs this process may use: its affinity, capped by the tightest cgroup CPU quota
    on the way from its own cgroup up to the root (a pod's and a container's limit)."""
    cpus = float(len(os.sched_getaffinity(0)))
    quotas = [q for d in _cgroup_dirs(cgroup_root, self_cgroup) if (q := _quota(d)) is not None]
    return min([cpus, *quotas])


def _cgroup_dirs(root: Path, self_cgroup: Path) -> list[Path]:
    """The directories that may hold this process's CPU quota: cgroup v2 (``cpu.max``)
    and v1 (``cpu/…/cpu.cfs_quota_us``), from its own cgroup up to the root."""
    try:
        lines = self_cgroup.read_text().splitlines()
    except OSError:
        lines = []
    tops: list[tuple[Path, str]] = [(root, "/"), (root / "cpu", "/")]
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":  # v2
            tops.append((root, path))
        elif "cpu" in controllers.split(","):
            tops.append((root / "cpu", path))
    dirs: list[Path] = []
    for top, path in tops:
        here = Path(path)
        for rel in (here, *here.parents):
            dirs.append(top / str(rel).lstrip("/"))
    return list(dict.fromkeys(dirs))


def _quota(directory: Path) -> float | None:
    """The quota set in one cgroup directory, in CPUs, or None."""
    try:
        quota, period = (directory / "cpu.max").read_text().split()
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((directory / "cpu.cfs_quota_us").read_text())
        period_us = int((directory / "cpu.cfs_period_us").read_text())
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
