"""Prometheus metrics of one node: one registry, every name defined here.

Request metrics are observed as requests happen; the node's state (collections,
vectors, log, snapshot, replication) is read from the store and the replication
manager at scrape time by ``NodeCollector``, so it can never drift from the truth.
Labels are bounded: route templates (never raw paths), status codes, error codes,
collection names (bounded by the collections that exist) and the three roles.
"""

from __future__ import annotations

import bisect
import itertools
import resource
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

import psutil
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from vectorizer.errors import all_codes
from vectorizer.observability.buckets import FSYNC as _FSYNC
from vectorizer.observability.buckets import LATENCY as _LATENCY
from vectorizer.observability.buckets import RESULTS as _RESULTS

# The *_created series only add noise to every scrape.
disable_created_metrics()  # type: ignore[no-untyped-call]

if TYPE_CHECKING:
    from vectorizer.engine.store import Store
    from vectorizer.replication.manager import ReplicationManager


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = RequestMetrics()
        r.register(self.requests)
        self.wal_fsync = Histogram(
            "vectorizer_wal_fsync_seconds",
            "Duration of write-ahead log fsyncs",
            buckets=_FSYNC,
            registry=r,
        )
        self.snapshot_duration = Histogram(
            "vectorizer_snapshot_duration_seconds",
            "Time to write a snapshot",
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60),
            registry=r,
        )
        self.replication_timeouts = Counter(
            "vectorizer_replication_sync_timeouts",
            "Writes not acknowledged because too few replicas confirmed them in time",
            registry=r,
        )

    def attach(self, store: Store, replication: ReplicationManager) -> None:
        store.on_fsync = self.wal_fsync.observe
        store.on_snapshot = lambda seconds, _size: self.snapshot_duration.observe(seconds)
        replication.on_sync_timeout = self.replication_timeouts.inc
        self.registry.register(NodeCollector(store, replication))


