"""The image cannot be built here (no container engine): check what it promises instead.

One image runs both roles: its entrypoint is ``vectorizer``; the data-plane pods run
``vectorizer serve`` and the operator's Deployment ``vectorizer operator``. Every
command named by the Dockerfile, the StatefulSet and the chart must exist.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from tests.operator.conftest import OPTIONS, make_cluster
from vectorizer_operator.builders.statefulset import build_statefulset

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DEPLOYMENT = ROOT / "charts" / "vectorizer-operator" / "templates" / "deployment.yaml"


def final_stage() -> list[str]:
    lines = [
        ln.strip()
        for ln in DOCKERFILE.read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    starts = [i for i, ln in enumerate(lines) if ln.upper().startswith("FROM ")]
    return lines[starts[-1] :]


def instruction(stage: list[str], name: str) -> str | None:
    found = [ln for ln in stage if ln.upper().startswith(name + " ")]
    return found[-1][len(name) + 1 :].strip() if found else None


def cli_has(command: str) -> bool:
    done = subprocess.run(
        [sys.executable, "-m", "vectorizer", command, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode == 0


def test_final_stage_is_slim_non_root_without_build_tools() -> None:
    stage = final_stage()
    assert "slim" in stage[0]
    user = instruction(stage, "USER")
    assert user is not None and user not in ("0", "root")
    text = "\n".join(stage)
    for tool in ("g++", "gcc", "build-essential", "make "):
        assert tool not in text, f"{tool} in the final stage"


def test_entrypoint_is_vectorizer_and_it_is_installed() -> None:
    stage = final_stage()
    assert json.loads(instruction(stage, "ENTRYPOINT") or "null") == ["vectorizer"]
    scripts = {ep.name: ep.value for ep in metadata.entry_points(group="console_scripts")}
    assert scripts.get("vectorizer") == "vectorizer.__main__:main"  # (see stopsignals.py)
    assert (
        shutil.which("vectorizer") is not None
        or Path(sys.executable).with_name("vectorizer").exists()
    )


def test_the_default_command_exists() -> None:
    cmd = json.loads(instruction(final_stage(), "CMD") or "[]")
    assert cmd and cli_has(cmd[0])


def test_the_data_plane_pods_run_an_existing_command() -> None:
    container = build_statefulset(make_cluster(), OPTIONS, replicas=1)["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert container["command"] == ["vectorizer"]
    assert cli_has(container["args"][0])


def test_the_operator_deployment_runs_an_existing_command() -> None:
    text = DEPLOYMENT.read_text()
    assert 'command: ["vectorizer"]' in text
    match = re.search(r"args:\n\s+- (\w+)", text)
    assert match is not None
    command = match.group(1)
    assert command == "operator"
    assert cli_has(command)


def test_the_operator_module_runs_on_its_own() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "vectorizer_operator", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "VectorizerCluster" in done.stdout


def test_operator_dependencies_are_declared() -> None:
    # Runtime requirements only (not the test extra's).
    requires = [
        r.split(";")[0] for r in metadata.requires("vectorizer") or [] if "extra ==" not in r
    ]
    names = {re.split(r"[<>=!~ \[]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requires}
    assert {"kopf", "kubernetes-asyncio"} <= names
