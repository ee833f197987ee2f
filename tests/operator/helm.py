"""Finding (or building) the helm binary for the chart tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = ROOT / "e2e" / "build-binaries.sh"


def _cache() -> Path:
    return Path(os.environ.get("VECTORIZER_E2E_CACHE", Path.home() / ".cache" / "vectorizer-e2e"))


def find_helm() -> tuple[str | None, str]:
    """(path to helm, or None and why not when no Go toolchain can build it); raises when
    a build that could run fails."""
    explicit = os.environ.get("HELM")
    if explicit and Path(explicit).is_file():
        return explicit, ""
    built = sorted(_cache().glob("bin/helm-*/helm"))
    if built:
        return str(built[-1]), ""
    on_path = shutil.which("helm")
    if on_path:
        return on_path, ""
    if not BUILD_SCRIPT.exists() or shutil.which("go") is None:
        return (
            None,
            "helm is not installed and cannot be built here (no Go toolchain or build script)",
        )
    # The e2e toolchain script builds helm from the Go module proxy (minutes when cold).
    done = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "helm"],
        capture_output=True,
        text=True,
        timeout=2400,
        check=False,
    )
    # A toolchain that is there but fails to build is a defect to see, not a skip.
    if done.returncode != 0:
        raise RuntimeError(f"building helm failed: {done.stderr.strip()[-2000:]}")
    helm = Path(done.stdout.strip().splitlines()[-1]) / "helm"
    if not helm.exists():
        raise RuntimeError(f"the build script produced no helm at {helm}")
    return str(helm), ""
