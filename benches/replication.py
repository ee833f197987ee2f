"""Replication benchmark: write throughput and replica lag under sustained writes.

Run from the repository root: ``make bench-replication`` (or
``python -m benches.replication``). For each write concern (async, then sync with one
replica) it starts a primary and a replica on 127.0.0.1 with fresh data directories and
durable fsync, drives writes from several connections for a fixed time, samples the
primary's view of the replica's lag (age of the oldest record the replica has not
confirmed) every 50 ms, and prints operations/s and lag percentiles.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from benches.httpclient import Connection
from tests.servers import ServerProcess


async def run_mode(args: argparse.Namespace, sync: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        extra = ["--sync-replicas", "1"] if sync else []
        p = ServerProcess(data_dir=root / "p", args=["--snapshot-interval-s", "0", *extra]).start()
        r = ServerProcess(
            data_dir=root / "r",
            args=["--role", "replica", "--primary-url", p.url, "--snapshot-interval-s", "0"],
        ).start()
        try:
            c = await Connection.open("127.0.0.1", p.port)
            while not (await c.json("GET", "/replication/replicas"))["count"]:
                await asyncio.sleep(0.05)
            await c.json("POST", "/collections", orjson.dumps({"name": "b", "dimension": args.dim}))
            rng = np.random.default_rng(0)
            bodies = [
                orjson.dumps(
                    {
                        "vectors": [
                            {"id": i * args.batch + j, "vector": rng.normal(size=args.dim)}
                            for j in range(args.batch)
                        ]
                    },
                    option=orjson.OPT_SERIALIZE_NUMPY,
                )
                for i in range(2000)
            ]
            latencies: list[float] = []
            lags: list[float] = []
            stop = time.monotonic() + args.seconds
            counter = iter(range(10**9))

            async def writer() -> None:
                conn = await Connection.open("127.0.0.1", p.port)
                while time.monotonic() < stop:
                    i = next(counter)
                    t = time.perf_counter()
                    await conn.json("POST", "/collections/b/vectors", bodies[i % len(bodies)])
                    latencies.append(time.perf_counter() - t)
                conn.close()

            async def sampler() -> None:
                while time.monotonic() < stop:
                    reps = (await c.json("GET", "/replication/replicas"))["replicas"]
                    lags.append(reps[0]["lag_ms"])
                    await asyncio.sleep(0.05)

            t0 = time.perf_counter()
            await asyncio.gather(sampler(), *(writer() for _ in range(args.connections)))
            took = time.perf_counter() - t0
            final = await c.json("GET", "/replication/stats")
            c.close()
            ops = len(latencies)
            return {
                "mode": "sync" if sync else "async",
                "write_ops_per_s": ops / took,
                "vectors_per_s": ops * args.batch / took,
                "write_p50_ms": float(np.percentile(latencies, 50)) * 1000,
                "write_p99_ms": float(np.percentile(latencies, 99)) * 1000,
                "lag_p50_ms": float(np.percentile(lags, 50)),
                "lag_p99_ms": float(np.percentile(lags, 99)),
                "lag_max_ms": float(max(lags)),
                "bytes_sent": final["bytes_sent"],
            }
        finally:
            r.terminate()
            p.terminate()


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    out = []
    for sync in (False, True):
        res = await run_mode(args, sync)
        print(
            f"{res['mode']:>5}: {res['write_ops_per_s']:.0f} writes/s ({res['vectors_per_s']:.0f} vectors/s, "
            f"batches of {args.batch}), write p50 {res['write_p50_ms']:.2f} ms p99 {res['write_p99_ms']:.2f} ms; "
            f"replica lag p50 {res['lag_p50_ms']:.1f} ms p99 {res['lag_p99_ms']:.1f} ms max {res['lag_max_ms']:.1f} ms"
        )
        out.append(res)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--batch", type=int, default=10)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--out", type=Path, default=Path("benches/results/replication.json"))
    args = p.parse_args()
    import uvloop

    results = uvloop.run(main_async(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
