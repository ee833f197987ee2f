"""Mount points the kubelet had to create on the host filesystem.

A bind mount needs an existing target; when a mountPath (say /data) is missing
on the host it is created there (empty), recorded in <state-dir>/mountpoints.json,
and removed again at shutdown, unless something was put into it. The record
lets `Cluster.stop()` clean up after a kubelet that was killed.
"""

import contextlib
import json
from pathlib import Path

RECORD = "mountpoints.json"


class MountpointRecord:
    def __init__(self, state_dir: Path) -> None:
        self.file = state_dir / RECORD
        self.paths: set[Path] = set()

    def add(self, target: Path) -> None:
        """Record the topmost path that creating `target` adds to the host, if any."""
        if target.exists():
            return
        top = target
        while not top.parent.exists():
            top = top.parent
        if top not in self.paths:
            self.paths.add(top)
            self.file.write_text(json.dumps(sorted(map(str, self.paths))))


def remove_recorded(state_dir: Path) -> None:
    try:
        paths = [Path(p) for p in json.loads((state_dir / RECORD).read_text())]
    except (OSError, ValueError):
        return
    for top in sorted(paths, key=lambda p: -len(p.parts)):
        _remove_empty(top)
    (state_dir / RECORD).unlink(missing_ok=True)


def _remove_empty(top: Path) -> None:
    if top.is_dir():
        for sub in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                sub.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()
    elif top.is_file() and top.stat().st_size == 0:
        top.unlink()
