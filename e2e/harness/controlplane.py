"""etcd, kube-apiserver, kube-controller-manager and kube-scheduler as local processes.

Everything listens on 127.0.0.1 on free ports, so several clusters can run side
by side. Clients authenticate with a static bearer token in system:masters;
RBAC is on, and service-account tokens are signed with a key made per cluster.
"""

import contextlib
import json
import secrets
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .procs import PidRecord, Process, spawn

# Controllers of kube-controller-manager the e2e tests rely on (names from
# cmd/kube-controller-manager/names/controller_names.go). Cloud, CSR-signing,
# node-IPAM and DRA controllers are left out: nothing here needs them.
CONTROLLERS = (
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
    "namespace-controller",
    "garbage-collector-controller",
    "deployment-controller",
    "replicaset-controller",
    "statefulset-controller",
    "daemonset-controller",
    "job-controller",
    "cronjob-controller",
    "ttl-after-finished-controller",
    "disruption-controller",
    "endpoints-controller",
    "endpointslice-controller",
    "endpointslice-mirroring-controller",
    "pod-garbage-collector-controller",
    "node-lifecycle-controller",
    "taint-eviction-controller",
    "persistentvolume-binder-controller",
    "persistentvolume-expander-controller",
    "persistentvolume-protection-controller",
    "persistentvolumeclaim-protection-controller",
    "clusterrole-aggregation-controller",
    "resourcequota-controller",
)
SERVICE_CIDR = "10.96.0.0/16"


