"""python -m e2e.harness up|down|status [--work-dir DIR] [--nodes N] — used by dev-cluster.sh."""

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from .cluster import STATE_FILE, Cluster, stop_recorded
from .toolchain import ensure_binaries

log = logging.getLogger("e2e.harness")


def _default_work_dir() -> Path:
    cache = Path(os.environ.get("VECTORIZER_E2E_CACHE", Path.home() / ".cache" / "vectorizer-e2e"))
    return cache / "dev-cluster"


def _up(work_dir: Path, nodes: int, entrypoint: str) -> int:
    if (work_dir / "pids.json").exists():
        log.error("a cluster is already recorded in %s; run `down` first", work_dir)
        return 1
    bin_dir = ensure_binaries(("k8s", "etcd"))
    started = time.monotonic()
    cluster = Cluster(bin_dir, work_dir, nodes=nodes, default_entrypoint=entrypoint)
    cluster.start()
    log.info("cluster up in %.1fs", time.monotonic() - started)
    net = cluster.network
    where = f"bridge {net.bridge}, {net.subnet}" if net else "?"
    sys.stdout.write(
        f"""
Cluster is up ({nodes} node(s)); logs in {work_dir / "logs"}.

  export KUBECONFIG={cluster.kubeconfig}
  export PATH={bin_dir}:$PATH
  kubectl get nodes

Pods run as local processes in network namespaces ({where});
pod IPs are reachable from this host. Stop everything with: e2e/dev-cluster.sh down
"""
    )
    return 0


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
