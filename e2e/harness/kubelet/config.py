"""Settings of one process kubelet, from its command line."""

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Interface, IPv4Network
from pathlib import Path

PROVISIONER = "e2e.vectorizer.io/process-hostpath"
STORAGE_CLASS = "standard"
# Variables a container inherits from the kubelet's environment (an image
# would bring its own PATH; here the host's tools are the "image").
PASS_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "VIRTUAL_ENV", "PYTHONPATH", "TMPDIR")
# What the image sets for every container (the Dockerfile's ENV): pods run from the
# checkout would otherwise write __pycache__ into it.
IMAGE_ENV = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}


@dataclass(frozen=True)
class KubeletConfig:
    node_name: str
    kubeconfig: Path
    state_dir: Path
    bridge: str
    gateway: IPv4Interface
    pod_cidr: IPv4Network
    name_prefix: str
    kubelet_version: str
    default_entrypoint: tuple[str, ...]
    provisioner: bool
    dns: bool
    apiserver_proxy: bool
    cpu: str
    memory: str
    max_pods: int

    @property
    def pods_dir(self) -> Path:
        return self.state_dir / "pods"

    @property
    def volumes_dir(self) -> Path:
        return self.state_dir / "volumes"


def parse_args(argv: Sequence[str] | None = None) -> KubeletConfig:
    p = argparse.ArgumentParser(prog="python -m e2e.harness.kubelet", description=__doc__)
    p.add_argument("--node-name", required=True)
    p.add_argument("--kubeconfig", type=Path, required=True)
    p.add_argument(
        "--state-dir", type=Path, required=True, help="pod logs, volumes, projected files"
    )
    p.add_argument("--bridge", required=True, help="bridge the pod veths attach to")
    p.add_argument(
        "--gateway",
        type=IPv4Interface,
        required=True,
        help="bridge address/prefix, e.g. 10.244.0.1/20",
    )
    p.add_argument(
        "--pod-cidr",
        type=IPv4Network,
        required=True,
        help="this node's pod range, e.g. 10.244.1.0/24",
    )
    p.add_argument("--name-prefix", required=True, help="prefix of netns/veth names, e.g. vz0")
    p.add_argument("--kubelet-version", default="v0.0.0-process")
    p.add_argument(
        "--default-entrypoint",
        default="vectorizer",
        help="command run when a container sets no command (the image's entrypoint)",
    )
    p.add_argument(
        "--provisioner", action="store_true", help="also provision hostPath PVs for PVCs"
    )
    p.add_argument(
        "--dns", action="store_true", help="also serve cluster DNS on the gateway address"
    )
    p.add_argument(
        "--apiserver-proxy",
        action="store_true",
        help="also forward <gateway>:<apiserver port> and :443 to the (loopback) apiserver",
    )
    # Advertised, not enforced: generous so pods with real requests still schedule.
    p.add_argument("--cpu", default="16")
    p.add_argument("--memory", default="64Gi")
    p.add_argument("--max-pods", type=int, default=110)
    a = p.parse_args(argv)
    return KubeletConfig(
        node_name=a.node_name,
        kubeconfig=a.kubeconfig,
        state_dir=a.state_dir,
        bridge=a.bridge,
        gateway=a.gateway,
        pod_cidr=a.pod_cidr,
        name_prefix=a.name_prefix,
        kubelet_version=a.kubelet_version,
        default_entrypoint=tuple(a.default_entrypoint.split()),
        provisioner=a.provisioner,
        dns=a.dns,
        apiserver_proxy=a.apiserver_proxy,
        cpu=a.cpu,
        memory=a.memory,
        max_pods=a.max_pods,
    )
