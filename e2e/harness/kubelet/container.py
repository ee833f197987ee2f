"""One container as a local process: start, probe, restart, stop.

The process is started as
    nsenter --net=<pod netns> -- unshare --mount --uts -- sh -c INIT …
where INIT sets the hostname, bind-mounts the volumes at their mountPaths in
the new (private) mount namespace and execs the container's argv. Each exec
replaces the previous program, so the pid we hold is the container's own, and
as a session leader it is also the process group we signal.
"""

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from vectorizer.tasks import stop

from ..kube import JsonDict
from .clock import now
from .env import ConfigError
from .probes import ProbeTarget, run_probe
from .volumes import Mount, VolumeError

log = logging.getLogger(__name__)

_INIT = r"""
set -e
h=$1 w=$2 n=$3
shift 3
[ -z "$h" ] || hostname "$h"
while [ "$n" -gt 0 ]; do
  if [ -d "$1" ]; then mkdir -p "$2"; else mkdir -p "$(dirname "$2")"; [ -e "$2" ] || : >"$2"; fi
  mount --bind "$1" "$2"
  [ "$3" != ro ] || mount -o remount,bind,ro "$2"
  shift 3; n=$((n - 1))
done
[ -z "$w" ] || cd "$w"
exec "$@"
"""
# First line of each run in the container's log file (server.py splits runs on it).
LOG_MARKER = b"--- process-kubelet: start "
BACKOFF_START = 1.0
BACKOFF_MAX = 20.0


def launch_argv(
    netns: str | None, hostname: str, workdir: str, mounts: Sequence[Mount], argv: Sequence[str]
) -> list[str]:
    """The command line that runs `argv` inside the pod's namespaces with its volumes mounted."""
    enter = ["nsenter", f"--net={netns}", "--"] if netns else []
    uts = ["--uts"] if netns else []  # hostNetwork pods keep the node's hostname
    binds = [x for m in mounts for x in (str(m.source), m.target, "ro" if m.read_only else "rw")]
    return [
        # Should the kubelet die without stopping its pods, the kernel kills them.
        "setpriv",
        "--pdeathsig",
        "KILL",
        "--",
        *enter,
        "unshare",
        "--mount",
        *uts,
        "--propagation",
        "private",
        "--",
        "/bin/sh",
        "-c",
        _INIT,
        "pod-init",
        hostname if netns else "",
        workdir,
        str(len(mounts)),
        *binds,
        *argv,
    ]


@dataclass(frozen=True)
class Launch:
    argv: list[str]
    env: dict[str, str]
    cwd: str | None
    log_path: Path
    probe_target: ProbeTarget


def _terminated(code: int, started: str, container_id: str) -> JsonDict:
    state: JsonDict = {
        "exitCode": 128 - code if code < 0 else code,
        "reason": "Completed" if code == 0 else "Error",
        "startedAt": started,
        "finishedAt": now(),
        "containerID": container_id,
    }
    if code < 0:
        state["signal"] = -code
    return state


