"""One pod: sandbox (netns + IP), volumes, init containers, containers, status, termination."""

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from vectorizer.tasks import stop

from ..kube import JsonDict, Kube, KubeError, path
from ..network import AddressPool, PodSandbox, create_sandbox, delete_sandbox
from .clock import now
from .config import KubeletConfig
from .container import ContainerRunner, Launch, launch_argv
from .dns import DOMAIN
from .env import EnvBuilder, expand
from .events import emit
from .mountpoints import MountpointRecord
from .probes import ProbeTarget
from .status import phase, pod_status
from .volumes import Mount, VolumeBuilder, VolumeError, container_mounts

log = logging.getLogger(__name__)
REFRESH_EVERY = 15.0


@dataclass
class NodeContext:
    """What all pods of a node share."""

    kube: Kube
    config: KubeletConfig
    pool: AddressPool
    mountpoints: MountpointRecord

    @property
    def node_ip(self) -> str:
        return str(self.config.gateway.ip)

    @property
    def apiserver(self) -> tuple[str, int]:
        """The apiserver as this kubelet reaches it (host, port), from its kubeconfig."""
        url = urlsplit(str(self.kube.api.configuration.host))
        return url.hostname or "127.0.0.1", url.port or 443

    def service_env(self) -> dict[str, str]:
        """What the kubelet injects for the `kubernetes` Service (see apiproxy.py)."""
        _, port = self.apiserver
        host = self.node_ip
        return {
            "KUBERNETES_SERVICE_HOST": host,
            "KUBERNETES_SERVICE_PORT": str(port),
            "KUBERNETES_SERVICE_PORT_HTTPS": str(port),
            "KUBERNETES_PORT": f"tcp://{host}:{port}",
            "KUBERNETES_PORT_443_TCP": f"tcp://{host}:{port}",
            "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
            "KUBERNETES_PORT_443_TCP_PORT": str(port),
            "KUBERNETES_PORT_443_TCP_ADDR": host,
        }


def _is_sidecar(container: JsonDict) -> bool:
    return container.get("restartPolicy") == "Always"


