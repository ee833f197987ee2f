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

``--secured`` runs both as the operator does, authentication and the audit log on, and
searches with an application's API key (a viewer's, its rate limit out of the way).
``--qdrant`` searches through Qdrant's ``query_points`` route (with payloads, as
qdrant-client asks by default) instead of the native one.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path

import orjson

from benches.dataplane import clustered, concurrent, native_hits, qdrant_hits
from benches.httpclient import Connection
from tests.servers import ServerProcess

SEARCH = "/collections/bench/search"
QUERY = "/qdrant/collections/bench/points/query"
ADMIN = "bench-admin-key-0123456789abcdef"
SECURED = ["--auth-enabled", "true", "--auth-admin-key", ADMIN]
APPLICATION = {"name": "bench", "role": "viewer", "rate_limit_rps": 1e6, "rate_limit_burst": 10**6}


async def _load(
    srv: ServerProcess, vectors: list[list[float]], dim: int, secured: bool
) -> dict[str, str] | None:
    """The collection, filled; with ``secured``, the search headers of an application key."""
    conn = await Connection.open("127.0.0.1", srv.port, {"X-API-Key": ADMIN} if secured else None)
    try:
        await conn.json("POST", "/collections", orjson.dumps({"name": "bench", "dimension": dim}))
        for start in range(0, len(vectors), 1000):
            batch = [{"id": i, "vector": vectors[i]} for i in range(start, start + 1000)]
            await conn.json("POST", "/collections/bench/vectors", orjson.dumps({"vectors": batch}))
        if not secured:
            return None
        made = await conn.json("POST", "/auth/keys", orjson.dumps(APPLICATION))
        return {"X-API-Key": made["secret"]}
    finally:
        conn.close()


async def run(args: argparse.Namespace) -> dict[str, list[float]]:
    vectors = clustered(args.n, args.dim, 100, seed=1).tolist()
    queries = clustered(1000, args.dim, 100, seed=2)
    hits_of = qdrant_hits if args.qdrant else native_hits
    if args.qdrant:
        path = QUERY
        bodies = [
            orjson.dumps({"query": q.tolist(), "limit": 10, "with_payload": True}) for q in queries
        ]
    else:
        path = SEARCH
        bodies = [orjson.dumps({"vector": q.tolist(), "limit": 10}) for q in queries]
    b_path = args.b_dataplane
    with tempfile.TemporaryDirectory() as tmp:
        flags = ["--snapshot-interval-s", "0", *(SECURED if args.secured else [])]
        servers = {
            "A": ServerProcess(data_dir=Path(tmp) / "a", args=flags),
            "B": ServerProcess(data_dir=Path(tmp) / "b", args=flags, env={"PYTHONPATH": b_path}),
        }
        try:
            headers = {}
            for name, srv in servers.items():
                srv.start()
                headers[name] = await _load(srv, vectors, args.dim, args.secured)
                await concurrent(  # warm-up
                    srv.port, path, bodies, args.connections, 5000, hits_of, headers[name]
                )
            qps: dict[str, list[float]] = {"A": [], "B": []}
            for r in range(args.rounds):
                for name in ("A", "B") if r % 2 == 0 else ("B", "A"):
                    done = await concurrent(
                        servers[name].port,
                        path,
                        bodies,
                        args.connections,
                        args.queries,
                        hits_of,
                        headers[name],
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
    p.add_argument(
        "--secured", action="store_true", help="authentication and the audit log on, both sides"
    )
    p.add_argument("--qdrant", action="store_true", help="through Qdrant's query_points route")
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
