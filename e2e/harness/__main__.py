"""python -m e2e.harness up|down|status [--work-dir DIR] [--nodes N] — used by dev-cluster.sh."""

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .cluster import PIDS_FILE, STATE_FILE, Cluster, stop_recorded
from .procs import read_pidfile, spawn, write_pidfile
from .toolchain import ensure_binaries

REPO = Path(__file__).resolve().parents[2]

log = logging.getLogger("e2e.harness")


def _default_work_dir() -> Path:
    cache = Path(os.environ.get("VECTORIZER_E2E_CACHE", Path.home() / ".cache" / "vectorizer-e2e"))
    return cache / "dev-cluster"


def _up(work_dir: Path, nodes: int, entrypoint: str) -> int:
    if (work_dir / "pids.json").exists():
        log.error("a cluster is already recorded in %s; run `down` first", work_dir)
        return 1
    # Each `up` is a fresh cluster: state left by an earlier one (its etcd, its nodes'
    # volumes) would bring back pods bound to nodes that no longer exist.
    shutil.rmtree(work_dir, ignore_errors=True)
    bin_dir = ensure_binaries(("k8s", "etcd"))
    started = time.monotonic()
    cluster = Cluster(bin_dir, work_dir, nodes=nodes, default_entrypoint=entrypoint)
    cluster.start()
    log.info("cluster up in %.1fs", time.monotonic() - started)
    _operator_and_sample(cluster.kubeconfig, bin_dir, work_dir)
    net = cluster.network
    where = f"bridge {net.bridge}, {net.subnet}" if net else "?"
    sys.stdout.write(
        f"""
Cluster is up ({nodes} node(s)); logs in {work_dir / "logs"}.

  export KUBECONFIG={cluster.kubeconfig}
  export PATH={bin_dir}:$PATH
  kubectl get nodes

The operator runs as a local process (log: {work_dir / "logs" / "operator.log"}) and
the sample cluster from samples/minimal.yaml is being created:

  kubectl get vzc,pods,svc -o wide

Pods run as local processes in network namespaces ({where});
pod IPs are reachable from this host. Stop everything with: e2e/dev-cluster.sh down
"""
    )
    return 0


def _operator_and_sample(kubeconfig: Path, bin_dir: Path, work_dir: Path) -> None:
    """Install the CRD, start `vectorizer operator` (recorded, so `down` stops it first),
    and apply the minimal sample cluster."""
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    kubectl = str(bin_dir / "kubectl")
    subprocess.run([kubectl, "apply", "-f", str(REPO / "crds")], check=True, env=env)
    subprocess.run(
        [
            kubectl,
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/vectorizerclusters.vectorizer.io",
        ],
        check=True,
        env=env,
    )
    operator = spawn(
        "operator",
        [
            sys.executable,
            "-m",
            "vectorizer",
            "operator",
            "--standalone",
            "--all-namespaces",
            "--liveness",
            "",
        ],
        work_dir / "logs",
        env=env,
    )
    pids = work_dir / PIDS_FILE
    write_pidfile(pids, [*read_pidfile(pids), operator.record])
    subprocess.run(
        [kubectl, "apply", "-n", "default", "-f", str(REPO / "samples" / "minimal.yaml")],
        check=True,
        env=env,
    )


def _status(work_dir: Path) -> int:
    state = work_dir / STATE_FILE
    if not (work_dir / "pids.json").exists():
        sys.stdout.write("no cluster running\n")
        return 1
    sys.stdout.write(json.dumps(json.loads(state.read_text()), indent=2) + "\n")
    return 0


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    p = argparse.ArgumentParser(prog="python -m e2e.harness")
    p.add_argument("command", choices=("up", "down", "status"))
    p.add_argument("--work-dir", type=Path, default=_default_work_dir())
    p.add_argument("--nodes", type=int, default=1)
    p.add_argument(
        "--entrypoint", default="vectorizer", help="command for containers that set none"
    )
    a = p.parse_args()
    if a.command == "up":
        return _up(a.work_dir, a.nodes, a.entrypoint)
    if a.command == "down":
        if not stop_recorded(a.work_dir):
            log.info("no cluster recorded in %s", a.work_dir)
        return 0
    return _status(a.work_dir)


if __name__ == "__main__":
    sys.exit(main())
