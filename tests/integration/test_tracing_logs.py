"""Traces follow a write from the client through the primary into the replica; logs are JSON."""

from __future__ import annotations

import http.client
import json
import time
from pathlib import Path
from typing import Any

from tests.servers import ServerProcess, free_port

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def json_objects(text: str) -> list[dict[str, Any]]:
    """Every JSON object in a log: one-line log records and multi-line console spans."""
    decoder = json.JSONDecoder()
    out, i = [], 0
    while (i := text.find("{", i)) != -1:
        try:
            obj, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            i += 1
            continue
        if isinstance(obj, dict):
            out.append(obj)
        i = end
    return out


def spans(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objs if "context" in o and "name" in o]


def test_a_write_is_traced_across_replication_and_logged_as_json(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    tracing = ["--tracing-exporter", "console", "--heartbeat-interval-ms", "100"]
    p = server_factory(data_dir=tmp_path / "p", args=tracing).start()
    r = server_factory(
        data_dir=tmp_path / "r", args=[*tracing, "--role", "replica", "--primary-url", p.url]
    ).start()
    assert p.request("POST", "/collections", {"name": "t", "dimension": 2})[0] == 201

    import urllib.request

    body = json.dumps({"vectors": [{"id": 1, "vector": [1, 2]}]}).encode()
    req = urllib.request.Request(
        p.url + "/collections/t/vectors",
        data=body,
        method="POST",
        headers={
            "traceparent": TRACEPARENT,
            "X-Request-ID": "req-42",
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(req) as resp:
        assert resp.status == 200
    deadline = time.monotonic() + 10
    while r.request("GET", "/stats")[1]["sequence"] < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert p.request("GET", "/collections/t/vectors/404")[0] == 404  # logs nothing special
    search = json.dumps({"vector": [1, 2]}).encode()
    req = urllib.request.Request(
        p.url + "/collections/t/search",
        data=search,
        method="POST",
        headers={"traceparent": TRACEPARENT, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req) as resp:
        assert resp.status == 200
    p.terminate()
    r.terminate()  # shutting down flushes the span exporter

    p_spans = [
        s for s in spans(json_objects(p.log())) if s["context"]["trace_id"] == "0x" + TRACE_ID
    ]
    names = {s["name"] for s in p_spans}
    assert {"POST /collections/{name}/vectors", "insert", "wal.append", "search"} <= names, names
    server_span = next(s for s in p_spans if s["name"].startswith("POST"))
    assert server_span["parent_id"] == "0x00f067aa0ba902b7"
    assert server_span["attributes"]["vectorizer.request_id"] == "req-42"

    r_spans = [
        s for s in spans(json_objects(r.log())) if s["context"]["trace_id"] == "0x" + TRACE_ID
    ]
    assert "replication.apply" in {s["name"] for s in r_spans}

    records = [o for o in json_objects(p.log()) if "level" in o and "logger" in o]
    assert records and all({"time", "level", "logger", "message"} <= set(o) for o in records)
    assert any(o["logger"] == "vectorizer.server.serve" for o in records)


def test_sampling_ratio_zero_traces_only_requests_that_bring_a_sampled_parent(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    import urllib.request

    srv = server_factory(
        data_dir=tmp_path / "d",
        args=["--tracing-exporter", "console", "--tracing-sample-ratio", "0"],
    ).start()
    srv.request("POST", "/collections", {"name": "s", "dimension": 2})
    for _ in range(5):
        srv.request("POST", "/collections/s/vectors", {"vectors": [{"id": 1, "vector": [1, 2]}]})
    for garbage in ("00-nonsense", f"00-{'0' * 32}-00f067aa0ba902b7-01"):  # new traces too
        assert srv.request("GET", "/health", headers={"traceparent": garbage})[0] == 200
    req = urllib.request.Request(srv.url + "/health", headers={"traceparent": TRACEPARENT})
    with urllib.request.urlopen(req) as resp:
        assert resp.status == 200
    srv.terminate()
    found = spans(json_objects(srv.log()))
    assert found, "the traced request produced no span"
    assert {s["context"]["trace_id"] for s in found} == {"0x" + TRACE_ID}


def test_new_traces_are_sampled_at_the_ratio_not_its_square(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    """``tracing_sample_ratio`` 0.5 sampled a quarter of the requests that started a
    trace: the middleware drew once and the tracer's ratio sampler again. Of 2,000 such
    requests about 1,000 are traced now (a standard deviation of 22: the bounds are 6.7 of
    them away; the old rate gave about 500)."""
    srv = server_factory(
        data_dir=tmp_path / "d",
        args=["--tracing-exporter", "console", "--tracing-sample-ratio", "0.5"],
    ).start()
    n = 2000
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    try:
        for i in range(n):
            conn.request("GET", "/health", headers={"X-Request-ID": f"sample-{i}"})
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200
    finally:
        conn.close()
    srv.terminate()  # (flushes the exporter)
    traced = {
        s["attributes"].get("vectorizer.request_id")
        for s in spans(json_objects(srv.log()))
        if s["name"] == "GET /health" and s["parent_id"] is None
    }
    sampled = len({rid for rid in traced if str(rid).startswith("sample-")})
    assert 850 <= sampled <= 1150, f"{sampled} of {n} requests traced at ratio 0.5"


def test_a_collector_that_does_not_answer_does_not_hold_a_stopping_node(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    """The exporter retries an unreachable collector for ~10 s; a stop waits at most
    2 s for the last spans (and still writes its snapshot and exits 0)."""
    nobody = f"http://127.0.0.1:{free_port()}/v1/traces"
    args = ["--tracing-exporter", "otlp", "--tracing-sample-ratio", "1", "--otlp-endpoint", nobody]
    srv = server_factory(data_dir=tmp_path / "d", args=args, log_path=tmp_path / "s.log").start()
    assert srv.request("POST", "/collections", {"name": "t", "dimension": 2})[0] == 201
    assert (
        srv.request("POST", "/collections/t/vectors", {"vectors": [{"id": 1, "vector": [1, 2]}]})[0]
        == 200
    )
    began = time.monotonic()
    assert srv.terminate() == 0
    assert time.monotonic() - began < 7.5, srv.log()
    assert "spans not exported within 2s of stopping were dropped" in srv.log()
    again = server_factory(data_dir=tmp_path / "d").start()
    assert again.request("POST", "/collections/t/count", {})[1]["count"] == 1
