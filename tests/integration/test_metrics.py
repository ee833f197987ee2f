"""/metrics on a real server: the series exist, move with traffic and stay bounded."""

from __future__ import annotations

import re
import socket
import urllib.request

from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from tests.servers import ServerProcess


def scrape(srv: ServerProcess) -> dict[str, float]:
    with urllib.request.urlopen(srv.url + "/metrics") as r:
        assert r.headers["Content-Type"].startswith(
            CONTENT_TYPE_LATEST.split(";")[0] + "; version="
        )
        text = r.read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}"] = sample.value
    return out


REQUIRED = [
    "vectorizer_search_requests_total",
    "vectorizer_search_latency_seconds_count",
    "vectorizer_search_results_count_count",
    "vectorizer_vectors_total",
    "vectorizer_collections_total",
    "vectorizer_insert_requests_total",
    "vectorizer_insert_latency_seconds_count",
    "vectorizer_replication_lag_ms",
    "vectorizer_replication_bytes_sent_total",
    "vectorizer_replication_bytes_received_total",
    "vectorizer_memory_usage_bytes",
    "vectorizer_memory_anonymous_bytes",
    "vectorizer_memory_limit_bytes",
    "vectorizer_memory_high_water_bytes",
    "vectorizer_disk_free_bytes",
    "vectorizer_disk_reserve_bytes",
    "vectorizer_api_errors_total",
    "vectorizer_wal_fsync_seconds_count",
    "vectorizer_wal_size_bytes",
    "vectorizer_snapshot_age_seconds",
    "vectorizer_replication_role",
    "vectorizer_replication_epoch",
    "vectorizer_http_requests_total",
    "vectorizer_http_request_duration_seconds_count",
]


def value(series: dict[str, float], prefix: str) -> float:
    return sum(v for k, v in series.items() if k.startswith(prefix))


