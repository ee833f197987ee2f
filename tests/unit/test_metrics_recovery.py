"""/metrics while a node recovers, and the latency buckets the alerts rely on."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from vectorizer.observability import buckets
from vectorizer.observability.metrics import RequestMetrics
from vectorizer.server.app import create_app, open_node
from vectorizer.server.keys import METRICS, REPLICATION, STORE
from vectorizer.settings import Settings, setting_fields

# Read from what the node recovers (the store, then the replication state): unknown until
# it has, and exported without a sample meanwhile.
RECOVERED = (
    "vectorizer_wal_sequence",
    "vectorizer_wal_first_sequence",
    "vectorizer_wal_size_bytes",
    "vectorizer_collections_total",
    "vectorizer_snapshot_age_seconds",
    "vectorizer_snapshot_size_bytes",
    "vectorizer_disk_reserve_bytes",
    "vectorizer_replication_role",
    "vectorizer_replication_epoch",
    "vectorizer_replication_lag_ms",
    "vectorizer_replication_lag_operations",
)


def scrape(registry: object) -> dict[str, list[tuple[dict[str, str], float]]]:
    text = generate_latest(registry).decode()  # type: ignore[arg-type]
    return {
        f.name: [(s.labels, s.value) for s in f.samples]
        for f in text_string_to_metric_families(text)
    }


async def test_gauges_of_what_is_recovered_have_no_sample_until_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A restarted idle node exported vectorizer_wal_sequence 0 (and epoch 0, no
    collection, no snapshot) while it recovered, then its real values again: to
    changes() that was writes, and VectorizerSnapshotTooOld fired for a node that took
    none."""
    settings = Settings(data_dir=tmp_path / "data", snapshot_on_shutdown=True)
    app = create_app(settings)
    await open_node(app)
    await app[STORE].create_collection("c", {"dimension": 2})
    await app[REPLICATION].stop()
    await app[STORE].close()  # (with a snapshot)
    before = scrape(create_app(settings)[METRICS].registry)  # (a store never opened)
    for name in RECOVERED:
        assert before[name] == [], name

    app = create_app(settings)
    store = app[STORE]
    release, entered = threading.Event(), threading.Event()
    recover = store._recover

    def held() -> None:  # the recovery thread waits here, as a long replay would
        entered.set()
        release.wait(30)
        recover()

    monkeypatch.setattr(store, "_recover", held)
    opening = asyncio.create_task(open_node(app))
    try:
        assert await asyncio.to_thread(entered.wait, 10)
        during = scrape(app[METRICS].registry)
        assert during["vectorizer_ready"] == [({}, 0.0)]
        for name in RECOVERED:
            assert during[name] == [], (name, during[name])
        assert during["vectorizer_disk_free_bytes"][0][1] > 0  # (measured, not recovered)
    finally:
        release.set()
        await opening
    try:
        after = scrape(app[METRICS].registry)
        assert after["vectorizer_ready"] == [({}, 1.0)]
        assert after["vectorizer_wal_sequence"] == [({}, 1.0)]  # as before the restart
        assert after["vectorizer_collections_total"] == [({}, 1.0)]
        assert after["vectorizer_replication_epoch"][0][1] >= 1
        assert ({"role": "primary"}, 1.0) in after["vectorizer_replication_role"]
        assert after["vectorizer_snapshot_size_bytes"][0][1] > 0
    finally:
        await app[REPLICATION].stop()
        await app[STORE].close(take_snapshot=False)


def test_latency_buckets_reach_past_the_sync_write_timeout() -> None:
    """The largest finite bucket was 2.5 s: every slower search or write read as 2.5 s
    to histogram_quantile, so a p99 threshold of 2.5 s or more could never fire, and a
    write that waited out the sync replicas' timeout (5 s) could not be told apart."""
    sync_timeout_s = next(f.default for f in setting_fields() if f.name == "sync_timeout_ms") / 1000
    assert buckets.LATENCY[-1] >= 30
    assert any(sync_timeout_s < b for b in buckets.LATENCY)
    assert list(buckets.LATENCY) == sorted(buckets.LATENCY)
    m = RequestMetrics()
    m.searched([1], took=12.0)
    m.inserted(1, took=sync_timeout_s + 0.01)
    text = generate_latest(_registry(m)).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in ("vectorizer_search_latency_seconds", "vectorizer_insert_latency_seconds"):
        les = [float(s.labels["le"]) for s in families[name].samples if "le" in s.labels]
        assert les == [*buckets.LATENCY, float("inf")], name
    search = {
        s.labels["le"]: s.value
        for s in families["vectorizer_search_latency_seconds"].samples
        if s.name.endswith("_bucket")
    }
    assert search["10.0"] == 0 and search["30.0"] == 1  # (12 s: measured, not "+Inf")


def _registry(m: RequestMetrics) -> object:
    from prometheus_client import CollectorRegistry

    r = CollectorRegistry()
    r.register(m)
    return r
