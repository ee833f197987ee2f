"""What the Qdrant-route benches share: a fresh server to load, and one sequential
client's query latencies."""

from __future__ import annotations

import contextlib
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import psutil

from benches.httpclient import BlockingConnection
from tests.servers import ServerProcess

Q = "/qdrant/collections"


@contextlib.contextmanager
def served() -> Iterator[tuple[BlockingConnection, psutil.Process]]:
    """A connection to a fresh ``vectorizer serve`` (no periodic snapshots) and its
    process, for resident memory; both gone afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        srv = ServerProcess(data_dir=Path(tmp) / "d", args=["--snapshot-interval-s", "0"]).start()
        assert srv.proc is not None
        conn = BlockingConnection("127.0.0.1", srv.port)
        try:
            yield conn, psutil.Process(srv.proc.pid)
        finally:
            conn.close()
            srv.terminate()


def latencies(
    conn: BlockingConnection,
    collection: str,
    bodies: list[dict[str, Any]],
    before: list[bytes] | None = None,
) -> tuple[float, float, float]:
    """p50 and p99 (ms) of the query bodies one after another, and the mean hits; with
    ``before``, each query follows one of those upserts (not timed)."""
    took, hits = [], []
    for i, body in enumerate(bodies):
        if before is not None:
            conn.json("PUT", f"{Q}/{collection}/points?wait=true", before[i])
        started = time.perf_counter()
        result = conn.json("POST", f"{Q}/{collection}/points/query", orjson.dumps(body))
        took.append((time.perf_counter() - started) * 1000)
        hits.append(len(result["result"]["points"]))
    took.sort()
    return statistics.median(took), took[int(len(took) * 0.99)], statistics.mean(hits)


def grown(proc: psutil.Process, load: Callable[[], float]) -> tuple[float, int]:
    """What ``load`` returns (a rate) and how many bytes the server's resident memory
    grew by meanwhile."""
    rss = proc.memory_info().rss
    rate = load()
    return rate, proc.memory_info().rss - rss
