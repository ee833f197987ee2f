"""Start long-running helper processes and stop them again, by pid only.

Every process gets its own session (so its pid is also its process-group id)
and a log file; stopping sends SIGTERM to that group, then SIGKILL after a grace
period. A process is recorded with its start time from /proc so that a later,
separate `down` never signals a pid the kernel has since reused.
"""

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path


def start_ticks(pid: int) -> int | None:
    """The process start time in clock ticks since boot, or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22; the command name (field 2) may contain spaces, so split after ')'.
    return int(stat.rsplit(")", 1)[1].split()[19])


@dataclass(frozen=True)
class PidRecord:
    """A process identified by pid and start time, safe to signal later."""

    name: str
    pid: int
    ticks: int

    def alive(self) -> bool:
        return start_ticks(self.pid) == self.ticks


def stop_pid(record: PidRecord, grace: float = 10.0) -> None:
    """SIGTERM the record's process group, SIGKILL it after `grace` seconds."""
    if not record.alive():
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(record.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while record.alive() and time.monotonic() < deadline:
        _reap(record.pid)
        time.sleep(0.05)
    if record.alive():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(record.pid, signal.SIGKILL)
        while record.alive():
            _reap(record.pid)
            time.sleep(0.05)


def _reap(pid: int) -> None:
    # A zombie child still has its /proc entry; collect it if it is ours.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


@dataclass
class Process:
    """A started helper process with its log file."""

    name: str
    popen: "subprocess.Popen[bytes]"
    log_path: Path
    record: PidRecord

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace: float = 10.0) -> None:
        stop_pid(self.record, grace)
        self.popen.poll()


def spawn(
    name: str,
    argv: Sequence[str | os.PathLike[str]],
    log_dir: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    die_with_parent: str | None = None,
) -> Process:
    """Start `argv` in a new session, stdout and stderr appended to <log_dir>/<name>.log.

    With `die_with_parent="KILL"` (or "TERM"), the kernel sends that signal to
    the process when the starting thread dies, even by SIGKILL
    (setpriv --pdeathsig; exec keeps the pid).
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    if die_with_parent:
        argv = ["setpriv", "--pdeathsig", die_with_parent, "--", *argv]
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log:
        popen = subprocess.Popen(
            [os.fspath(a) for a in argv],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=None if env is None else dict(env),
            cwd=cwd,
        )
    ticks = start_ticks(popen.pid) or 0
    return Process(name, popen, log_path, PidRecord(name, popen.pid, ticks))


def write_pidfile(path: Path, records: Sequence[PidRecord]) -> None:
    path.write_text(json.dumps([asdict(r) for r in records], indent=2))


def read_pidfile(path: Path) -> list[PidRecord]:
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    return [PidRecord(str(r["name"]), int(r["pid"]), int(r["ticks"])) for r in raw]
