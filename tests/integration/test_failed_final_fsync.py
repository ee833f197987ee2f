"""A node whose log failed (here: its last fsync, at stop) exits 1, not 0: Kubernetes
shows the pod's container terminated with an Error rather than Completed, and whoever
stops it learns that what was written since the last good fsync may not be on disk. It
exited 0 after logging the failure.

A failing fsync needs a faulty device; it is injected at ``os.fsync`` in the server
process by a ``sitecustomize`` module (the edge of the world: the disk), armed by a
marker file once the writes are in.
"""

from __future__ import annotations

from pathlib import Path

from tests.servers import ServerProcess, sitecustomize
from vectorizer.client import Point, VectorizerClient

INJECT = """
import errno, os

_fsync, _armed = os.fsync, os.environ["FSYNC_FAILS_ONCE_EXISTS"]


def fsync(fd):
    if os.path.exists(_armed):
        raise OSError(errno.EIO, "Input/output error (injected)")
    return _fsync(fd)


os.fsync = fsync
"""


async def test_a_node_whose_last_fsync_failed_exits_1(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    armed = tmp_path / "armed"
    srv = server_factory(
        data_dir=tmp_path / "data",
        args=["--wal-fsync", "60000", "--snapshot-on-shutdown", "false"],
        env={**sitecustomize(tmp_path / "inject", INJECT), "FSYNC_FAILS_ONCE_EXISTS": str(armed)},
    ).start()
    async with VectorizerClient(srv.url) as client:
        await client.create_collection("c", 2)
        await client.upsert("c", [Point(1, [1.0, 0.0])])  # (not fsynced: once a minute)
    armed.touch()
    assert srv.terminate() == 1
    log = srv.log()
    assert (
        "fsync of the log failed at close" in log
        and "stopped with the write-ahead log failed" in log
    )
    armed.unlink()
    srv.start()  # (what reached the disk is recovered: the page cache had the record)
    async with VectorizerClient(srv.url) as client:
        assert await client.count("c") == 1
