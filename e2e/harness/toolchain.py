"""Locate (building on first use) the control-plane binaries via build-binaries.sh."""

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

E2E_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = E2E_DIR.parent
BUILD_SCRIPT = E2E_DIR / "build-binaries.sh"


class ToolchainError(RuntimeError):
    pass


def ensure_binaries(components: Sequence[str] = ("k8s", "etcd")) -> Path:
    """Directory holding the binaries; a warm cache answers in well under a second.

    VECTORIZER_E2E_BIN_DIR skips the build and uses prebuilt binaries instead.
    """
    if preset := os.environ.get("VECTORIZER_E2E_BIN_DIR"):
        return Path(preset)
    # stderr is left attached so a cold build (minutes) shows its progress.
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT), *components], stdout=subprocess.PIPE, text=True, check=False
    )
    if result.returncode != 0:
        msg = f"{BUILD_SCRIPT} {' '.join(components)} failed with exit code {result.returncode}"
        raise ToolchainError(msg)
    return Path(result.stdout.strip().splitlines()[-1])


def kubernetes_version() -> str:
    """The k8s.io/kubernetes version pinned by e2e/toolchain/k8s/go.mod."""
    for line in (E2E_DIR / "toolchain" / "k8s" / "go.mod").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "k8s.io/kubernetes":
            return fields[1]
    msg = "k8s.io/kubernetes not found in e2e/toolchain/k8s/go.mod"
    raise ToolchainError(msg)
