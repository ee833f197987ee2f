"""A replica catching up from the primary's log files (further behind than the records
the primary keeps in memory) is sent them a bounded chunk at a time, read off the loop.
The primary used to read the whole retained log into memory at once, on its event loop:
a 247 MB log took 200 MB more and stalled it 0.77 s for one replica, 700 MB and 1.36 s
for three."""

from __future__ import annotations

import asyncio
import base64
import os

from tests.faultproxy import FaultProxy
from tests.integration import test_replication
from tests.integration.test_replication import Cluster, all_points, caught_up, eventually
from tests.servers import ServerProcess
from vectorizer.client import Point

cluster = test_replication.cluster  # (the fixture)

RECORDS = 40  # of ~1 MB each, one to a log segment


def _memory_kib(srv: ServerProcess, field: str) -> int:
    assert srv.proc is not None
    with open(f"/proc/{srv.proc.pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def _reset_peak(srv: ServerProcess) -> None:
    """Start the process's peak resident size (VmHWM) again from what it holds now."""
    assert srv.proc is not None
    with open(f"/proc/{srv.proc.pid}/clear_refs", "w") as f:
        f.write("5")


async def test_a_replica_catches_up_from_a_long_log_read_a_chunk_at_a_time(
    cluster: Cluster,
) -> None:
    p = await cluster.start("p", "--wal-segment-bytes", str(1 << 20), "--snapshots-retained", "1")
    vp = cluster.client(p)
    await vp.create_collection("c", 4, index="exact")
    proxy = await FaultProxy(p.port).start()
    try:
        r = await cluster.start("r", "--role", "replica", "--primary-url", proxy.url)
        vr = cluster.client(r)
        await eventually(lambda: caught_up(vp, vr))
        assert r.terminate() == 0
        # While no replica is linked the primary keeps no records in memory: the replica
        # is sent these from the log files. (Points written again and again: the log
        # grows, what the nodes hold does not.)
        for i in range(RECORDS):
            blob = base64.b64encode(os.urandom(750_000)).decode()  # (little to compress)
            await vp.upsert("c", [Point(i % 4, [1.0, 0, 0, float(i)], {"blob": blob})])
        wal = (await vp.stats())["wal"]
        log_kib = wal["size_bytes"] >> 10
        assert wal["first_sequence"] == 1 and log_kib > RECORDS * 900

        _reset_peak(p)
        before = _memory_kib(p, "VmRSS")
        proxy.throttle(4 << 20)  # (~10 s for the whole log)
        await asyncio.to_thread(r.start)

        async def streaming() -> bool:
            return bool((await vr.replication_status())["sequence"] > 8)

        await eventually(streaming)
        grown = _memory_kib(p, "VmHWM") - before
        assert grown < log_kib // 2, (grown, log_kib)  # (a chunk at a time, not the log)

        # A snapshot truncates the log behind the replica (it is far from the end): the
        # next chunk is not there any more, and the replica is sent the snapshot instead.
        await vp.snapshot("c")
        assert (await vp.stats())["wal"]["first_sequence"] >= RECORDS
        proxy.throttle(None)
        await eventually(lambda: caught_up(vp, vr))
        assert (await vr.replication_stats())["full_syncs"] == 1
        assert await all_points(vr, "c") == await all_points(vp, "c")
    finally:
        await proxy.close()
