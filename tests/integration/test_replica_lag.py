"""The lag a replica reports before it has caught up once: how long it has lacked the
records it knows of, not the host's uptime."""

from __future__ import annotations

import asyncio
import time
import urllib.request

from tests.faultproxy import FaultProxy
from tests.integration import test_replication
from tests.integration.test_replication import Cluster, caught_up, eventually, seed
from tests.integration.test_replication_metrics import gauge

cluster = test_replication.cluster  # (the fixture)


def lag_header(url: str) -> tuple[int, float]:
    with urllib.request.urlopen(url + "/health") as r:
        return int(r.headers["X-Vectorizer-Lag-Operations"]), float(
            r.headers["X-Vectorizer-Lag-Ms"]
        )


async def test_a_new_replica_streaming_the_log_reports_a_lag_since_it_started(
    cluster: Cluster,
) -> None:
    """Its lag was measured from monotonic time 0 until it first caught up: the host's
    uptime (days, on a real node), which fired VectorizerReplicationLagHigh for every
    new or restarted replica with a log to catch up on."""
    p = await cluster.start("p")
    vp = cluster.client(p)
    await vp.create_collection("c", 8)
    await seed(vp, 600, batch=1)  # 600 records to stream
    proxy = await FaultProxy(p.port).start()
    proxy.throttle(20000)  # a few seconds to stream them
    try:
        started = time.monotonic()
        slow = ("--disconnect-timeout-ms", "10000")  # (a throttled chunk takes seconds)
        r = await cluster.start("r", "--role", "replica", "--primary-url", proxy.url, *slow)
        vr = cluster.client(r)
        behind: list[tuple[float, float, float]] = []  # (elapsed ms, metric, header)
        while time.monotonic() - started < 60:
            ops = await asyncio.to_thread(gauge, r, "lag_operations")
            lag_ms = await asyncio.to_thread(gauge, r, "lag_ms")
            header_ops, header_ms = await asyncio.to_thread(lag_header, r.url)
            elapsed_ms = (time.monotonic() - started) * 1000
            if ops or header_ops:
                behind.append((elapsed_ms, lag_ms, header_ms))
            elif behind:  # (caught up; before the welcome, it knows of nothing to lack)
                break
            await asyncio.sleep(0.2)
        assert len(behind) >= 3, "the replica caught up before it could be seen behind"
        for elapsed_ms, lag_ms, header_ms in behind:
            assert 0 <= lag_ms <= elapsed_ms, (lag_ms, elapsed_ms)
            assert 0 <= header_ms <= elapsed_ms, (header_ms, elapsed_ms)
        assert max(lag for _, lag, _ in behind) > 0  # (behind, it says so)
        status = await vr.replication_status()
        assert status.get("lag_ms", 0) <= (time.monotonic() - started) * 1000
        proxy.throttle(None)
        await eventually(lambda: caught_up(vp, vr))
        await eventually(lambda: asyncio.to_thread(lambda: gauge(r, "lag_ms") == 0))
    finally:
        await proxy.close()
