"""Search QPS with metrics and tracing off, on with the exporter none, and on with OTLP
export at 10% sampling (to a local sink). Run: ``make bench-observability``."""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from benches.dataplane import clustered
from benches.httpclient import Connection
from tests.servers import ServerProcess, free_port

MODES: dict[str, list[str]] = {
    "off": ["--metrics-enabled", "false", "--tracing-exporter", "none"],
    "metrics + tracing, exporter none": ["--tracing-exporter", "none"],
    "metrics + tracing, otlp 10%": ["--tracing-exporter", "otlp", "--tracing-sample-ratio", "0.1"],
}


async def sink(port: int) -> tuple[web.AppRunner, list[int]]:
    """A local OTLP/HTTP endpoint that accepts (and counts) span exports."""
    received: list[int] = []

    async def traces(request: web.Request) -> web.Response:
        received.append(len(await request.read()))
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, received


async def measure(args: argparse.Namespace, flags: list[str], otlp: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        srv = ServerProcess(data_dir=Path(tmp) / "d", args=[*flags, "--otlp-endpoint", otlp])
        await asyncio.to_thread(srv.start)
        try:
            c = await Connection.open("127.0.0.1", srv.port)
            await c.json("POST", "/collections", orjson.dumps({"name": "b", "dimension": args.dim}))
            data = clustered(args.n, args.dim, 50, seed=1)
            for b in range(0, args.n, 1000):
                body = {
                    "vectors": [
                        {"id": i, "vector": data[i]} for i in range(b, min(b + 1000, args.n))
                    ]
                }
                await c.json(
                    "POST",
                    "/collections/b/vectors",
                    orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY),
                )
            queries = [
                orjson.dumps({"vector": q, "limit": 10}, option=orjson.OPT_SERIALIZE_NUMPY)
                for q in clustered(500, args.dim, 50, seed=2)
            ]
            conns = [await Connection.open("127.0.0.1", srv.port) for _ in range(args.connections)]
            counter = iter(range(args.queries))

            async def worker(conn: Connection) -> None:
                for i in counter:
                    await conn.json("POST", "/collections/b/search", queries[i % len(queries)])

            t0 = time.perf_counter()
            await asyncio.gather(*(worker(x) for x in conns))
            return args.queries / (time.perf_counter() - t0)
        finally:
            await asyncio.to_thread(srv.terminate)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    runner, received = await sink(port)
    otlp = f"http://127.0.0.1:{port}/v1/traces"
    results: dict[str, Any] = {}
    try:
        for _ in range(args.rounds):  # interleave rounds so drift hits every mode alike
            for name, flags in MODES.items():
                results.setdefault(name, []).append(await measure(args, flags, otlp))
    finally:
        await runner.cleanup()
    best = {name: max(v) for name, v in results.items()}
    base = best["off"]
    for name, qps in best.items():
        print(f"{name:>34}: {qps:7.0f} QPS ({(qps / base - 1) * 100:+.1f}% vs off)")
    print(f"OTLP exports received by the sink: {len(received)}")
    return {"qps": best, "rounds": results, "exports": len(received)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=20_000)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--queries", type=int, default=5000)
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", type=Path, default=Path("benches/results/observability.json"))
    args = p.parse_args()
    import uvloop

    report = uvloop.run(run(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
