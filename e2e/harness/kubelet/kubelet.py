"""The process kubelet's main loop: node heartbeat, provisioner, pod workers."""

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

from aiohttp import web

from ..kube import JsonDict, Kube, KubeError, path
from ..network import AddressPool
from .apiproxy import run_proxy
from .config import KubeletConfig
from .dns import ClusterDNS
from .mountpoints import MountpointRecord, remove_recorded
from .node import NodeAgent
from .pod import NodeContext, PodWorker
from .provisioner import Provisioner
from .server import KubeletServer

log = logging.getLogger(__name__)
SHUTDOWN_GRACE = 10.0


class Kubelet:
    def __init__(self, kube: Kube, config: KubeletConfig) -> None:
        self.kube = kube
        self.config = config
        mountpoints = MountpointRecord(config.state_dir)
        self.ctx = NodeContext(kube, config, AddressPool(config.pod_cidr), mountpoints)
        self.workers: dict[str, PodWorker] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: web.AppRunner | None = None

    def _find(self, namespace: str, name: str) -> PodWorker | None:
        ref = f"{namespace}/{name}"
        return next((w for w in self.workers.values() if w.ref == ref), None)

    async def run(self) -> None:
        self.config.pods_dir.mkdir(parents=True, exist_ok=True)
        server = KubeletServer(self._find, self.config.state_dir)
        self._server = await server.start(str(self.config.gateway.ip))
        node = NodeAgent(self.kube, self.config, server.port)
        await node.register()
        loops = [node.run(), self._watch_pods()]
        if self.config.provisioner:
            provisioner = Provisioner(self.kube, self.config.volumes_dir)
            await provisioner.ensure_storage_class()
            loops.append(provisioner.run())
        gateway = str(self.config.gateway.ip)
        if self.config.dns:
            loops.append(ClusterDNS(self.kube, gateway).run())
        if self.config.apiserver_proxy:
            host, port = self.ctx.apiserver
            loops.append(run_proxy(gateway, sorted({port, 443}), (host, port)))
        log.info("node %s ready (pods %s)", self.config.node_name, self.config.pod_cidr)
        await asyncio.gather(*loops)

    async def shutdown(self) -> None:
        """Stop every pod's processes and namespaces; the API objects stay (as with a dead node)."""
        await asyncio.gather(*(w.kill(min(w.grace, SHUTDOWN_GRACE)) for w in self.workers.values()))
        self.workers.clear()
        for task in list(self._tasks):
            task.cancel()
        if self._server:
            await self._server.cleanup()
        remove_recorded(self.config.state_dir)

    def _track(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch_pods(self) -> None:
        selector = f"spec.nodeName={self.config.node_name}"
        async for event, pod in self.kube.watch(
            path("pods"), on_list=self._forget_missing, fieldSelector=selector
        ):
            uid = str(pod["metadata"]["uid"])
            worker = self.workers.get(uid)
            if event == "DELETED":
                if worker:
                    del self.workers[uid]
                    self._track(worker.kill())
            elif worker:
                worker.update(pod)
            else:
                self._admit(pod)

    def _forget_missing(self, pods: list[JsonDict]) -> None:
        """After a relist: stop workers whose pod was deleted while the watch was down."""
        present = {str(p["metadata"]["uid"]) for p in pods}
        for uid in set(self.workers) - present:
            self._track(self.workers.pop(uid).kill())

    def _admit(self, pod: JsonDict) -> None:
        meta = pod["metadata"]
        if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            return  # finished before this kubelet started: nothing to run
        if meta.get("deletionTimestamp"):
            self._track(self._finalize(pod))
            return
        worker = PodWorker(self.ctx, pod)
        self.workers[worker.uid] = worker
        log.info("starting pod %s", worker.ref)
        worker.start()

    async def _finalize(self, pod: JsonDict) -> None:
        """A pod deleted while no worker ran it (e.g. across a kubelet restart)."""
        meta = pod["metadata"]
        with contextlib.suppress(KubeError):
            await self.kube.delete(
                path("pods", meta["namespace"], meta["name"]),
                {"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}},
            )
