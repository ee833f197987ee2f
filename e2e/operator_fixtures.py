"""Fixtures for the operator suite: kubectl, the CRD, a namespace per module, the operator.

On the local cluster the operator runs as a process of this host (`vectorizer operator
--standalone`), started and stopped by pid; it reaches pods by their IPs like the
tests do. Against an external cluster (VECTORIZER_E2E_KUBECONFIG, e.g. kind) the
operator must already run in the cluster (helm, see e2e/README.md), because pod IPs
are not reachable from the host there; VECTORIZER_E2E_OPERATOR_NAMESPACE names its
namespace so that a test can restart it by deleting its pod.

The module-scoped fixtures are synchronous on purpose: async fixtures would need an
event loop per module, while every test runs on its own loop.
"""

import logging
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pytest

from e2e.harness.cluster import E2ECluster
from e2e.harness.procs import Process, spawn
from e2e.harness.toolchain import REPO_ROOT, ensure_binaries

CRD_FILE = REPO_ROOT / "crds" / "vectorizercluster.yaml"
CRD_NAME = "vectorizerclusters.vectorizer.io"
OPERATOR_NAMESPACE_ENV = "VECTORIZER_E2E_OPERATOR_NAMESPACE"
KUBECTL_ENV = "VECTORIZER_E2E_KUBECTL"
OPERATOR_POD_SELECTOR = "app.kubernetes.io/name=vectorizer-operator"
log = logging.getLogger("e2e.operator")


class KubectlError(AssertionError):
    """kubectl exited non-zero; the message carries its stderr."""

    def __init__(self, args: Sequence[str], result: "subprocess.CompletedProcess[str]") -> None:
        self.stderr = result.stderr
        super().__init__(f"kubectl {' '.join(args)} -> {result.returncode}: {result.stderr}")


@dataclass(frozen=True)
class Kubectl:
    """The harness's kubectl (or the one on PATH for an external cluster), bound to a kubeconfig."""

    binary: str
    kubeconfig: Path

    @classmethod
    def for_cluster(cls, cluster: E2ECluster) -> "Kubectl":
        if preset := os.environ.get(KUBECTL_ENV):
            return cls(preset, cluster.kubeconfig)
        if cluster.local:
            return cls(str(ensure_binaries(("k8s", "etcd")) / "kubectl"), cluster.kubeconfig)
        found = shutil.which("kubectl")
        if not found:
            msg = f"kubectl not found on PATH (or set {KUBECTL_ENV})"
            raise RuntimeError(msg)
        return cls(found, cluster.kubeconfig)

    def run(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 60.0
    ) -> "subprocess.CompletedProcess[str]":
        result = subprocess.run(
            [self.binary, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "KUBECONFIG": str(self.kubeconfig)},
            check=False,
        )
        if check and result.returncode != 0:
            raise KubectlError(args, result)
        return result


class Operator(Protocol):
    """What the tests need from the operator: an abrupt stop, and a start again.

    Both are called from the test's main thread: the local operator dies with the
    thread that started it (setpriv --pdeathsig), so never from a worker thread.
    """

    def kill(self) -> None: ...

    def restart(self) -> None: ...


@dataclass
class LocalOperator:
    """`vectorizer operator` as a process of this host, watching one namespace."""

    kubeconfig: Path
    namespace: str
    log_dir: Path
    process: Process | None = None
    generations: list[Process] = field(default_factory=list)

    def start(self) -> None:
        argv = [
            "vectorizer",
            "operator",
            "--standalone",
            "--namespace",
            self.namespace,
            "--liveness",
            "",  # several runs side by side must not compete for port 8080
            "--log-format",
            "text",
            "--resync-s",
            "5",
        ]
        name = f"operator-{len(self.generations)}"
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        self.process = spawn(name, argv, self.log_dir, env=env, die_with_parent="KILL")
        self.generations.append(self.process)
        log.info("operator pid %d, log %s", self.process.pid, self.process.log_path)

    def kill(self) -> None:
        """SIGKILL by pid: no chance to finish the pass it is in."""
        assert self.process is not None and self.process.running(), "operator is not running"
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.popen.wait(timeout=10)

    def restart(self) -> None:
        self.start()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(grace=10.0)

    def log_tail(self, lines: int = 40) -> str:
        return self.process.log_tail(lines) if self.process else ""


@dataclass
class InClusterOperator:
    """The operator installed in the cluster (helm); restarted by deleting its pod."""

    kubectl: Kubectl
    namespace: str

    def kill(self) -> None:
        self.kubectl.run(
            "delete", "pod", "-n", self.namespace, "-l", OPERATOR_POD_SELECTOR,
            "--grace-period=0", "--force", "--wait=false",
        )  # fmt: skip

    def restart(self) -> None:
        """Nothing to do: the Deployment starts a new pod."""


def wait_for(check: Callable[[], bool], what: str, limit: float) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    msg = f"timed out after {limit:.0f}s waiting for {what}"
    raise AssertionError(msg)


@pytest.fixture(scope="session")
def kubectl(e2e_cluster: E2ECluster) -> Kubectl:
    return Kubectl.for_cluster(e2e_cluster)


@pytest.fixture(scope="session")
def vzc_crd(kubectl: Kubectl) -> str:
    """The CRD, applied and Established (the operator resolves it once at start)."""
    kubectl.run("apply", "--server-side", "--force-conflicts", "-f", str(CRD_FILE))
    wait_established(kubectl, CRD_NAME)
    return CRD_NAME


def wait_established(kubectl: Kubectl, crd: str, limit: float = 30.0) -> None:
    """Polls: `kubectl wait` fails outright when the status has no conditions yet."""
    query = '{.status.conditions[?(@.type=="Established")].status}'
    wait_for(
        lambda: (
            kubectl.run("get", "crd", crd, "-o", f"jsonpath={query}", check=False).stdout == "True"
        ),
        f"CRD {crd} Established",
        limit,
    )


@pytest.fixture(scope="module")
def module_namespace(kubectl: Kubectl) -> Iterator[str]:
    """A namespace shared by the tests of one module (they build on each other's state)."""
    name = f"e2e-op-{uuid.uuid4().hex[:8]}"
    kubectl.run("create", "namespace", name)
    wait_for(
        lambda: kubectl.run("get", "sa", "default", "-n", name, check=False).returncode == 0,
        f"serviceaccount {name}/default",
        30.0,
    )
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def operator(
    e2e_cluster: E2ECluster,
    kubectl: Kubectl,
    vzc_crd: str,
    module_namespace: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Operator]:
    del vzc_crd  # ordering only: the CRD exists before the operator starts
    if not e2e_cluster.local:
        namespace = os.environ.get(OPERATOR_NAMESPACE_ENV, "vectorizer-system")
        yield InClusterOperator(kubectl, namespace)
        return
    runner = LocalOperator(
        e2e_cluster.kubeconfig, module_namespace, tmp_path_factory.mktemp("operator")
    )
    runner.start()
    try:
        yield runner
    finally:
        log.info("operator log tail:\n%s", runner.log_tail())
        runner.stop()
