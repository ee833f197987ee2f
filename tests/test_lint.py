"""Lint and type checks run with the tests, so CI's one command covers them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True)


def test_ruff_is_clean() -> None:
    result = run("ruff", "check", "dataplane", "operator", "tests", "benches", "e2e")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_applied() -> None:
    result = run("ruff", "format", "--check", "dataplane", "operator", "tests", "benches", "e2e")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean() -> None:
    result = run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_cancellation_is_swallowed_while_stopping_tasks() -> None:
    """``with suppress(CancelledError): await task`` swallows the caller's own
    cancellation along with the task's; ``vectorizer.tasks.stop`` does not."""
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for top in ("dataplane", "operator", "e2e/harness")
        for path in sorted((ROOT / top).rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if "suppress(asyncio.CancelledError)" in line and "__main__" not in path.name
    ]
    assert not offenders, offenders