class PodWorker:
    def __init__(self, ctx: NodeContext, pod: JsonDict) -> None:
        self.ctx = ctx
        self.pod = pod
        meta, spec = pod["metadata"], pod["spec"]
        self.uid = str(meta["uid"])
        self.ref = f"{meta['namespace']}/{meta['name']}"
        self.dir = ctx.config.pods_dir / f"{meta['namespace']}_{meta['name']}_{self.uid}"
        self.grace = float(spec.get("terminationGracePeriodSeconds", 30))
        policy = str(spec.get("restartPolicy", "Always"))
        self.init_runners = [
            ContainerRunner(
                c,
                "Always" if _is_sidecar(c) else policy,
                self._preparer(c),
                self.changed,
                grace=self.grace,
                is_init=not _is_sidecar(c),
            )
            for c in spec.get("initContainers", [])
        ]
        self.runners = [
            ContainerRunner(c, policy, self._preparer(c), self.changed, grace=self.grace)
            for c in spec["containers"]
        ]
        self.sandbox: PodSandbox | None = None
        self.pod_ip: str | None = None
        self.volumes: dict[str, Path] = {}
        self.etc_mounts: list[Mount] = []
        self.sandbox_ready = False
        self.init_done = not self.init_runners
        self.init_failed = False
        self.terminating = False
        self.start_time = now()
        self._dirty = asyncio.Event()
        self._last_status: JsonDict | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._main: asyncio.Task[None] | None = None
        self._torn_down = False

    # -- entry points used by the kubelet ---------------------------------------

    def start(self) -> None:
        self._spawn(self._status_loop(), "status")
        self._main = self._spawn(self._run(), "main")

    def update(self, pod: JsonDict) -> None:
        self.pod = pod
        self.changed()  # readiness gates may have flipped
        if pod["metadata"].get("deletionTimestamp") and not self.terminating:
            self._spawn(self.terminate(), "terminate")

    def changed(self) -> None:
        self._dirty.set()

    async def terminate(self) -> None:
        """Graceful deletion: stop the containers within the grace period, then remove the pod."""
        meta = self.pod["metadata"]
        grace = float(meta.get("deletionGracePeriodSeconds", self.grace))
        await self._stop(grace)
        await self._sync_status()
        with contextlib.suppress(KubeError):
            await self.ctx.kube.delete(
                path("pods", meta["namespace"], meta["name"]),
                {"gracePeriodSeconds": 0, "preconditions": {"uid": self.uid}},
            )
        log.info("pod %s deleted after %.0fs grace", self.ref, grace)

    async def kill(self, grace: float = 2.0) -> None:
        """The object is gone already (force delete, or kubelet shutdown): just stop everything."""
        await self._stop(grace)
        for task in list(self._tasks):
            task.cancel()

    # -- internals ----------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(coro, name=f"{self.ref}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _stop(self, grace: float) -> None:
        self.terminating = True
        # Stop the runners before cancelling the main task: they then record
        # their containers' terminated state, which a cancellation would skip.
        await asyncio.gather(
            *(r.stop(grace) for r in [*self.runners, *reversed(self.init_runners)])
        )
        if self._main:
            await stop(self._main)  # still in setup, e.g. waiting for a claim
        await self._teardown()
        self.changed()

    async def _run(self) -> None:
        try:
            await self._setup()
            if not await self._run_init():
                return
            await asyncio.gather(*(self._spawn(r.run(), r.name) for r in self.runners))
            # Every container is terminal (restartPolicy Never/OnFailure): free the sandbox.
            await self._teardown()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("pod %s failed", self.ref)

    async def _setup(self) -> None:
        (self.dir / "logs").mkdir(parents=True, exist_ok=True)
        if self.pod["spec"].get("hostNetwork"):
            self.pod_ip = self.ctx.node_ip
        else:
            address = self.ctx.pool.allocate()
            try:
                key = self.uid.replace("-", "")[:7]
                cfg = self.ctx.config
                self.sandbox = await create_sandbox(
                    cfg.bridge, cfg.name_prefix, key, address, cfg.gateway
                )
            except Exception:
                self.ctx.pool.release(address)
                raise
            self.pod_ip = str(address)
        self.etc_mounts = self._write_etc()
        self.sandbox_ready = True
        self.changed()
        builder = VolumeBuilder(self.ctx.kube, self.pod, self.dir)
        reported = ""
        while True:
            try:
                self.volumes = await builder.prepare()
                break
            except VolumeError as e:
                for r in [*self.init_runners, *self.runners]:
                    r.waiting("ContainerCreating", str(e))
                if str(e) != reported:
                    reported = str(e)
                    await emit(self.ctx.kube, self.pod, "FailedMount", reported, warning=True)
                await asyncio.sleep(2)
        self._spawn(self._refresh_loop(builder), "refresh")

    async def _refresh_loop(self, builder: VolumeBuilder) -> None:
        while not self.terminating:
            await asyncio.sleep(REFRESH_EVERY)
            builder.pod = self.pod
            with contextlib.suppress(VolumeError, KubeError):
                await builder.refresh()

    async def _run_init(self) -> bool:
        for runner in self.init_runners:
            task = self._spawn(runner.run(), runner.name)
            if not runner.is_init:  # a sidecar: wait until started, leave it running
                started = asyncio.ensure_future(runner.started_once.wait())
                await asyncio.wait([task, started], return_when=asyncio.FIRST_COMPLETED)
                started.cancel()
                continue
            await task
            if runner.exit_code != 0:
                self.init_failed = not self.terminating
                self.changed()
                return False
        self.init_done = True
        self.changed()
        return True

    async def _teardown(self) -> None:
        if self._torn_down:
            return
        self._torn_down = True
        if self.sandbox:
            await delete_sandbox(self.sandbox)
            self.ctx.pool.release(IPv4Address(self.sandbox.address))

    def _write_etc(self) -> list[Mount]:
        """/etc/hosts and /etc/resolv.conf of the pod (none for hostNetwork pods)."""
        spec, meta = self.pod["spec"], self.pod["metadata"]
        if spec.get("hostNetwork"):
            return []
        etc = self.dir / "etc"
        etc.mkdir(exist_ok=True)
        hostname = str(spec.get("hostname") or meta["name"])[:63]
        names = [hostname]
        if spec.get("subdomain"):
            names.insert(0, f"{hostname}.{spec['subdomain']}.{meta['namespace']}.svc.{DOMAIN}")
        (etc / "hosts").write_text(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
            f"{self.pod_ip}\t{' '.join(names)}\n"
        )
        mounts = [Mount(etc / "hosts", "/etc/hosts", read_only=False)]
        policy = spec.get("dnsPolicy", "ClusterFirst")
        if policy in ("ClusterFirst", "None"):
            ns = meta["namespace"]
            config = spec.get("dnsConfig", {})
            servers = ([] if policy == "None" else [self.ctx.node_ip]) + config.get(
                "nameservers", []
            )
            search = (
                [] if policy == "None" else [f"{ns}.svc.{DOMAIN}", f"svc.{DOMAIN}", DOMAIN]
            ) + config.get("searches", [])
            options = ["ndots:5"] + [
                f"{o['name']}:{o['value']}" if o.get("value") else o["name"]
                for o in config.get("options", [])
            ]
            lines = [f"search {' '.join(search)}"] if search else []
            lines += [f"nameserver {s}" for s in servers] + [f"options {' '.join(options)}"]
            (etc / "resolv.conf").write_text("\n".join(lines) + "\n")
            mounts.append(Mount(etc / "resolv.conf", "/etc/resolv.conf", read_only=True))
        return mounts

    def _preparer(self, container: JsonDict) -> "_Preparer":
        return _Preparer(self, container)

    def _pod_view(self) -> JsonDict:
        """The pod as the downward API should see it: with the IPs it is about to report."""
        status = {
            **self.pod.get("status", {}),
            "hostIP": self.ctx.node_ip,
            "hostIPs": [{"ip": self.ctx.node_ip}],
        }
        if self.pod_ip:
            status |= {"podIP": self.pod_ip, "podIPs": [{"ip": self.pod_ip}]}
        return {**self.pod, "status": status}

    def _status(self) -> JsonDict:
        ours = (self._last_status or {}).get("conditions", [])
        others = [c for c in self.pod.get("status", {}).get("conditions", []) if c not in ours]
        view = {
            **self.pod,
            "status": {**self.pod.get("status", {}), "conditions": [*ours, *others]},
        }
        return pod_status(
            view,
            phase_=phase(self.init_done, self.runners, self.init_failed),
            sandbox_ready=self.sandbox_ready and not self._torn_down,
            init_done=self.init_done,
            init_runners=self.init_runners,
            runners=self.runners,
            pod_ip=self.pod_ip,
            host_ip=self.ctx.node_ip,
            start_time=self.start_time,
        )

    async def _sync_status(self) -> bool:
        """Patch the status if it changed; False once the pod is gone."""
        status = self._status()
        if status == self._last_status:
            return True
        meta = self.pod["metadata"]
        try:
            # The uid makes the patch miss a newer pod of the same name (a StatefulSet pod
            # recreated while this one was still going away): without it this pod's last
            # IP was merged into the new pod's, which the apiserver then refused forever.
            await self.ctx.kube.patch(
                path("pods", meta["namespace"], meta["name"], "status"),
                {"metadata": {"uid": self.uid}, "status": status},
                "strategic",
            )
        except KubeError as e:
            if e.status == 404 or (e.status in (409, 422) and "uid" in e.body.lower()):
                return False  # gone, or replaced by a pod of the same name
            log.warning("status of %s: %s", self.ref, e)
            self.changed()
            await asyncio.sleep(1)
            return True
        self._last_status = status
        return True

    async def _status_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            if not await self._sync_status():
                return
            await asyncio.sleep(0.05)  # coalesce bursts of changes


