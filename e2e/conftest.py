"""Session fixtures: one cluster for the whole e2e run.

By default a local cluster (real control plane + process kubelet; needs root)
is started; binaries are built first if the cache is cold. Set
VECTORIZER_E2E_KUBECONFIG to run the same tests against an existing cluster
such as kind instead.
"""

import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from e2e.harness.cluster import Cluster, E2ECluster
from e2e.harness.kube import Kube, path
from e2e.harness.toolchain import ensure_binaries
from e2e.harness.waiting import eventually

# The operator suite's fixtures (kubectl, vzc_crd, module_namespace, operator).
from e2e.operator_fixtures import kubectl, module_namespace, operator, vzc_crd

__all__ = ["e2e_cluster", "kube", "kubectl", "module_namespace", "namespace", "operator", "vzc_crd"]

EXTERNAL_KUBECONFIG = "VECTORIZER_E2E_KUBECONFIG"
log = logging.getLogger("e2e")


def _wants_local_cluster(session: pytest.Session) -> bool:
    return not os.environ.get(EXTERNAL_KUBECONFIG) and any(
        "e2e_cluster" in getattr(item, "fixturenames", ()) for item in session.items
    )


def pytest_collection_finish(session: pytest.Session) -> None:
    # Build (minutes when cold) outside any test, so per-test timeouts stay meaningful.
    if _wants_local_cluster(session) and not session.config.option.collectonly:
        ensure_binaries(("k8s", "etcd"))


@pytest.fixture(scope="session")
def e2e_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2ECluster]:
    if kubeconfig := os.environ.get(EXTERNAL_KUBECONFIG):
        yield E2ECluster(Path(kubeconfig), local=False)
        return
    work_dir = tmp_path_factory.mktemp("cluster")
    cluster = Cluster(ensure_binaries(("k8s", "etcd")), work_dir, die_with_parent=True)
    started = time.monotonic()
    cluster.start()
    log.info("local cluster up in %.1fs (logs: %s)", time.monotonic() - started, work_dir / "logs")
    try:
        yield E2ECluster(cluster.kubeconfig, local=True, work_dir=work_dir)
    finally:
        cluster.stop()


@pytest.fixture
async def kube(e2e_cluster: E2ECluster) -> AsyncIterator[Kube]:
    async with await Kube.from_kubeconfig(e2e_cluster.kubeconfig) as client:
        yield client


@pytest.fixture
async def namespace(kube: Kube) -> AsyncIterator[str]:
    """A fresh namespace whose default ServiceAccount exists (pods are admitted)."""
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    await kube.create(path("namespaces"), {"metadata": {"name": name}})
    await eventually(
        lambda: kube.get_or_none(path("serviceaccounts", name, "default")),
        f"serviceaccount {name}/default",
    )
    yield name
    await kube.delete(path("namespaces", name=name))