class ContainerRunner:
    """Runs one container until it is terminal under its restart policy, or stopped."""

    def __init__(
        self,
        spec: JsonDict,
        restart_policy: str,
        prepare: Callable[[], Awaitable[Launch]],
        notify: Callable[[], None],
        *,
        grace: float,
        is_init: bool = False,
    ) -> None:
        self.spec = spec
        self.grace = grace
        self.name = str(spec["name"])
        self.policy = restart_policy
        self.is_init = is_init
        self._prepare = prepare
        self._notify = notify
        self._stopping = False
        self._wake = asyncio.Event()
        self.proc: asyncio.subprocess.Process | None = None
        self.restart_count = 0
        self.state: JsonDict = {"waiting": {"reason": "ContainerCreating"}}
        self.last_state: JsonDict = {}
        self.started = False
        self.started_once = asyncio.Event()
        self.ready = False
        self.exit_code: int | None = None  # set once terminal
        self.ever_ran = False

    # -- status ---------------------------------------------------------------

    def status(self) -> JsonDict:
        container_id = f"process://{self.proc.pid}" if self.proc else ""
        status: JsonDict = {
            "name": self.name,
            "image": self.spec.get("image", ""),
            "imageID": "",
            "ready": self.ready,
            "started": self.started,
            "restartCount": self.restart_count,
            "state": self.state,
            "lastState": self.last_state,
        }
        if container_id:
            status["containerID"] = container_id
        return status

    def waiting(self, reason: str, message: str) -> None:
        self._set(state={"waiting": {"reason": reason, "message": message}})

    def _set(self, **changes: object) -> None:
        for key, value in changes.items():
            setattr(self, key, value)
        self._notify()

    # -- lifecycle --------------------------------------------------------------

    def _should_restart(self, code: int) -> bool:
        if code == 0:
            return self.policy == "Always" and not self.is_init
        return self.policy != "Never"

    async def run(self) -> None:
        backoff = BACKOFF_START
        while not self._stopping:
            try:
                launch = await self._prepare()
            except (ConfigError, VolumeError) as e:
                self._set(
                    state={"waiting": {"reason": "CreateContainerConfigError", "message": str(e)}}
                )
                await self._sleep(2.0)
                continue
            if self._stopping:  # stopped while preparing
                return
            started_at, t0 = now(), asyncio.get_running_loop().time()
            try:
                code = await self._run_once(launch, started_at)
            except OSError as e:
                log.warning("container %s failed to start: %s", self.name, e)
                self._set(state={"waiting": {"reason": "CreateContainerError", "message": str(e)}})
                code = 127
            if self._stopping or not self._should_restart(code):
                self.exit_code = code
                return
            if asyncio.get_running_loop().time() - t0 > 60:
                backoff = BACKOFF_START
            self.last_state = self.state
            message = f"back-off {backoff:.0f}s restarting failed container={self.name}"
            self._set(state={"waiting": {"reason": "CrashLoopBackOff", "message": message}})
            await self._sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX)
            if not self._stopping:
                self.restart_count += 1

    async def _run_once(self, launch: Launch, started_at: str) -> int:
        with launch.log_path.open("ab") as log_file:
            lead = b"\n" if log_file.tell() and not _ends_with_newline(launch.log_path) else b""
            log_file.write(lead + LOG_MARKER + f"#{self.restart_count} {started_at}\n".encode())
            log_file.flush()
            self.proc = await asyncio.create_subprocess_exec(
                *launch.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT,
                env=launch.env,
                cwd=launch.cwd,
                start_new_session=True,
            )
        self.ever_ran = True
        container_id = f"process://{self.proc.pid}"
        self._set(state={"running": {"startedAt": started_at}}, started=False, ready=False)
        probes = asyncio.create_task(self._probe(launch.probe_target), name=f"probes-{self.name}")
        try:
            code = await self.proc.wait()
        finally:
            await stop(probes)
        self._set(
            state={"terminated": _terminated(code, started_at, container_id)},
            started=False,
            ready=False,
        )
        return code

    async def _probe(self, target: ProbeTarget) -> None:
        """Startup probe first; then readiness and liveness side by side."""
        startup, readiness, liveness = (
            self.spec.get(k) for k in ("startupProbe", "readinessProbe", "livenessProbe")
        )
        if startup:
            passed = asyncio.Event()

            async def on_startup(ok: bool) -> None:
                if ok:
                    passed.set()
                else:
                    await self._kill(self.grace, "startup probe failed")

            task = asyncio.create_task(run_probe(startup, target, on_startup, initial=False))
            try:
                await passed.wait()
            finally:
                task.cancel()
        self._set(started=True, ready=not readiness)
        self.started_once.set()

        async def on_ready(ok: bool) -> None:
            self._set(ready=ok)

        async def on_live(ok: bool) -> None:
            if not ok:
                await self._kill(self.grace, "liveness probe failed")

        tasks = [
            run_probe(p, target, cb, initial=init)
            for p, cb, init in ((readiness, on_ready, False), (liveness, on_live, True))
            if p
        ]
        if tasks:
            await asyncio.gather(*tasks)

    async def _kill(self, grace: float, why: str) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        log.info("stopping container %s (pid %d): %s", self.name, proc.pid, why)
        _signal(proc.pid, signal.SIGTERM)
        try:
            async with asyncio.timeout(grace):
                await asyncio.shield(proc.wait())
        except TimeoutError:
            _signal(proc.pid, signal.SIGKILL)
            await proc.wait()

    async def stop(self, grace: float) -> None:
        """SIGTERM, then SIGKILL after `grace`; no restart afterwards."""
        self._stopping = True
        self._wake.set()
        await self._kill(grace, "pod is terminating")

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()


def _ends_with_newline(log_path: Path) -> bool:
    with log_path.open("rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def _signal(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
