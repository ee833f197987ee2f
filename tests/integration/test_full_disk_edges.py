"""A full disk at the edges of a node's life and of its snapshot files: a SIGTERM whose
shutdown snapshot does not fit, a snapshot file uploaded or fetched that does not fit,
and a primary started again on a full disk.

The disk is full to the server by a file size limit (RLIMIT_FSIZE, set on the running
process with prlimit: its writes fail with EFBIG as they fail with ENOSPC on a full
volume; the server logs at warning level, so its own log stays below the limit), or,
where a file of a few bytes must not fit, by a small tmpfs filled up (root only).
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import aiohttp.web
import numpy as np
import pytest

from tests.servers import ServerProcess, serving

DIM = 64
QUIET = ["--log-level", "warning", "--disk-reserve-bytes", "0", "--snapshot-interval-s", "0"]


def batch(first: int, n: int = 100) -> dict[str, Any]:
    vecs = np.random.default_rng(first).normal(size=(n, DIM)).round(4).tolist()
    return {"vectors": [{"id": first + i, "vector": v} for i, v in enumerate(vecs)]}


def count(srv: ServerProcess) -> int:
    status, body = srv.request("GET", "/collections/c")
    assert status == 200, body
    return int(body["collection"]["vector_count"])


def file_size_limit(srv: ServerProcess, nbytes: int) -> None:
    assert srv.proc is not None
    _, hard = resource.prlimit(srv.proc.pid, resource.RLIMIT_FSIZE)
    resource.prlimit(srv.proc.pid, resource.RLIMIT_FSIZE, (nbytes, hard))


def test_sigterm_on_a_full_disk_closes_the_log_and_exits_cleanly(tmp_path: Path) -> None:
    """The shutdown snapshot failing (it does not fit) raised out of the store's close:
    the log was never fsynced (writes acknowledged under an interval policy since its
    last fsync were not on disk), a traceback was logged and the exit code was 1. The
    snapshot is not needed (the log holds everything): an error, and exit 0."""
    data = tmp_path / "data"
    srv = ServerProcess(data_dir=data, args=[*QUIET, "--wal-fsync", "3600000"]).start()
    try:
        assert srv.request("POST", "/collections", {"name": "c", "dimension": DIM})[0] == 201
        for first in range(0, 1000, 100):
            assert srv.request("POST", "/collections/c/vectors", batch(first))[0] == 200
        file_size_limit(srv, 64 << 10)  # (the snapshot's vectors take 256 KiB)
        assert srv.terminate() == 0, srv.log()
    finally:
        srv.kill()
    log = srv.log()
    assert "Traceback" not in log, log
    assert "shutdown snapshot" in log and "File too large" in log, log
    assert not [p.name for p in (data / "snapshots").glob(".*")]  # no partial snapshot

    again = ServerProcess(data_dir=data, port=srv.port).start()
    try:
        assert count(again) == 1000
    finally:
        again.kill()


def small_file() -> bytes:
    """A snapshot file smaller than a buffered file's buffer (8 KiB): all of it reaches
    the disk when the file is closed, not while it is written."""
    return os.urandom(6000)


async def test_an_uploaded_snapshot_that_does_not_fit_is_insufficient_storage(
    tmp_path: Path,
) -> None:
    """Its last piece, written when the file was closed, failed as a 500 internal_error."""
    srv = ServerProcess(data_dir=tmp_path / "data", args=QUIET).start()
    try:
        assert srv.request("POST", "/collections", {"name": "c", "dimension": 2})[0] == 201
        file_size_limit(srv, 4096)
        form = aiohttp.FormData()
        form.add_field("snapshot", small_file(), filename="x.snapshot")
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{srv.url}/qdrant/collections/c/snapshots/upload", data=form) as r,
        ):
            status, body = r.status, await r.json()
        assert status == 507 and body["status"]["error"].startswith("insufficient_storage"), body
        assert not list((tmp_path / "data" / "collection-snapshots").iterdir())  # removed
        assert srv.request("GET", "/collections/c")[0] == 200  # untouched
    finally:
        srv.kill()


async def test_a_fetched_snapshot_that_does_not_fit_is_insufficient_storage(
    tmp_path: Path,
) -> None:
    """Writing it failed when the file was closed, and was answered as the client's bad
    ``location`` (400 validation_error): only fetching the URL is the client's."""

    async def handle(request: aiohttp.web.Request) -> aiohttp.web.Response:
        return aiohttp.web.Response(body=small_file())

    app = aiohttp.web.Application()
    app.router.add_get("/x.snapshot", handle)
    srv = ServerProcess(data_dir=tmp_path / "data", args=QUIET).start()
    try:
        assert srv.request("POST", "/collections", {"name": "c", "dimension": 2})[0] == 201
        file_size_limit(srv, 4096)
        async with serving(app) as port:
            location = {"location": f"http://127.0.0.1:{port}/x.snapshot"}
            async with (
                aiohttp.ClientSession() as session,
                session.put(
                    f"{srv.url}/qdrant/collections/c/snapshots/recover", json=location
                ) as r,
            ):
                status, body = r.status, await r.json()
        assert status == 507 and body["status"]["error"].startswith("insufficient_storage"), body
        assert not list((tmp_path / "data" / "collection-snapshots").iterdir())  # removed
    finally:
        srv.kill()


