"""Replication figures a primary and a replica report: the lag of a replica that went
away, and counters that never go back when a node changes role."""

from __future__ import annotations

import asyncio
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from tests.integration import test_replication
from tests.integration.test_replication import (
    Cluster,
    caught_up,
    confirmed,
    eventually,
    primary_and_replica,
    seed,
)
from tests.servers import ServerProcess

cluster = test_replication.cluster  # (the fixture)


def scrape(srv: ServerProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(srv.url + "/metrics") as r:
        text = r.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("vectorizer_replication_")
    }


def gauge(srv: ServerProcess, name: str) -> float:
    return scrape(srv)[(f"vectorizer_replication_{name}", ())]


async def test_a_primary_reports_the_lag_of_a_replica_that_went_away(cluster: Cluster) -> None:
    """The age of the oldest record a known replica lacks, linked or not: a primary
    whose only replica is down 5 operations behind reported a lag of 0 ms (it kept no
    commit times while no replica was linked)."""
    p, vp, r, _vr = await primary_and_replica(cluster)
    await confirmed(vp)
    assert r.terminate() == 0
    await eventually(lambda: asyncio.to_thread(lambda: gauge(p, "connected_replicas") == 0))
    first_write = time.monotonic()
    await seed(vp, 5, batch=1)
    await asyncio.sleep(1.5)
    lag_ms = gauge(p, "lag_ms")
    waited_ms = (time.monotonic() - first_write) * 1000
    assert gauge(p, "lag_operations") == 5
    assert 1400 <= lag_ms <= waited_ms + 50, (lag_ms, waited_ms)
    [replica] = await vp.replicas()
    assert replica["status"] == "Disconnected" and replica["lag_operations"] == 5
    assert replica["lag_ms"] >= 1400
    await asyncio.sleep(0.5)
    assert gauge(p, "lag_ms") >= lag_ms + 400  # it keeps growing while the replica is away

    # Back, it catches up and the lag ends.
    await asyncio.to_thread(r.start)
    await confirmed(vp)
    assert gauge(p, "lag_ms") == 0 and gauge(p, "lag_operations") == 0


async def test_a_lag_older_than_the_records_kept_for_streaming_is_not_under_reported(
    cluster: Cluster,
) -> None:
    """Records committed while no replica was linked are not kept for streaming; a
    replica that comes back behind them was measured from the oldest record kept (the
    first written after it linked), not from the oldest it lacked."""
    p, vp, r, _vr = await primary_and_replica(cluster)
    await confirmed(vp)
    assert r.terminate() == 0
    await eventually(lambda: asyncio.to_thread(lambda: gauge(p, "connected_replicas") == 0))
    first_write = time.monotonic()
    await seed(vp, 3, batch=1)  # while no replica is linked
    # A second replica links (so records are kept for streaming again) and takes new ones.
    other = await cluster.start("r2", "--role", "replica", "--primary-url", p.url)
    vother = cluster.client(other)
    await eventually(lambda: caught_up(vp, vother))
    await asyncio.sleep(1.0)
    await seed(vp, 2, start=100, batch=1)
    await eventually(lambda: caught_up(vp, vother))
    reps = {x["id"]: x for x in await vp.replicas()}
    waited_ms = (time.monotonic() - first_write) * 1000
    assert reps["r"]["lag_operations"] == 5
    assert 1000 <= reps["r"]["lag_ms"] <= waited_ms + 50, (reps["r"], waited_ms)
    assert gauge(p, "lag_ms") >= 1000


async def test_replication_counters_survive_a_promotion(cluster: Cluster) -> None:
    """Counters are totals over the process's life: a replica's bytes received went to
    0 when it was promoted, and its full syncs became the primary's (snapshots sent)."""
    p = await cluster.start("p", "--snapshots-retained", "1", "--wal-segment-bytes", "2048")
    vp = cluster.client(p)
    await vp.create_collection("c", 8)
    await seed(vp, 300)
    await vp.snapshot("c")
    assert (await vp.stats())["wal"]["first_sequence"] > 1  # a new replica needs a full sync
    r = await cluster.start("r", "--role", "replica", "--primary-url", p.url)
    vr = cluster.client(r)
    await eventually(lambda: caught_up(vp, vr))
    before = scrape(r)
    received = before[("vectorizer_replication_bytes_received_total", ())]
    assert received > 1000
    sent = [v for (name, labels), v in scrape(p).items() if name.endswith("full_syncs_total")]
    assert sum(sent) == 1  # (the primary's: the snapshot it sent)

    assert p.terminate() == 0
    epoch = (await vr.replication_status())["epoch"]
    await vr.promote(epoch + 1)
    after = scrape(r)
    assert after[("vectorizer_replication_role", (("role", "primary"),))] == 1
    for key, value in before.items():
        if key[0].endswith("_total"):
            assert after[key] >= value, (key, value, after[key])
    full_syncs = "vectorizer_replication_full_syncs_total"
    assert after[(full_syncs, (("direction", "received"),))] == 1
    assert after[(full_syncs, (("direction", "sent"),))] == 0
    stats = await vr.replication_stats()
    assert stats["bytes_received"] >= received
    assert stats["full_syncs"] == stats["full_syncs_received"] == 1
    assert stats["full_syncs_sent"] == 0
