"""Interleaved A/B of two source trees: the same search load against a server running
this checkout (A) and one running another (B), round by round.

Run from the repository root: ``make bench-ab B=/path/to/other/checkout`` (or
``python -m benches.ab --b-source /path/to/other/checkout``). B's ``dataplane/`` comes
first on its server's ``PYTHONPATH``; make one with ``git worktree add``. Both servers
get the same 100k x 128 clustered vectors; then 32-connection rounds alternate A, B,
B, A, ... so that the VM's drift (10-15% within an hour, see docs/PERFORMANCE.md) falls
on both alike. At the default sizes identical trees agree within about 2% (1.014 in
one check); smaller runs are noisier (0.93 with 20k vectors and two rounds of 3,000).
Judge a change by the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path

import orjson

from benches.dataplane import clustered, concurrent
from benches.httpclient import Connection
from tests.servers import ServerProcess

SEARCH = "/collections/bench/search"


async def _load(srv: ServerProcess, vectors: list[list[float]], dim: int) -> None:
    conn = await Connection.open("127.0.0.1", srv.port)
    try:
        await conn.json("POST", "/collections", orjson.dumps({"name": "bench", "dimension": dim}))
        for start in range(0, len(vectors), 1000):
            batch = [{"id": i, "vector": vectors[i]} for i in range(start, start + 1000)]
            await conn.json("POST", "/collections/bench/vectors", orjson.dumps({"vectors": batch}))
    finally:
        conn.close()


async def run(args: argparse.Namespace) -> dict[str, list[float]]:
    vectors = clustered(args.n, args.dim, 100, seed=1).tolist()
    queries = clustered(1000, args.dim, 100, seed=2)
    bodies = [orjson.dumps({"vector": q.tolist(), "limit": 10}) for q in queries]
    b_path = args.b_dataplane
    with tempfile.TemporaryDirectory() as tmp:
        flags = ["--snapshot-interval-s", "0"]
        servers = {
            "A": ServerProcess(data_dir=Path(tmp) / "a", args=flags),
            "B": ServerProcess(data_dir=Path(tmp) / "b", args=flags, env={"PYTHONPATH": b_path}),
        }
        try:
            for srv in servers.values():
                srv.start()
                await _load(srv, vectors, args.dim)
                await concurrent(srv.port, SEARCH, bodies, args.connections, 5000)  # warm-up
            qps: dict[str, list[float]] = {"A": [], "B": []}
            for r in range(args.rounds):
                for name in ("A", "B") if r % 2 == 0 else ("B", "A"):
                    done = await concurrent(
                        servers[name].port, SEARCH, bodies, args.connections, args.queries
                    )
                    qps[name].append(done.qps)
            return qps
        finally:
            for srv in servers.values():
                if srv.proc is not None:
                    srv.terminate()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--b-source", required=True, help="the other checkout (its dataplane/ runs)")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--queries", type=int, default=10_000, help="searches per round")
    args = p.parse_args()
    args.b_dataplane = str(Path(args.b_source).resolve() / "dataplane")
    qps = asyncio.run(run(args))
    for name, figures in qps.items():
        print(
            f"{name}: {', '.join(f'{x:.0f}' for x in figures)} QPS; median {statistics.median(figures):.0f}"
        )
    ratio = statistics.median(qps["B"]) / statistics.median(qps["A"])
    print(f"B / A: {ratio:.3f} (identical trees: within about 2% at the default sizes)")


if __name__ == "__main__":
    main()
