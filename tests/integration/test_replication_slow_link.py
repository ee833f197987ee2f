"""A link slower than one message per ``disconnect_timeout_ms`` still brings a replica
up to date: a replica drops a link that delivers no message for that long, and a
WebSocket message arrives whole or not at all, so the primary sends nothing larger than
a link carries in a moment (``replication/protocol.py``: snapshot files in 64 KiB
pieces, a large record in pieces the replica joins). Before, a record of a few MB, or a
1 MiB snapshot piece, on such a link timed out mid-message on every try, for ever."""

from __future__ import annotations

import asyncio

import numpy as np

from tests.faultproxy import FaultProxy
from tests.integration import test_replication
from tests.integration.test_replication import Cluster, caught_up, eventually
from vectorizer.client import Point

cluster = test_replication.cluster  # (the fixture)

DISCONNECT_S = 1.5  # (the cluster's --disconnect-timeout-ms)
RATE = 300_000  # bytes/s: 450 KB in the disconnect timeout


async def test_a_record_larger_than_the_link_carries_in_the_timeout_reaches_the_replica(
    cluster: Cluster,
) -> None:
    p = await cluster.start("p")
    vp = cluster.client(p)
    await vp.create_collection("c", 256, index="exact")
    proxy = await FaultProxy(p.port).start()
    try:
        r = await cluster.start("r", "--role", "replica", "--primary-url", proxy.url)
        vr = cluster.client(r)
        await eventually(lambda: caught_up(vp, vr))
        sent = (await vp.replicas())[0]["bytes_sent"]
        proxy.throttle(RATE)
        vectors = np.random.default_rng(1).normal(size=(1000, 256)).tolist()
        await vp.upsert("c", [Point(i, v) for i, v in enumerate(vectors)])  # (one record)
        await eventually(lambda: caught_up(vp, vr), timeout=40)
        assert await vr.count("c") == 1000
        record = (await vp.replicas())[0]["bytes_sent"] - sent
        assert record > 2 * RATE * DISCONNECT_S  # (what the test is about)
        assert (await vr.replication_status())["connected"] is True
    finally:
        await proxy.close()


async def test_a_full_sync_on_a_slow_link_completes(cluster: Cluster) -> None:
    p = await cluster.start("p", "--snapshots-retained", "1", "--wal-segment-bytes", "65536")
    vp = cluster.client(p)
    await vp.create_collection("c", 256, index="exact")
    rng = np.random.default_rng(2)
    for b in range(0, 2000, 500):
        vectors = rng.normal(size=(500, 256)).tolist()
        await vp.upsert("c", [Point(b + i, v) for i, v in enumerate(vectors)])
    snap = await vp.snapshot("c")  # (the log behind it is gone: a new replica syncs in full)
    assert snap["size_bytes"] > 2 * RATE * DISCONNECT_S
    proxy = await FaultProxy(p.port).start()
    proxy.throttle(RATE)
    try:
        r = await cluster.start("r", "--role", "replica", "--primary-url", proxy.url)
        vr = cluster.client(r)
        await eventually(lambda: caught_up(vp, vr), timeout=60)
        assert await vr.count("c") == 2000
        stats = await vr.replication_stats()
        assert stats["full_syncs_received"] == 1 and stats["failed_syncs"] == 0, stats
    finally:
        await proxy.close()


async def test_a_replica_synced_mid_stream_takes_the_history_its_snapshot_reaches(
    cluster: Cluster,
) -> None:
    """A replica streaming from far back, whose primary's log was truncated under the
    link (a snapshot), is sent a snapshot mid-stream that carries it past an epoch it
    had not reached: it adopted that epoch's history only with its next record, so a
    promotion before any (an idle primary) left it on an older timeline. It adopts it
    once the snapshot is installed."""
    flags = ("--snapshots-retained", "1", "--wal-segment-bytes", "65536")
    p = await cluster.start("p", *flags)
    vp = cluster.client(p)
    await vp.create_collection("c", 256, index="exact")
    proxy = await FaultProxy(p.port).start()
    try:
        r = await cluster.start("r", "--role", "replica", "--primary-url", proxy.url)
        vr = cluster.client(r)
        await vp.upsert("c", [Point(0, [1.0] * 256)])
        await eventually(lambda: caught_up(vp, vr))
        behind = (await vr.replication_status())["sequence"]
        await asyncio.to_thread(r.terminate)
        rng = np.random.default_rng(3)
        for b in range(1, 6001, 500):  # (~6 MB of log: more than one chunk of reading)
            vectors = rng.normal(size=(500, 256)).tolist()
            await vp.upsert("c", [Point(b + i, v) for i, v in enumerate(vectors)])
        await vp.fence()
        await vp.promote(2)
        await vp.upsert("c", [Point(7000, [1.0] * 256)])  # (the first record of epoch 2)
        # Memory holds no records after a restart: the link reads them from the log
        # files (killed: a stop's snapshot would cut the log, and the replica would be
        # synced in full at once).
        p.kill()
        await asyncio.to_thread(p.start)
        status = await vp.replication_status()
        # (what the records reach: a restart begins a timeline at the next record)
        want = [h for h in status["history"] if h[1] <= status["sequence"]]
        assert want[-1] == [2, behind + 13], status
        proxy.throttle(RATE)
        await asyncio.to_thread(r.start)

        async def streaming() -> bool:
            return bool((await vr.replication_status())["sequence"] > behind)

        await eventually(streaming, timeout=30)
        await vp.snapshot("c")  # (the log the link reads next is gone)
        proxy.throttle(None)

        async def synced() -> bool:
            return bool((await vr.replication_stats())["full_syncs_received"] == 1)

        await eventually(synced, timeout=60)
        await eventually(lambda: caught_up(vp, vr))

        async def adopted() -> bool:  # (no record came after the snapshot)
            return bool((await vr.replication_status())["history"] == want)

        await eventually(adopted, timeout=10)
        assert await vr.count("c") == await vp.count("c") == 6002
    finally:
        await proxy.close()