@contextlib.contextmanager
def small_disk(where: Path, size: str) -> Iterator[Path]:
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "--lazy", str(where)], check=True)


def fill(disk: Path, but: int) -> Path:
    """Fill ``disk`` but ``but`` bytes; the file that holds the room."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        chunk = b"\0" * (1 << 16)
        while True:
            try:
                f.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                if len(chunk) == 1:
                    break
                chunk = chunk[: len(chunk) // 2]
    os.truncate(filler, filler.stat().st_size - but)
    return filler


@pytest.mark.skipif(
    os.geteuid() != 0,
    reason="a disk with no room left even for a small file takes mounting a small tmpfs, "
    "which needs root (tests/unit/test_replication_full_disk.py covers it in-process)",
)
def test_a_primary_started_on_a_full_disk_serves_reads_and_writes_once_there_is_room(
    tmp_path: Path,
) -> None:
    """It could not record the new timeline its start begins, and refused to start
    ("cannot start: No space left on device"); the docs promise reads on a full disk."""
    with small_disk(tmp_path / "disk", "16m") as disk:
        args = QUIET
        log = tmp_path / "server.log"
        srv = ServerProcess(data_dir=disk / "data", args=args, log_path=log).start()
        try:
            assert srv.request("POST", "/collections", {"name": "c", "dimension": DIM})[0] == 201
            assert srv.request("POST", "/collections/c/vectors", batch(0))[0] == 200
            assert srv.terminate() == 0
            # (one page left: the data directory's lock file takes it for the pid it
            # holds, and nothing more fits)
            filler = fill(disk, but=os.sysconf("SC_PAGE_SIZE"))
            srv.start()  # (exited: cannot start)
            assert count(srv) == 100
            status, body = srv.request("POST", "/collections/c/vectors", batch(100))
            assert status == 507 and body["error"]["code"] == "insufficient_storage", body
            filler.unlink()  # room again: writes go on, no restart
            deadline = time.monotonic() + 10
            while srv.request("POST", "/collections/c/vectors", batch(100))[0] != 200:
                assert time.monotonic() < deadline, srv.log()
                time.sleep(0.2)
            assert count(srv) == 200
            assert srv.terminate() == 0
        finally:
            srv.kill()


def test_a_primary_whose_snapshot_does_not_fit_tells_its_replica_and_syncs_it_later(
    tmp_path: Path,
) -> None:
    """A replica needing a full sync from a primary whose snapshot does not fit: the
    error left the link's view as a traceback and the replica heard only that the link
    closed. Now the primary says why (logged, and to the replica), and the replica,
    trying again, is synced once there is room."""
    p = ServerProcess(
        data_dir=tmp_path / "p",
        args=[*QUIET, "--node-id", "p", "--snapshots-retained", "1", "--wal-segment-bytes", "2048"],
    ).start()
    r: ServerProcess | None = None
    try:
        assert p.request("POST", "/collections", {"name": "c", "dimension": DIM})[0] == 201
        for first in range(0, 500, 100):
            assert p.request("POST", "/collections/c/vectors", batch(first))[0] == 200
        assert p.request("POST", "/collections/c/snapshot")[0] == 201
        assert p.request("GET", "/stats")[1]["wal"]["first_sequence"] > 1  # (a full sync)
        assert p.request("POST", "/collections/c/vectors", batch(500))[0] == 200
        file_size_limit(p, 64 << 10)  # (the snapshot's vectors take 150 KiB)
        r = ServerProcess(
            data_dir=tmp_path / "r",
            args=[*QUIET, "--node-id", "r", "--role", "replica", "--primary-url", p.url],
        ).start()
        deadline = time.monotonic() + 20
        while "insufficient_storage" not in r.log():
            assert time.monotonic() < deadline, (p.log(), r.log())
            time.sleep(0.2)
        assert "replica r cannot be synced" in p.log() and "File too large" in p.log()
        assert r.request("GET", "/collections/c")[0] == 404  # (nothing installed)
        file_size_limit(p, resource.RLIM_INFINITY)  # room again: no restart
        deadline = time.monotonic() + 30
        while r.request("GET", "/collections/c")[0] != 200 or count(r) != 600:
            assert time.monotonic() < deadline, (p.log(), r.log())
            time.sleep(0.2)
    finally:
        if r is not None:
            r.kill()
        p.kill()
    assert "Traceback" not in p.log(), p.log()
