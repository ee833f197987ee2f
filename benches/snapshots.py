"""Snapshot files and recovery, over HTTP against ``vectorizer serve``.

``make bench-snapshots`` (or ``python -m benches.snapshots``): a collection of 100k
clustered 128-d cosine points with a payload each, loaded in 1,000-point upserts
through the Qdrant route; then the time to make its snapshot file, to recover a second
collection from it (fetched over HTTP from the same node, checked, its points logged
and the graph rebuilt), and to recover over that collection again; a full snapshot of
the node, ``vectorizer restore`` of it into an empty directory, and a server starting
from there until ready. Writes JSON to ``benches/results/snapshots.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from benches.httpclient import Connection
from tests.servers import ServerProcess

Q = "/qdrant/collections"
RESULTS = Path(__file__).parent / "results" / "snapshots.json"


async def _load(conn: Connection, n: int, dim: int) -> float:
    """Upsert ``n`` clustered points in batches of 1,000; points a second."""
    body = {"vectors": {"size": dim, "distance": "Cosine"}}
    await conn.json("PUT", f"{Q}/a", orjson.dumps(body))
    rng = np.random.default_rng(1)
    centers = rng.normal(size=(100, dim))
    rows = centers[rng.integers(0, 100, n)] + 0.3 * rng.normal(size=(n, dim))
    vectors = rows.astype(np.float32)
    started = time.perf_counter()
    for start in range(0, n, 1000):
        ids = list(range(start, min(start + 1000, n)))
        batch = {"ids": ids, "vectors": vectors[ids].tolist(), "payloads": [{"i": i} for i in ids]}
        await conn.json("PUT", f"{Q}/a/points?wait=true", orjson.dumps({"batch": batch}))
    return n / (time.perf_counter() - started)


async def _timed(conn: Connection, method: str, path: str, body: Any = None) -> tuple[float, Any]:
    started = time.perf_counter()
    status, raw = await conn.request(method, path, b"" if body is None else orjson.dumps(body))
    took = time.perf_counter() - started
    assert status == 200, raw[:500]
    return took, orjson.loads(raw)["result"]


async def _on_a_server(root: Path, args: argparse.Namespace, out: dict[str, float]) -> Path:
    """The figures taken through the server's API; the full snapshot file's path."""
    srv = ServerProcess(data_dir=root / "d", args=["--snapshot-interval-s", "0"])
    srv.start()
    conn = await Connection.open("127.0.0.1", srv.port)
    try:
        out["upsert_points_per_s"] = await _load(conn, args.n, args.dim)
        took, made = await _timed(conn, "POST", f"{Q}/a/snapshots")
        out["collection_file_s"], out["collection_file_mib"] = took, made["size"] / 2**20
        location = {"location": f"{srv.url}{Q}/a/snapshots/{made['name']}"}
        for key in ("recover_new_s", "recover_over_s"):
            out[key] = (await _timed(conn, "PUT", f"{Q}/b/snapshots/recover", location))[0]
        took, full = await _timed(conn, "POST", "/qdrant/snapshots")
        out["full_file_s"], out["full_file_mib"] = took, full["size"] / 2**20
    finally:
        conn.close()
        srv.terminate()
    return root / "d" / "full-snapshots" / str(full["name"])


def _restored(root: Path, file: Path, out: dict[str, float]) -> None:
    """``vectorizer restore`` into an empty directory, then a server started there."""
    started = time.perf_counter()
    command = [sys.executable, "-m", "vectorizer", "restore", str(file), "--data-dir"]
    subprocess.run([*command, str(root / "restored")], check=True, capture_output=True)
    out["restore_s"] = time.perf_counter() - started
    started = time.perf_counter()
    again = ServerProcess(data_dir=root / "restored").start()
    out["start_restored_s"] = time.perf_counter() - started
    again.terminate()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=128)
    args = p.parse_args()
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        file = asyncio.run(_on_a_server(Path(tmp), args, out))
        _restored(Path(tmp), file, out)
    n = args.n
    print(f"upsert through the Qdrant route: {out['upsert_points_per_s']:,.0f} points/s")
    print(
        f"collection snapshot file: {out['collection_file_s']:.2f} s "
        f"({out['collection_file_mib']:.0f} MiB)"
    )
    for key, what in (("recover_new_s", "a new collection"), ("recover_over_s", "over it")):
        print(f"recover {what}: {out[key]:.2f} s ({n / out[key]:,.0f} points/s)")
    print(f"full snapshot file: {out['full_file_s']:.2f} s ({out['full_file_mib']:.0f} MiB)")
    print(
        f"vectorizer restore: {out['restore_s']:.2f} s; serving from it: {out['start_restored_s']:.2f} s"
    )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_bytes(orjson.dumps({"n": n, "dim": args.dim, **out}, option=orjson.OPT_INDENT_2))
    print(
        f"wrote {RESULTS.relative_to(Path.cwd()) if RESULTS.is_relative_to(Path.cwd()) else RESULTS}"
    )


if __name__ == "__main__":
    main()
