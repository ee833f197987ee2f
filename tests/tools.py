"""Programs some tests need, installed from Debian's packages when missing (CI runs as root)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def debian_tool(binary: str, package: str) -> str:
    """The path of ``binary``, installing ``package`` with apt-get first if needed."""
    path = shutil.which(binary)
    if path:
        return path
    if os.geteuid() != 0:
        pytest.skip(f"{binary} is not installed and installing {package} needs root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package],
        check=True,
        env=env,
        capture_output=True,
    )
    path = shutil.which(binary)
    assert path, f"{package} installed but {binary} is not on PATH"
    return path
