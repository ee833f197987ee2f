"""A real Prometheus server scrapes a running data plane; the series move after traffic."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from tests.servers import ServerProcess, free_port
from tests.tools import debian_tool


def query(base: str, promql: str) -> list[dict[str, Any]]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as r:
        body = json.load(r)
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def wait_value(base: str, promql: str, check: Any, timeout: float = 30) -> float:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            res = query(base, promql)
        except OSError:  # Prometheus is still starting
            res = []
        if res:
            last = float(res[0]["value"][1])
            if check(last):
                return last
        time.sleep(0.3)
    raise AssertionError(f"{promql}: last value {last}")


def test_prometheus_scrapes_the_data_plane(server: ServerProcess, tmp_path: Path) -> None:
    binary = debian_tool("prometheus", "prometheus")
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 500ms, evaluation_interval: 500ms}\n"
        "scrape_configs:\n"
        "  - job_name: vectorizer\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{server.port}']}}]\n"
    )
    log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115 - closed below
    prom = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_value(base, 'up{job="vectorizer"}', lambda v: v == 1)
        wait_value(base, "vectorizer_collections_total", lambda v: v == 0)
        server.request("POST", "/collections", {"name": "p", "dimension": 2})
        server.request(
            "POST",
            "/collections/p/vectors",
            {"vectors": [{"id": i, "vector": [i + 1, 1]} for i in range(9)]},
        )
        for _ in range(5):
            server.request("POST", "/collections/p/search", {"vector": [1, 1]})
        wait_value(base, "vectorizer_collections_total", lambda v: v == 1)
        wait_value(base, 'vectorizer_vectors_total{collection="p"}', lambda v: v == 9)
        wait_value(base, "vectorizer_search_requests_total", lambda v: v == 5)
        wait_value(base, "vectorizer_wal_sequence", lambda v: v == 2)
        wait_value(base, 'vectorizer_replication_role{role="primary"}', lambda v: v == 1)
    finally:
        prom.terminate()
        prom.wait(20)
        log.close()
