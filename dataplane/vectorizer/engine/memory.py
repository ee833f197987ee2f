"""How much memory this node may use and how much it uses: the memory guard's inputs.

A container's memory is counted in its cgroup; at the limit the kernel first reclaims
page cache (the log's and the snapshots' pages) and then kills the process. A node
killed that way restarts, replays its log into the same memory and is killed again, so
the store refuses writes that add data before that point (``Store._check_memory``).
Only anonymous memory (vectors, the graph, ids and payloads: the heap) cannot be
reclaimed, so that is what the guard counts.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

import psutil

# cgroup v1 writes "no limit" as the largest page-aligned 63-bit number; anything this
# large is no limit in practice.
_UNLIMITED = 1 << 62


def cgroup_limit(
    proc: Path = Path("/proc/self"), mount: Path = Path("/sys/fs/cgroup")
) -> int | None:
    """The smallest memory limit on this process's cgroup and its ancestors (v1 or v2),
    or None when there is none (or no cgroup file system to read)."""
    try:
        lines = (proc / "cgroup").read_text().splitlines()
    except OSError:
        return None
    limits: list[int] = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # the unified (v2) hierarchy
            limits += _limits_up(mount, path, "memory.max")
        elif "memory" in controllers.split(","):
            limits += _limits_up(mount / "memory", path, "memory.limit_in_bytes")
    return min(limits, default=None)


def _limits_up(root: Path, path: str, name: str) -> list[int]:
    """The limits in ``name`` from the cgroup at ``path`` up to the hierarchy's root.

    In a container without its own cgroup namespace ``path`` is the host's, and only the
    root of the mount (the container's own cgroup) exists: every level is looked at."""
    parts = PurePosixPath(path).parts[1:]
    found = []
    for depth in range(len(parts), -1, -1):
        value = _read_limit(root.joinpath(*parts[:depth], name))
        if value is not None:
            found.append(value)
    return found


def _read_limit(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if not text.isdigit():  # "max" (v2: no limit)
        return None
    value = int(text)
    return value if value < _UNLIMITED else None


def physical_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def memory_limit() -> int:
    """What this process may use before the kernel kills it: its cgroup's limit or the
    machine's memory, whichever is smaller."""
    limit = cgroup_limit()
    total = physical_memory()
    return total if limit is None else min(limit, total)


def anonymous_resident(status: Path = Path("/proc/self/status")) -> int:
    """Resident anonymous memory of this process (Linux's ``RssAnon``); elsewhere the
    whole resident set."""
    try:
        with status.open("rb") as f:
            for line in f:
                if line.startswith(b"RssAnon:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(psutil.Process().memory_info().rss)
