"""A whole local cluster: bridge, control plane and N process kubelets.

`Cluster.start()` either returns a ready cluster or leaves nothing behind.
The running processes and the bridge slot are recorded in <work_dir>/cluster.json
so that `stop_recorded()` (used by `dev-cluster.sh down`) can stop a cluster
started by another process, by pid.
"""

import json
import os
import ssl
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .controlplane import ControlPlane, ControlPlaneError
from .kubelet.mountpoints import remove_recorded
from .network import ClusterNetwork, create_cluster_network, delete_cluster_network
from .procs import (
    PidRecord,
    Process,
    read_pidfile,
    spawn,
    start_ticks,
    stop_pid,
    write_pidfile,
)
from .toolchain import REPO_ROOT, kubernetes_version

STATE_FILE = "cluster.json"
PIDS_FILE = "pids.json"
KUBELET_GRACE = 30.0


@dataclass(frozen=True)
class E2ECluster:
    """What tests get from the `e2e_cluster` fixture."""

    kubeconfig: Path
    # True for the process-kubelet cluster: pod IPs are reachable from this host.
    local: bool
    work_dir: Path | None = None


def node_name(index: int) -> str:
    return f"e2e-node-{index}"


@dataclass
class Cluster:
    bin_dir: Path
    work_dir: Path
    nodes: int = 1
    default_entrypoint: str = "vectorizer"
    # Tie every process to the starting one (pytest), so nothing outlives a
    # killed test run; off for dev-cluster.sh, whose starter exits at once.
    die_with_parent: bool = False
    control_plane: ControlPlane | None = None
    network: ClusterNetwork | None = None
    kubelets: list[Process] = field(default_factory=list)

    @property
    def kubeconfig(self) -> Path:
        return self.work_dir / "control-plane" / "admin.kubeconfig"

    def start(self, timeout: float = 120.0) -> None:
        if os.geteuid() != 0:
            msg = "the process kubelet needs root (network and mount namespaces); or use kind"
            raise PermissionError(msg)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.network = create_cluster_network(self._owner(), _owner_is_gone)
            self._record()
            self.control_plane = ControlPlane(
                self.bin_dir,
                self.work_dir / "control-plane",
                advertise_address=str(self.network.gateway.ip),
                die_with_parent=self.die_with_parent,
            )
            self.control_plane.start(timeout)
            self._record()
            for index in range(self.nodes):
                self.kubelets.append(self._start_kubelet(index))
            self._record()
            self._wait_nodes_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        # Kubelets first, with time to stop their pods and remove their namespaces.
        for kubelet in self.kubelets:
            kubelet.stop(KUBELET_GRACE)
        self.kubelets.clear()
        for index in range(self.nodes):  # what a killed kubelet left behind
            remove_recorded(self.work_dir / node_name(index))
        if self.control_plane:
            self.control_plane.stop()
        if self.network:
            delete_cluster_network(self.network)
        (self.work_dir / PIDS_FILE).unlink(missing_ok=True)

    def _start_kubelet(self, index: int) -> Process:
        assert self.network is not None
        net = self.network
        state = self.work_dir / node_name(index)
        argv = [
            sys.executable,
            "-m",
            "e2e.harness.kubelet",
            f"--node-name={node_name(index)}",
            f"--kubeconfig={self.kubeconfig}",
            f"--state-dir={state}",
            f"--bridge={net.bridge}",
            f"--gateway={net.gateway}",
            f"--pod-cidr={net.node_cidr(index)}",
            f"--name-prefix={net.prefix}n{index}",
            f"--kubelet-version={kubernetes_version()}",
            f"--default-entrypoint={self.default_entrypoint}",
        ]
        if index == 0:
            argv += ["--provisioner", "--dns", "--apiserver-proxy"]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        env["PATH"] = os.pathsep.join([str(self.bin_dir), env.get("PATH", "")])
        return spawn(
            f"kubelet-{index}",
            argv,
            self.work_dir / "logs",
            env=env,
            cwd=REPO_ROOT,
            # TERM: the kubelet then stops its pods and removes their namespaces.
            die_with_parent="TERM" if self.die_with_parent else None,
        )

    def _wait_nodes_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        wanted = {node_name(i) for i in range(self.nodes)}
        while time.monotonic() < deadline:
            for k in self.kubelets:
                if not k.running():
                    msg = f"{k.name} exited with {k.popen.returncode}:\n{k.log_tail()}"
                    raise ControlPlaneError(msg)
            nodes = self.get("/api/v1/nodes").get("items", [])
            ready = {
                n["metadata"]["name"]
                for n in nodes
                if any(
                    c["type"] == "Ready" and c["status"] == "True"
                    for c in n.get("status", {}).get("conditions", [])
                )
            }
            if wanted <= ready:
                return
            time.sleep(0.2)
        msg = f"nodes {sorted(wanted)} not Ready after {timeout:.0f}s:\n" + "\n".join(
            k.log_tail() for k in self.kubelets
        )
        raise ControlPlaneError(msg)

    def get(self, api_path: str) -> dict[str, Any]:
        """A GET against the apiserver with the admin token (for waiting loops without asyncio)."""
        assert self.control_plane is not None
        cp = self.control_plane
        request = urllib.request.Request(cp.server + api_path)
        request.add_header("Authorization", f"Bearer {cp.token}")
        ctx = ssl.create_default_context(cafile=str(cp.ca_file))
        with urllib.request.urlopen(request, timeout=10, context=ctx) as response:
            result: dict[str, Any] = json.loads(response.read())
            return result

    def _owner(self) -> str:
        me = PidRecord("creator", os.getpid(), start_ticks(os.getpid()) or 0)
        return json.dumps({"creator": asdict(me), "pids": str(self.work_dir / PIDS_FILE)})

    def _record(self) -> None:
        records = [
            *(self.control_plane.pid_records() if self.control_plane else []),
            *(k.record for k in self.kubelets),
        ]
        write_pidfile(self.work_dir / PIDS_FILE, records)
        state = {
            "kubeconfig": str(self.kubeconfig),
            "slot": self.network.slot if self.network else None,
            "bin_dir": str(self.bin_dir),
            "nodes": self.nodes,
        }
        (self.work_dir / STATE_FILE).write_text(json.dumps(state, indent=2))


def _owner_is_gone(owner: str) -> bool:
    """True when neither the creator of a cluster nor any of its processes lives."""
    try:
        data = json.loads(owner)
        creator = PidRecord(**data["creator"])
        records = read_pidfile(Path(data["pids"]))
    except (ValueError, KeyError, TypeError):
        return False
    return not creator.alive() and not any(r.alive() for r in records)


def stop_recorded(work_dir: Path) -> bool:
    """Stop a cluster started by another process; False if none was recorded."""
    records = read_pidfile(work_dir / PIDS_FILE)
    state_path = work_dir / STATE_FILE
    if not records and not state_path.exists():
        return False
    kubelets = [r for r in records if r.name.startswith("kubelet-")]
    others: list[PidRecord] = [r for r in records if r not in kubelets]
    for record in [*kubelets, *reversed(others)]:
        stop_pid(record, KUBELET_GRACE if record in kubelets else 10.0)
    if state_path.exists():
        state = json.loads(state_path.read_text())
        for index in range(int(state.get("nodes", 0))):
            remove_recorded(work_dir / node_name(index))
        if state.get("slot") is not None:
            delete_cluster_network(ClusterNetwork(int(state["slot"])))
    (work_dir / PIDS_FILE).unlink(missing_ok=True)
    return True