def test_metrics_exist_move_and_stay_bounded(server: ServerProcess) -> None:
    server.request("POST", "/collections", {"name": "m", "dimension": 2})
    before = scrape(server)
    names = {k.split("{")[0] for k in before}
    assert len(names) > 20
    for name in REQUIRED:
        assert any(k.startswith(name) for k in before), name
    assert before["vectorizer_replication_role{role=primary}"] == 1
    assert before["vectorizer_replication_epoch{}"] == 1

    pts = [{"id": i, "vector": [i + 1, 1]} for i in range(7)]
    server.request("POST", "/collections/m/vectors", {"vectors": pts})
    for _ in range(3):
        server.request("POST", "/collections/m/search", {"vector": [1, 1], "limit": 5})
    server.request("POST", "/collections/m/search", {"vector": [1]})  # dimension_mismatch
    server.request("GET", "/collections/m/vectors/123456")  # an id in the path
    server.request("GET", "/no/such/path/789")
    after = scrape(server)

    assert (
        value(after, "vectorizer_search_requests_total")
        == value(before, "vectorizer_search_requests_total") + 3
    )
    assert (
        after["vectorizer_search_results_count_sum{}"]
        - before.get("vectorizer_search_results_count_sum{}", 0)
        == 15
    )
    assert after["vectorizer_vectors_total{collection=m}"] == 7
    assert value(after, "vectorizer_insert_requests_total") == 1
    assert value(after, "vectorizer_wal_fsync_seconds_count") > value(
        before, "vectorizer_wal_fsync_seconds_count"
    )
    assert after["vectorizer_api_errors_total{code=dimension_mismatch}"] == 1
    assert after["vectorizer_api_errors_total{code=vector_not_found}"] == 1
    assert (
        after[
            "vectorizer_http_requests_total{method=POST,route=/collections/{name}/search,status=200}"
        ]
        == 3
    )
    # Bounded labels: route templates, never raw paths or ids; methods the API answers.
    assert not any(re.search(r"123456|789|/no/such", k) for k in after)
    assert after["vectorizer_http_requests_total{method=GET,route=unmatched,status=404}"] == 1
    for method in ("PROPFIND", "MKCOL", "M-SEARCH", "PURGE"):  # (each a series, before)
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(f"{method} /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            assert sock.recv(65536).startswith(b"HTTP/1.1 ")
    methods = {k.split("method=")[1].split(",")[0] for k in scrape(server) if "method=" in k}
    assert "OTHER" in methods and methods <= {"GET", "POST", "PUT", "DELETE", "OTHER"}, methods


def test_disk_and_memory_guard_gauges(server: ServerProcess) -> None:
    """What the write guards compare, as /stats reports it: the defaults on this machine
    are an automatic disk reserve and a memory limit with its high-water mark at 90%."""
    m = scrape(server)
    _, stats = server.request("GET", "/stats")
    free, reserve = m["vectorizer_disk_free_bytes{}"], m["vectorizer_disk_reserve_bytes{}"]
    assert free > 0 and reserve > 0  # -1 (automatic): the snapshot, the log and a margin
    limit = m["vectorizer_memory_limit_bytes{}"]
    assert limit > 0 and limit == stats["memory"]["limit_bytes"]
    high_water = m["vectorizer_memory_high_water_bytes{}"]
    assert high_water == int(limit * 0.9) == stats["memory"]["high_water_bytes"]
    anonymous = m["vectorizer_memory_anonymous_bytes{}"]
    assert 0 < anonymous < limit
    assert anonymous <= m["vectorizer_memory_usage_bytes{}"]  # a part of the resident set
    assert m["vectorizer_api_errors_total{code=insufficient_storage}"] == 0
    assert m["vectorizer_api_errors_total{code=insufficient_memory}"] == 0


def test_a_batch_search_observes_one_latency_per_query(server: ServerProcess) -> None:
    """ "Time to answer one search query": a batch of 100 queries was one observation of
    the whole batch's time. Each query now counts, with an equal share of the time."""
    server.request("POST", "/collections", {"name": "b", "dimension": 4, "index": "exact"})
    pts = [{"id": i, "vector": [i, 1, 2, 3]} for i in range(1, 201)]
    assert server.request("POST", "/collections/b/vectors", {"vectors": pts})[0] == 200
    before = scrape(server)
    queries = [{"vector": [1, 2, 3, float(q)], "limit": 3} for q in range(100)]
    status, body = server.request("POST", "/batch_search", {"collection": "b", "queries": queries})
    assert status == 200 and len(body["results"]) == 100
    after = scrape(server)

    def delta(key: str) -> float:
        return after[key] - before.get(key, 0.0)

    assert delta("vectorizer_search_requests_total{}") == 100
    assert delta("vectorizer_search_latency_seconds_count{}") == 100
    assert delta("vectorizer_search_results_count_count{}") == 100
    batch_took = delta("vectorizer_http_request_duration_seconds_sum{route=/batch_search}")
    assert 0 < delta("vectorizer_search_latency_seconds_sum{}") <= batch_took * (1 + 1e-9)


def test_a_qdrant_batch_counts_the_points_of_every_upsert(server: ServerProcess) -> None:
    """Two upserts of 5 and 3 points in one ``POST /points/batch`` counted 3 (the last
    operation's points replaced the first's)."""
    collection = {"vectors": {"size": 2, "distance": "Cosine"}}
    assert server.request("PUT", "/qdrant/collections/q", collection)[0] == 200
    before = scrape(server)
    ops = {
        "operations": [
            {"upsert": {"points": [{"id": i, "vector": [i, 1.0]} for i in range(1, 6)]}},
            {"update_vectors": {"points": [{"id": 1, "vector": [2.0, 2.0]}]}},
            {"upsert": {"points": [{"id": i, "vector": [i, 2.0]} for i in range(10, 13)]}},
        ]
    }
    assert server.request("POST", "/qdrant/collections/q/points/batch", ops)[0] == 200
    after = scrape(server)
    assert (
        after["vectorizer_inserted_vectors_total{}"] - before["vectorizer_inserted_vectors_total{}"]
        == 9
    )
    assert (
        after["vectorizer_insert_requests_total{}"] - before["vectorizer_insert_requests_total{}"]
        == 1
    )
    assert after["vectorizer_vectors_total{collection=q}"] == 8


def test_no_series_that_nothing_updates(server: ServerProcess) -> None:
    """There is no query cache: its counter and hit rate stayed at 0 for ever, and a
    dashboard or alert built on them could only mislead."""
    server.request("POST", "/collections", {"name": "m", "dimension": 2})
    server.request("POST", "/collections/m/vectors", {"vectors": [{"id": 1, "vector": [1, 1]}]})
    for _ in range(3):
        server.request("POST", "/collections/m/search", {"vector": [1, 1], "limit": 1})
    assert not [k for k in scrape(server) if k.startswith("vectorizer_cache")]