class _Histogram:
    """Bucket counts and a sum, as plain numbers."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1  # le: value <= bound
        self.total += value

    def buckets(self) -> list[tuple[str, float]]:
        cumulative = list(itertools.accumulate(self.counts))
        les = [*(floatToGoString(b) for b in self.bounds), "+Inf"]  # type: ignore[no-untyped-call]
        return list(zip(les, cumulative, strict=True))


# The methods the API answers, each a label value, and UNKNOWN (a request that could
# not be parsed); the rest are counted as "OTHER".
_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "UNKNOWN"))


class RequestMetrics(Collector):
    """What the requests did: counted by the event loop thread that answers them, as
    plain numbers, and turned into metric families at scrape time.

    A prometheus_client counter or histogram takes a lock on every update, and a search
    request updates five of them; here it is a few additions. Every writer is on the
    loop thread, and so is the scrape (the /metrics view), so nothing is read half-done.
    """

    LABELS = {
        "vectorizer_http_requests": ["method", "route", "status"],
        "vectorizer_http_request_duration_seconds": ["route"],
        "vectorizer_api_errors": ["code"],
    }

    def __init__(self) -> None:
        self.http: dict[tuple[str, str, int], int] = {}
        self.http_latency: dict[str, _Histogram] = {}
        self.searches = 0
        self.search_latency = _Histogram(_LATENCY)
        self.search_results = _Histogram(_RESULTS)
        self.inserts = 0
        self.insert_latency = _Histogram(_LATENCY)
        self.inserted_vectors = 0
        self.errors = dict.fromkeys(all_codes(), 0)  # every series exists from the start
        self.fast_path = 0

    def request(self, method: str, route: str, status: int, took: float) -> None:
        # (any other method is "OTHER": the C parser takes some 35 methods, the pure
        # Python one any token, and each would have been a series of its own)
        key = (method if method in _METHODS else "OTHER", route, status)
        self.http[key] = self.http.get(key, 0) + 1
        latency = self.http_latency.get(route)
        if latency is None:
            latency = self.http_latency[route] = _Histogram(_LATENCY)
        latency.observe(took)

    def searched(self, result_counts: list[int], took: float) -> None:
        """``took``: the request's time, shared equally among its queries (a batch of 100
        answered in 50 ms is 100 queries of 0.5 ms each, the sum stays the time spent)."""
        self.searches += len(result_counts)
        share = took / len(result_counts)
        for n in result_counts:
            self.search_latency.observe(share)
            self.search_results.observe(n)

    def inserted(self, points: int, took: float) -> None:
        self.inserts += 1
        self.insert_latency.observe(took)
        self.inserted_vectors += points

    def error(self, code: str) -> None:
        self.errors[code] = self.errors.get(code, 0) + 1

    def collect(self) -> Iterator[Metric]:
        yield _counter("vectorizer_search_requests", _DOCS["search_requests"], self.searches)
        yield _histogram(
            "vectorizer_search_latency_seconds", _DOCS["search_latency"], self.search_latency
        )
        yield _histogram(
            "vectorizer_search_results_count", _DOCS["search_results"], self.search_results
        )
        yield _counter("vectorizer_insert_requests", _DOCS["insert_requests"], self.inserts)
        yield _histogram(
            "vectorizer_insert_latency_seconds", _DOCS["insert_latency"], self.insert_latency
        )
        yield _counter(
            "vectorizer_inserted_vectors", _DOCS["inserted_vectors"], self.inserted_vectors
        )
        yield _counter("vectorizer_http_fast_path_requests", _DOCS["fast_path"], self.fast_path)
        errors = CounterMetricFamily(
            "vectorizer_api_errors",
            _DOCS["api_errors"],
            labels=self.LABELS["vectorizer_api_errors"],
        )
        for code, n in self.errors.items():
            errors.add_metric([code], n)
        yield errors
        http = CounterMetricFamily(
            "vectorizer_http_requests",
            _DOCS["http_requests"],
            labels=self.LABELS["vectorizer_http_requests"],
        )
        for (method, route, status), n in self.http.items():
            http.add_metric([method, route, str(status)], n)
        yield http
        duration = HistogramMetricFamily(
            "vectorizer_http_request_duration_seconds",
            _DOCS["http_latency"],
            labels=self.LABELS["vectorizer_http_request_duration_seconds"],
        )
        for route, hist in self.http_latency.items():
            duration.add_metric([route], hist.buckets(), hist.total)
        yield duration


_DOCS = {
    "search_requests": "Search queries answered (each query of a batch counts)",
    "search_latency": (
        "Time to answer one search query (a batch's time shared equally among its queries)"
    ),
    "search_results": "Results returned per search query",
    "insert_requests": "Write requests that inserted or updated points",
    "insert_latency": (
        "Time to acknowledge an insert/update request (durability and write concern included)"
    ),
    "inserted_vectors": "Points inserted or replaced",
    "fast_path": (
        "Searches answered beside aiohttp's request machinery (the fast path; also counted"
        " in vectorizer_http_requests_total)"
    ),
    "api_errors": "Error responses by stable error code",
    "http_requests": "HTTP requests by route template, method and status",
    "http_latency": "HTTP request duration by route template",
}


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _histogram(name: str, doc: str, hist: _Histogram) -> HistogramMetricFamily:
    return HistogramMetricFamily(name, doc, buckets=hist.buckets(), sum_value=hist.total)


def _gauge(name: str, doc: str, value: float | None) -> GaugeMetricFamily:
    """A gauge; without a sample when ``value`` is None (not known yet)."""
    return GaugeMetricFamily(name, doc, value=value)


class NodeCollector(Collector):
    """Gauges and counters read from the node at scrape time.

    Until the node has recovered (the store loaded, the replication state read), what it
    holds is not yet known: the gauges read from them are exported without a sample
    rather than as the placeholders they hold meanwhile (sequence 0, epoch 0, no
    collection, no snapshot, the role the settings give). A false 0 followed by the real
    value again looks like a reset or a jump to a rule (writes arriving, an epoch
    change); a gap is only a gap. ``vectorizer_ready`` says which it is.
    """

    def __init__(self, store: Store, replication: ReplicationManager) -> None:
        self.store = store
        self.replication = replication
        self._process = psutil.Process()

    def collect(self) -> Iterator[Metric]:
        store, repl = self.store, self.replication
        stats = store.stats()
        recovered = store.ready
        started = recovered and repl.started  # (the replication state is read after)

        def known(value: float) -> float | None:
            return value if recovered else None

        vectors = GaugeMetricFamily(
            "vectorizer_vectors_total", "Points stored, by collection", labels=["collection"]
        )
        if recovered:
            for coll in store.collections():
                vectors.add_metric([coll.name], len(coll))
        yield vectors
        yield _gauge(
            "vectorizer_collections_total",
            "Collections on this node",
            known(stats["collections"]),
        )
        yield GaugeMetricFamily(
            "vectorizer_memory_usage_bytes",
            "Resident memory of the process",
            value=self._process.memory_info().rss,
        )
        mem = stats["memory"]
        yield GaugeMetricFamily(
            "vectorizer_memory_anonymous_bytes",
            "Anonymous resident memory (the heap): what the memory guard counts",
            value=mem["used_bytes"],
        )
        yield GaugeMetricFamily(
            "vectorizer_memory_limit_bytes",
            "Memory the node may use: its cgroup's limit or the machine's (0: no limit)",
            value=mem["limit_bytes"],
        )
        yield GaugeMetricFamily(
            "vectorizer_memory_high_water_bytes",
            "Anonymous memory past which writes that add data are refused (0: guard off)",
            value=mem["high_water_bytes"],
        )
        disk = stats["disk"]
        yield GaugeMetricFamily(
            "vectorizer_disk_free_bytes",
            "Free space on the data directory's volume",
            value=disk["free_bytes"],
        )
        yield _gauge(  # (the automatic reserve is sized from the snapshot recovery loads)
            "vectorizer_disk_reserve_bytes",
            "Free space below which writes that add data are refused (0: no reserve)",
            known(disk["reserve_bytes"]),
        )
        yield GaugeMetricFamily(
            "vectorizer_ready",
            "1 when the node has recovered and serves requests",
            value=1 if store.ready else 0,
        )
        yield _gauge(
            "vectorizer_wal_size_bytes",
            "Bytes in retained write-ahead log segments",
            known(stats["wal"]["size_bytes"]),
        )
        yield _gauge(
            "vectorizer_wal_sequence",
            "Sequence number of the newest applied record",
            known(stats["sequence"]),
        )
        yield _gauge(
            "vectorizer_wal_first_sequence",
            "Oldest sequence still retained in the log",
            known(stats["wal"]["first_sequence"]),
        )
        age = stats["snapshot_age_seconds"]
        yield _gauge(
            "vectorizer_snapshot_age_seconds",
            "Seconds since the newest snapshot (since start when there is none)",
            known(age if age is not None else stats["uptime_seconds"]),
        )
        snap = stats["snapshot"]
        yield _gauge(
            "vectorizer_snapshot_size_bytes",
            "Size of the newest snapshot",
            known(snap["size_bytes"] if snap else 0),
        )
        role = GaugeMetricFamily(
            "vectorizer_replication_role", "1 for this node's current role", labels=["role"]
        )
        if started:
            for name in ("primary", "replica", "fenced"):
                role.add_metric([name], 1 if repl.state.role.value == name else 0)
        yield role
        yield _gauge(
            "vectorizer_replication_epoch",
            "This node's replication epoch",
            repl.state.epoch if started else None,
        )
        rstats = repl.stats()
        yield _gauge(
            "vectorizer_replication_lag_ms",
            "Replication lag: on a replica its own, on a primary the largest of its replicas "
            "(linked or not): the age of the oldest record one lacks",
            float(rstats["lag_ms"] or 0.0) if started else None,
        )
        yield _gauge(
            "vectorizer_replication_lag_operations",
            "Operations not yet applied (replica) or not yet confirmed by the slowest replica",
            float(rstats["operations_pending"] or 0) if started else None,
        )
        yield GaugeMetricFamily(
            "vectorizer_replication_connected_replicas",
            "Replicas linked to this primary",
            value=rstats["connected_replicas"],
        )
        yield CounterMetricFamily(
            "vectorizer_replication_bytes_sent",
            "Bytes sent to replicas",
            value=rstats["bytes_sent"],
        )
        yield CounterMetricFamily(
            "vectorizer_replication_bytes_received",
            "Bytes received from the primary",
            value=rstats["bytes_received"],
        )
        full_syncs = CounterMetricFamily(
            "vectorizer_replication_full_syncs",
            "Full syncs (snapshot transfers) completed: sent to replicas, received from a primary",
            labels=["direction"],
        )
        full_syncs.add_metric(["sent"], rstats["full_syncs_sent"])
        full_syncs.add_metric(["received"], rstats["full_syncs_received"])
        yield full_syncs
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        yield GaugeMetricFamily(
            "vectorizer_memory_peak_bytes",
            "Peak resident memory of the process",
            value=peak * (1 if sys.platform == "darwin" else 1024),
        )
