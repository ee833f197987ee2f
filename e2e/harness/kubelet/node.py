"""Register the Node and keep it Ready: a Lease renewed every 10 s (what the
node-lifecycle controller watches) and a full status report every minute."""

import asyncio
import logging
import platform
import uuid

from ..kube import JsonDict, Kube, KubeError, path
from .clock import now, now_micro
from .config import KubeletConfig

LEASE_SECONDS = 40
RENEW_EVERY = 10.0
STATUS_EVERY = 60.0
log = logging.getLogger(__name__)


class NodeAgent:
    def __init__(self, kube: Kube, config: KubeletConfig, port: int) -> None:
        self.kube = kube
        self.config = config
        self.port = port
        self._boot_id = uuid.uuid4().hex

    @property
    def node_ip(self) -> str:
        return str(self.config.gateway.ip)

    async def register(self) -> None:
        name = self.config.node_name
        node: JsonDict = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "e2e.vectorizer.io/process-kubelet": "true",
                },
            },
            "spec": {"podCIDR": str(self.config.pod_cidr), "podCIDRs": [str(self.config.pod_cidr)]},
        }
        try:
            await self.kube.create(path("nodes"), node)
        except KubeError as e:
            if e.status != 409:
                raise
            log.info("node %s already registered", name)
        await self.report_status(first=True)
        await self.renew_lease()

    async def run(self) -> None:
        """Heartbeat forever; errors are logged and retried (the apiserver may restart)."""
        last_status = asyncio.get_running_loop().time()
        while True:
            await asyncio.sleep(RENEW_EVERY)
            try:
                await self.renew_lease()
                if asyncio.get_running_loop().time() - last_status >= STATUS_EVERY:
                    await self.report_status()
                    last_status = asyncio.get_running_loop().time()
            except Exception:
                log.exception("node heartbeat failed")

    async def renew_lease(self) -> None:
        name = self.config.node_name
        url = path("leases", "kube-node-lease", name, group="coordination.k8s.io")
        spec = {
            "holderIdentity": name,
            "leaseDurationSeconds": LEASE_SECONDS,
            "renewTime": now_micro(),
        }
        if await self.kube.get_or_none(url) is None:
            lease = {"metadata": {"name": name, "namespace": "kube-node-lease"}, "spec": spec}
            await self.kube.create(
                path("leases", "kube-node-lease", group="coordination.k8s.io"), lease
            )
        else:
            await self.kube.patch(url, {"spec": spec})

    async def report_status(self, *, first: bool = False) -> None:
        stamp = now()
        c = self.config

        def condition(kind: str, status: str, reason: str, message: str) -> JsonDict:
            cond = {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": stamp,
            }
            # These conditions never change, so they transition only at registration;
            # later patches omit the field and the strategic merge keeps it.
            return {**cond, "lastTransitionTime": stamp} if first else cond

        resources = {
            "cpu": c.cpu,
            "memory": c.memory,
            "pods": str(c.max_pods),
            "ephemeral-storage": "100Gi",
        }
        status: JsonDict = {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [
                condition(
                    "MemoryPressure", "False", "KubeletHasSufficientMemory", "process kubelet"
                ),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "process kubelet"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "process kubelet"),
                condition(
                    "Ready", "True", "KubeletReady", "process kubelet is posting ready status"
                ),
            ],
            "addresses": [
                {"type": "InternalIP", "address": self.node_ip},
                {"type": "Hostname", "address": c.node_name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.port}},
            "nodeInfo": {
                "machineID": self._boot_id,
                "systemUUID": self._boot_id,
                "bootID": self._boot_id,
                "kernelVersion": platform.release(),
                "osImage": "process kubelet (host filesystem)",
                "containerRuntimeVersion": "process://0.1.0",
                "kubeletVersion": c.kubelet_version,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }
        # Strategic merge: conditions merge by type.
        await self.kube.patch(
            path("nodes", name=c.node_name, subresource="status"), {"status": status}, "strategic"
        )
