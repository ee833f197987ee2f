"""A replica receiving a full sync longer than ``disconnect_timeout_ms`` is listed
``Syncing`` (and counted connected) for as long as the transfer moves; one that stalls is
``Disconnected``. A replica used to say nothing until its snapshot was installed, and the
primary listed it Disconnected (dropped from ``connected_replicas``) while the bytes
kept flowing."""

from __future__ import annotations

import asyncio
import time

import numpy as np

from tests.faultproxy import FaultProxy
from tests.integration import test_replication
from tests.integration.test_replication import Cluster, caught_up, eventually
from tests.integration.test_replication_metrics import gauge
from vectorizer.client import Point, VectorizerClient

cluster = test_replication.cluster  # (the fixture)

DISCONNECT_S = 1.5  # (the cluster's --disconnect-timeout-ms)


async def _replica_status(vp: VectorizerClient) -> tuple[str, int] | None:
    reps = await vp.replicas()
    return (reps[0]["status"], reps[0]["bytes_sent"]) if reps else None


async def test_a_replica_in_a_long_full_sync_is_syncing_until_the_transfer_stalls(
    cluster: Cluster,
) -> None:
    p = await cluster.start("p", "--snapshots-retained", "1", "--wal-segment-bytes", "65536")
    vp = cluster.client(p)
    await vp.create_collection("c", 256, index="exact")
    rng = np.random.default_rng(0)
    for b in range(0, 12_000, 2000):
        vectors = rng.normal(size=(2000, 256)).tolist()
        await vp.upsert("c", [Point(b + i, v) for i, v in enumerate(vectors)])
    snap = await vp.snapshot("c")  # (the log behind it is gone: a new replica syncs in full)
    assert snap["size_bytes"] > 12_000_000
    proxy = await FaultProxy(p.port).start()
    # ~6 s for the transfer, a 1 MiB chunk every half second (the replica drops a link
    # silent for its disconnect timeout)
    proxy.throttle(2 << 20)
    try:
        r = await cluster.start("r", "--role", "replica", "--primary-url", proxy.url)
        vr = cluster.client(r)

        async def syncing() -> bool:
            return (await _replica_status(vp) or ("",))[0] == "Syncing"

        await eventually(syncing)
        seen = set()
        until = time.monotonic() + 2 * DISCONNECT_S
        while time.monotonic() < until:
            status, sent = await _replica_status(vp) or ("", 0)
            connected = await asyncio.to_thread(gauge, p, "connected_replicas")
            seen.add((status, connected))
            await asyncio.sleep(0.1)
        assert seen == {("Syncing", 1)}, seen
        assert sent < snap["size_bytes"]  # (all of it while the transfer was under way)

        proxy.cut()  # the transfer stalls (the replica's beats stop, and the sends)

        async def disconnected() -> bool:
            return (await _replica_status(vp) or ("",))[0] == "Disconnected"

        await eventually(disconnected, timeout=10)
        assert await asyncio.to_thread(gauge, p, "connected_replicas") == 0

        proxy.heal()
        proxy.throttle(None)
        await eventually(lambda: caught_up(vp, vr))
        assert await vr.count("c") == 12_000
    finally:
        await proxy.close()