class ControlPlaneError(RuntimeError):
    """A component did not start; the message carries the tail of its log."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class ControlPlane:
    """A running control plane; `stop()` is safe to call at any point of `start()`."""

    bin_dir: Path
    work_dir: Path
    host: str = "127.0.0.1"
    # Address published in the `kubernetes` Service's endpoints; loopback is
    # invalid there, so the cluster passes its bridge gateway (see apiproxy.py).
    advertise_address: str | None = None
    die_with_parent: bool = False
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    processes: list[Process] = field(default_factory=list)
    etcd_port: int = 0
    apiserver_port: int = 0

    @property
    def server(self) -> str:
        return f"https://{self.host}:{self.apiserver_port}"

    @property
    def kubeconfig(self) -> Path:
        return self.work_dir / "admin.kubeconfig"

    @property
    def ca_file(self) -> Path:
        # kube-apiserver writes a self-signed CA + serving cert here on first start.
        return self.work_dir / "pki" / "apiserver.crt"

    @property
    def sa_key(self) -> Path:
        return self.work_dir / "pki" / "sa.key"

    @property
    def log_dir(self) -> Path:
        return self.work_dir / "logs"

    def pid_records(self) -> list[PidRecord]:
        return [p.record for p in self.processes]

    def start(self, timeout: float = 120.0) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._write_credentials()
        self._start_etcd(timeout)
        self._start_apiserver(timeout)
        self._write_kubeconfig()
        self._start_controller_manager(timeout)
        self._start_scheduler(timeout)

    def stop(self) -> None:
        # Reverse order: controllers first, etcd last, so nothing logs
        # connection errors against an already stopped dependency.
        for proc in reversed(self.processes):
            proc.stop()
        self.processes.clear()

    # -- credentials ---------------------------------------------------------

    def _write_credentials(self) -> None:
        pki = self.work_dir / "pki"
        pki.mkdir(exist_ok=True)
        if not self.sa_key.exists():
            subprocess.run(
                ["openssl", "genrsa", "-out", str(self.sa_key), "2048"],
                check=True,
                capture_output=True,
            )
        tokens = self.work_dir / "tokens.csv"
        tokens.write_text(f'{self.token},e2e-admin,e2e-admin,"system:masters"\n')
        tokens.chmod(0o600)

    def _write_kubeconfig(self) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "e2e",
                    "cluster": {"server": self.server, "certificate-authority": str(self.ca_file)},
                }
            ],
            "users": [{"name": "e2e-admin", "user": {"token": self.token}}],
            "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "e2e-admin"}}],
            "current-context": "e2e",
        }
        # JSON is valid YAML; kubectl and every client library read it.
        self.kubeconfig.write_text(json.dumps(config, indent=2))
        self.kubeconfig.chmod(0o600)

    # -- components ----------------------------------------------------------

    def _spawn(self, name: str, argv: list[str]) -> Process:
        # On the parent's death everything goes at once: a graceful apiserver
        # would wait forever for the etcd that died with it, so KILL.
        signal = "KILL" if self.die_with_parent else None
        proc = spawn(name, argv, self.log_dir, cwd=self.work_dir, die_with_parent=signal)
        self.processes.append(proc)
        return proc

    def _start_etcd(self, timeout: float) -> None:
        self.etcd_port = free_port(self.host)
        peer = f"http://{self.host}:{free_port(self.host)}"
        client = f"http://{self.host}:{self.etcd_port}"
        proc = self._spawn(
            "etcd",
            [
                str(self.bin_dir / "etcd"),
                "--name=e2e",
                f"--data-dir={self.work_dir / 'etcd'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=e2e={peer}",
                "--log-level=warn",
                # Test data is disposable; skipping fsync keeps the 2-core box responsive.
                "--unsafe-no-fsync",
            ],
        )
        _wait(proc, timeout, lambda: _http_ok(f"{client}/health"))

    def _start_apiserver(self, timeout: float) -> None:
        self.apiserver_port = free_port(self.host)
        proc = self._spawn(
            "kube-apiserver",
            [
                str(self.bin_dir / "kube-apiserver"),
                f"--etcd-servers=http://{self.host}:{self.etcd_port}",
                f"--bind-address={self.host}",
                f"--advertise-address={self.advertise_address or self.host}",
                f"--secure-port={self.apiserver_port}",
                f"--cert-dir={self.work_dir / 'pki'}",
                f"--token-auth-file={self.work_dir / 'tokens.csv'}",
                "--authorization-mode=Node,RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={self.sa_key}",
                f"--service-account-signing-key-file={self.sa_key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                # Endpoints validation rejects a loopback advertise address.
                f"--endpoint-reconciler-type={'lease' if self.advertise_address else 'none'}",
                # The process kubelet serves pod logs on the node's InternalIP
                # (the bridge address); it has no resolvable hostname.
                "--kubelet-preferred-address-types=InternalIP",
                "--kubelet-timeout=10s",
            ],
        )
        _wait(proc, timeout, self._apiserver_ready)

    def _apiserver_ready(self) -> bool:
        if not self.ca_file.exists():
            return False
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        return _http_ok(f"{self.server}/readyz", ctx, self.token)

    def _start_controller_manager(self, timeout: float) -> None:
        port = free_port(self.host)
        proc = self._spawn(
            "kube-controller-manager",
            [
                str(self.bin_dir / "kube-controller-manager"),
                f"--kubeconfig={self.kubeconfig}",
                f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                f"--controllers={','.join(CONTROLLERS)}",
                f"--service-account-private-key-file={self.sa_key}",
                f"--root-ca-file={self.ca_file}",
                f"--bind-address={self.host}",
                f"--secure-port={port}",
                f"--cert-dir={self.work_dir / 'pki' / 'kcm'}",
            ],
        )
        _wait(proc, timeout, lambda: _http_ok(f"https://{self.host}:{port}/healthz", _insecure()))

    def _start_scheduler(self, timeout: float) -> None:
        port = free_port(self.host)
        proc = self._spawn(
            "kube-scheduler",
            [
                str(self.bin_dir / "kube-scheduler"),
                f"--kubeconfig={self.kubeconfig}",
                f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                f"--bind-address={self.host}",
                f"--secure-port={port}",
                f"--cert-dir={self.work_dir / 'pki' / 'scheduler'}",
            ],
        )
        _wait(proc, timeout, lambda: _http_ok(f"https://{self.host}:{port}/healthz", _insecure()))


def _insecure() -> ssl.SSLContext:
    # Health endpoints of KCM and scheduler use throwaway self-signed certs.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _http_ok(url: str, ctx: ssl.SSLContext | None = None, token: str | None = None) -> bool:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=2, context=ctx) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _wait(proc: Process, timeout: float, ready: Callable[[], bool]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.running():
            msg = f"{proc.name} exited with {proc.popen.returncode}:\n{proc.log_tail()}"
            raise ControlPlaneError(msg)
        with contextlib.suppress(Exception):
            if ready():
                return
        time.sleep(0.2)
    msg = f"{proc.name} not healthy after {timeout:.0f}s:\n{proc.log_tail()}"
    raise ControlPlaneError(msg)
