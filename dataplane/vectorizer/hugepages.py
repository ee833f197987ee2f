"""Back the server's large allocations (the HNSW graph above all) with huge pages.

hnswlib keeps a graph in one malloc'd block and a search reads it at random, so TLB
misses are a real part of a graph walk, more so on a virtual machine (two-level page
walks). Where transparent huge pages are in ``madvise`` mode (the usual default), glibc's
malloc asks for them only when the process starts with the tunable
``glibc.malloc.hugetlb=1``; numpy already does for its own large arrays. So
``vectorizer serve`` re-executes itself once, at start-up, with the tunable added to
``GLIBC_TUNABLES`` (``huge_pages: false`` turns this off). Measured on 100k x 128 vectors
(hnswlib directly, same machine, same minutes): one query 87 -> 72 us, batches of 32
47 -> 42 us a query, building +13%; resident memory unchanged.
"""

from __future__ import annotations

import os
import platform
import site
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import vectorizer
from vectorizer import stopsignals

TUNABLE = "glibc.malloc.hugetlb"
ENV = "GLIBC_TUNABLES"


def reexec_plan(
    argv: Sequence[str], environ: Mapping[str, str], libc: str, source: str | None = None
) -> tuple[list[str], dict[str, str]] | None:
    """The command line and environment to re-execute ``vectorizer <argv>`` with, or None
    when there is nothing to do: not glibc, or the tunable is already set (by the first
    start, or by the operator of the machine, whose choice stands). ``source``: the
    folder the package was imported from, when the interpreter would not find it there
    by itself (``package_source``)."""
    if libc != "glibc" or not sys.executable:
        return None
    env = huge_pages_environ(environ)
    if env is None:
        return None
    # -P: the directory the server was started in is not put first on the import path,
    # where a file named vectorizer.py would be run instead of the server. The folder
    # this start found the package in is: a start from a source folder (``cd dataplane;
    # python -m vectorizer``) found no package after the re-exec, or another one (an
    # editable install from elsewhere).
    path = env.get("PYTHONPATH", "")
    if source is not None and path.split(os.pathsep)[0] != source:
        env["PYTHONPATH"] = os.pathsep.join((source, path)) if path else source
    return [sys.executable, "-P", "-m", "vectorizer", *argv], env


def package_source() -> str | None:
    """The folder this process imported ``vectorizer`` from, unless it is one where the
    interpreter finds installed packages by itself (None)."""
    root = Path(vectorizer.__file__).resolve().parents[1]
    sites = [*site.getsitepackages(), site.getusersitepackages()]
    return None if root in {Path(f).resolve() for f in sites} else str(root)


def huge_pages_environ(environ: Mapping[str, str]) -> dict[str, str] | None:
    """``environ`` with the tunable added to ``GLIBC_TUNABLES``, or None when it is
    already there (either value: a choice made before stands)."""
    current = environ.get(ENV, "")
    if any(part.split("=", 1)[0] == TUNABLE for part in current.split(":")):
        return None
    return {**environ, ENV: f"{current}:{TUNABLE}=1" if current else f"{TUNABLE}=1"}


def reexec_with_huge_pages(argv: Sequence[str]) -> None:
    """Replace this process (same pid) with one whose malloc uses huge pages; returns
    only when there is nothing to do. Call it before any thread or file is opened."""
    plan = reexec_plan(argv, os.environ, platform.libc_ver()[0], package_source())
    if plan is not None:
        command, env = plan
        sys.stdout.flush()
        sys.stderr.flush()
        stopsignals.hold()  # (a stop signal meanwhile waits for the new image)
        try:
            os.execve(command[0], command, env)
        except OSError:
            stopsignals.note()
            raise