class _Preparer:
    """Builds the Launch of one container, fresh for every (re)start."""

    def __init__(self, worker: PodWorker, container: JsonDict) -> None:
        self.worker = worker
        self.container = container

    async def __call__(self) -> Launch:
        w, c = self.worker, self.container
        cfg = w.ctx.config
        builder = EnvBuilder(w.ctx.kube, w.pod["metadata"]["namespace"], w.ctx.service_env())
        env = await builder.build(w._pod_view(), c)
        command = c.get("command") or list(cfg.default_entrypoint)
        argv = [expand(str(a), env) for a in [*command, *c.get("args", [])]]
        mounts = container_mounts(c, w.volumes, env)
        for m in mounts:
            w.ctx.mountpoints.add(Path(m.target))
        mounts = [*w.etc_mounts, *mounts]
        hostname = str(w.pod["spec"].get("hostname") or w.pod["metadata"]["name"])[:63]
        netns = w.sandbox.netns_path if w.sandbox else None
        ports = {
            str(p["name"]): int(p["containerPort"]) for p in c.get("ports", []) if p.get("name")
        }

        def exec_prefix() -> list[str] | None:
            runner = next((r for r in [*w.runners, *w.init_runners] if r.spec is c), None)
            if runner is None or runner.proc is None or runner.proc.returncode is not None:
                return None
            return ["nsenter", "-t", str(runner.proc.pid), "-n", "-m", "-u", "--"]

        return Launch(
            argv=launch_argv(netns, hostname, str(c.get("workingDir", "")), mounts, argv),
            env=env,
            cwd=str(w.dir),
            log_path=w.dir / "logs" / f"{c['name']}.log",
            probe_target=ProbeTarget(w.pod_ip or w.ctx.node_ip, ports, exec_prefix, env),
        )
