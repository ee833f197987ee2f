"""Memory cgroups for tests: a real memory limit around a server process, as a
container runtime sets one, so that a test can show what happens at the limit."""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MOUNT = Path("/sys/fs/cgroup")


def _own_memory_cgroup() -> tuple[Path, str] | None:
    """This process's memory cgroup directory and the name of its limit file."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):  # v1
            return MOUNT / "memory" / path.lstrip("/"), "memory.limit_in_bytes"
        if controllers == "" and (MOUNT / "cgroup.controllers").exists():  # v2 only
            here = MOUNT / path.lstrip("/")
            with contextlib.suppress(OSError):
                if "memory" in (here / "cgroup.subtree_control").read_text().split():
                    return here, "memory.max"
    return None


@dataclass(frozen=True)
class MemoryCgroup:
    path: Path
    limit_file: str  # memory.max (v2) or memory.limit_in_bytes (v1)

    def set_limit(self, nbytes: int) -> None:
        (self.path / self.limit_file).write_text(str(nbytes))


@contextlib.contextmanager
def memory_cgroup(limit: int) -> Iterator[MemoryCgroup | None]:
    """A new cgroup below this process's own, limited to ``limit`` bytes of memory; None
    where this machine lets no one make one (not root, or cgroup v2 without the memory
    controller delegated here). Removed afterwards (its processes must have ended)."""
    own = _own_memory_cgroup()
    if own is None:
        yield None
        return
    parent, limit_file = own
    group = parent / f"vectorizer-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        group.mkdir()
    except OSError:
        yield None
        return
    try:
        made = MemoryCgroup(group, limit_file)
        made.set_limit(limit)
        yield made
    finally:
        for _ in range(50):  # a killed process leaves its cgroup a moment after wait()
            try:
                group.rmdir()
                break
            except OSError:
                time.sleep(0.1)
