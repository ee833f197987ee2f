"""Data-plane benchmark: insert throughput, search QPS and latency, recall, memory, updates,
and search latency while updates stream.

Run from the repository root: ``make bench`` (or ``python -m benches.dataplane``).
Starts a real ``vectorizer serve`` on 127.0.0.1 with a fresh data directory and the
default (durable) settings, talks to it over HTTP, prints a report and writes JSON.

Load comes from the minimal clients in ``benches/httpclient.py`` (the server and the
load generator share the machine's two cores): one blocking socket for the sequential
client (the same queries through an asyncio connection are reported beside it), and
32 asyncio connections drawing the 1,000 queries in turn for the concurrent phase (its
recall is reported too: those searches run in batches). Then the same two phases go
through the Qdrant-compatible ``query_points`` route, which most applications use
(through qdrant-client).

Right after those two phases the same searches go to a bare aiohttp + hnswlib server
over the same vectors (``benches/floor.py``): what the stack itself does on this machine
in the same minutes, so that a figure can be read against the machine's mood
(``--no-floor`` skips it).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import orjson
import psutil

from benches import floor
from benches.httpclient import BlockingConnection, Connection
from tests.servers import ServerProcess, free_port
from vectorizer.engine.collection import Collection
from vectorizer.engine.config import CollectionConfig


def clustered(n: int, dim: int, clusters: int, seed: int, decay: float = 0.5) -> np.ndarray:
    """Points around ``clusters`` centres; the spread inside a cluster decays over (rotated)
    directions as 0.8 * i^-decay, like the spectrum of real embeddings. ``decay=0`` gives
    isotropic noise, which is as hard as uniform random data for any ANN index."""
    rng = np.random.default_rng(seed)
    shape = np.random.default_rng(0)  # centres and rotation shared by data and queries
    centers = shape.normal(size=(clusters, dim)).astype(np.float32)
    rotation, _ = np.linalg.qr(shape.normal(size=(dim, dim)))
    scale = 0.8 * np.arange(1, dim + 1, dtype=np.float64) ** -decay
    labels = rng.integers(0, clusters, size=n)
    noise = (rng.normal(size=(n, dim)) * scale) @ rotation.T
    return (centers[labels] + noise).astype(np.float32)


def exact_top_k(data: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    d = data / np.linalg.norm(data, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    out = np.empty((len(q), k), dtype=np.int64)
    for i in range(0, len(q), 100):
        s = q[i : i + 100] @ d.T
        part = np.argpartition(-s, k, axis=1)[:, :k]
        order = np.take_along_axis(s, part, axis=1).argsort(axis=1)[:, ::-1]
        out[i : i + 100] = np.take_along_axis(part, order, axis=1)
    return out


def pct(values: list[float], p: float) -> float:
    return float(np.percentile(values, p)) * 1000 if values else 0.0


@dataclass
class Searches:
    """One search phase: its rate, each search's latency, and the ids each one found."""

    qps: float
    latencies: list[float]
    found: list[list[int]]

    def pct(self, p: float) -> float:
        return pct(self.latencies, p)

    def recall(self, truth: np.ndarray) -> float:
        """Mean recall@10 of what was found against the exact top 10."""
        pairs = zip(self.found, truth.tolist(), strict=True)
        return float(np.mean([len(set(f) & set(t)) / 10 for f, t in pairs]))


def query_bodies(queries: np.ndarray, key: str, **fields: Any) -> list[bytes]:
    """One request body per row of ``queries``: ``{key: row, **fields}``."""
    return [orjson.dumps({key: q, **fields}, option=orjson.OPT_SERIALIZE_NUMPY) for q in queries]


HitsOf = Callable[[Any], list[Any]]  # the hits in a search's answer


def native_hits(answer: Any) -> list[Any]:
    return cast(list[Any], answer["results"])


def qdrant_hits(answer: Any) -> list[Any]:
    return cast(list[Any], answer["result"]["points"])


def sequential(
    port: int, path: str, qbodies: list[bytes], hits_of: HitsOf = native_hits
) -> Searches:
    """One client, one request at a time: a plain blocking socket, which needs no event
    loop (after 50 warm-up searches)."""
    b = BlockingConnection("127.0.0.1", port)
    for body in qbodies[:50]:
        b.json("POST", path, body)
    lat: list[float] = []
    found: list[list[int]] = []
    t0 = time.perf_counter()
    for body in qbodies:
        t = time.perf_counter()
        res = b.json("POST", path, body)
        lat.append(time.perf_counter() - t)
        found.append([h["id"] for h in hits_of(res)])
    took = time.perf_counter() - t0
    b.close()
    return Searches(len(qbodies) / took, lat, found)


async def concurrent(
    port: int,
    path: str,
    qbodies: list[bytes],
    connections: int,
    total: int,
    hits_of: HitsOf = native_hits,
    headers: Mapping[str, str] | None = None,
) -> Searches:
    """``total`` (at least as many as the queries) searches over ``connections`` asyncio
    connections drawing the queries in turn, each connection one request at a time; what
    each query found is kept from its last answer (searched in batches, on both cores).
    ``headers``: sent with each request."""
    lat: list[float] = []
    answers: list[Any] = [None] * len(qbodies)  # (ids taken out after the clock stops)
    counter = iter(range(max(total, len(qbodies))))
    conns = [await Connection.open("127.0.0.1", port, headers) for _ in range(connections)]

    async def worker(c: Connection) -> None:
        for i in counter:
            t = time.perf_counter()
            res = await c.json("POST", path, qbodies[i % len(qbodies)])
            lat.append(time.perf_counter() - t)
            answers[i % len(qbodies)] = res

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    took = time.perf_counter() - t0
    for c in conns:
        c.close()
    found = [[h["id"] for h in hits_of(res)] for res in answers]
    return Searches(len(lat) / took, lat, found)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    data = clustered(args.n, args.dim, args.clusters, seed=1, decay=args.decay)
    queries = clustered(args.queries, args.dim, args.clusters, seed=2, decay=args.decay)
    print(f"exact ground truth for {args.queries} queries over {args.n}x{args.dim} ...")
    truth = exact_top_k(data, queries, 10)
    report: dict[str, Any] = {
        "n": args.n,
        "dim": args.dim,
        "queries": args.queries,
        "decay": args.decay,
    }

    with tempfile.TemporaryDirectory() as tmp:
        srv = ServerProcess(
            data_dir=Path(tmp) / "data", args=["--snapshot-interval-s", "0", *args.server_args]
        ).start()
        assert srv.proc is not None
        proc = psutil.Process(srv.proc.pid)
        bare: subprocess.Popen[bytes] | None = None
        floor_port: int | None = None
        try:
            s = await Connection.open("127.0.0.1", srv.port)
            await s.json(
                "POST", "/collections", orjson.dumps({"name": "bench", "dimension": args.dim})
            )
            if args.floor:  # built now, idle until it is measured
                hnsw = (await s.json("GET", "/collections/bench"))["collection"]["hnsw"]
                np.save(Path(tmp) / "vectors.npy", data)
                floor_port = free_port()
                print("building the bare aiohttp + hnswlib server to compare with ...")
                bare = floor.start(
                    floor_port,
                    Path(tmp) / "vectors.npy",
                    hnsw["m"],
                    hnsw["ef_construction"],
                    hnsw["ef_search"],
                )
            rss0 = proc.memory_info().rss

            # -- insert: 1,000-point batches, durable fsync -------------------------------
            bodies = [
                orjson.dumps(
                    {
                        "vectors": [
                            {"id": i, "vector": data[i]}
                            for i in range(b, min(b + args.batch, args.n))
                        ]
                    },
                    option=orjson.OPT_SERIALIZE_NUMPY,
                )
                for b in range(0, args.n, args.batch)
            ]
            t0 = time.perf_counter()
            for body in bodies:
                await s.json("POST", "/collections/bench/vectors", body)
            took = time.perf_counter() - t0
            report["insert_vectors_per_s"] = args.n / took
            report["rss_bytes_per_vector"] = (proc.memory_info().rss - rss0) / args.n
            print(
                f"insert: {report['insert_vectors_per_s']:.0f} vectors/s "
                f"({args.n} in {took:.1f}s, batches of {args.batch})"
            )

            search = "/collections/bench/search"
            qbodies = query_bodies(queries, "vector", limit=10, with_payload=False)
            for body in qbodies[:50]:  # warm-up
                await s.json("POST", search, body)

            # -- one sequential client ---------------------------------------------------
            seq = sequential(srv.port, search, qbodies)
            recall = seq.recall(truth)
            t0 = time.perf_counter()
            for body in qbodies:
                await s.json("POST", search, body)
            report.update(
                sequential_qps=seq.qps,
                sequential_asyncio_qps=len(qbodies) / (time.perf_counter() - t0),
                recall_at_10=recall,
                sequential_p50_ms=seq.pct(50),
                sequential_p99_ms=seq.pct(99),
            )
            print(
                f"search, 1 sequential client: {report['sequential_qps']:.0f} QPS, "
                f"p50 {report['sequential_p50_ms']:.2f} ms, p99 {report['sequential_p99_ms']:.2f} ms, "
                f"recall@10 {recall:.4f} (through an asyncio client: "
                f"{report['sequential_asyncio_qps']:.0f} QPS)"
            )

            # -- concurrent connections ---------------------------------------------------
            conc = await concurrent(
                srv.port, search, qbodies, args.connections, args.concurrent_queries
            )
            report.update(
                concurrent_qps=conc.qps,
                concurrent_p50_ms=conc.pct(50),
                concurrent_p99_ms=conc.pct(99),
                concurrent_recall_at_10=conc.recall(truth),
            )
            print(
                f"search, {args.connections} connections: {report['concurrent_qps']:.0f} QPS, "
                f"p50 {report['concurrent_p50_ms']:.2f} ms, p99 {report['concurrent_p99_ms']:.2f} ms, "
                f"recall@10 {report['concurrent_recall_at_10']:.4f} (searched in batches)"
            )

            # -- the same through the Qdrant-compatible route (qdrant-client's query_points,
            # which asks for payloads by default) ---------------------------------------
            query = "/qdrant/collections/bench/points/query"
            qdrant_bodies = query_bodies(queries, "query", limit=10, with_payload=True)
            q_seq = sequential(srv.port, query, qdrant_bodies, qdrant_hits)
            q_conc = await concurrent(
                srv.port,
                query,
                qdrant_bodies,
                args.connections,
                args.concurrent_queries,
                qdrant_hits,
            )
            report.update(
                qdrant_sequential_qps=q_seq.qps,
                qdrant_concurrent_qps=q_conc.qps,
                qdrant_concurrent_p50_ms=q_conc.pct(50),
                qdrant_recall_at_10=q_seq.recall(truth),
            )
            print(
                f"the same through Qdrant's query_points route: 1 client {q_seq.qps:.0f} QPS, "
                f"{args.connections} connections {q_conc.qps:.0f} QPS "
                f"(p50 {report['qdrant_concurrent_p50_ms']:.2f} ms, "
                f"recall@10 {report['qdrant_recall_at_10']:.4f}): "
                f"{100 * q_seq.qps / seq.qps:.0f}% and {100 * q_conc.qps / conc.qps:.0f}% "
                "of the native route"
            )

            # -- the stack's floor, in the same minutes ----------------------------------
            if floor_port is not None:
                bare_seq = sequential(floor_port, search, qbodies)
                bare_conc = await concurrent(
                    floor_port, search, qbodies, args.connections, args.concurrent_queries
                )
                report.update(
                    floor_recall_at_10=bare_seq.recall(truth),
                    floor_sequential_qps=bare_seq.qps,
                    floor_concurrent_qps=bare_conc.qps,
                    sequential_of_floor=seq.qps / bare_seq.qps,
                    concurrent_of_floor=conc.qps / bare_conc.qps,
                )
                print(
                    "the same searches against a bare aiohttp + hnswlib server (benches/floor.py): "
                    f"1 client {bare_seq.qps:.0f} QPS (recall@10 {report['floor_recall_at_10']:.4f}), "
                    f"{args.connections} connections "
                    f"{bare_conc.qps:.0f} QPS; this server does "
                    f"{100 * report['sequential_of_floor']:.0f}% and "
                    f"{100 * report['concurrent_of_floor']:.0f}% of that"
                )

            # -- atomic update vs delete + insert ----------------------------------------
            rng = np.random.default_rng(3)
            ids = rng.choice(args.n, size=args.updates, replace=False).tolist()
            new = clustered(args.updates, args.dim, args.clusters, seed=4, decay=args.decay)
            vec_bodies = [
                orjson.dumps({"vector": v}, option=orjson.OPT_SERIALIZE_NUMPY) for v in new
            ]
            t0 = time.perf_counter()
            for pid, body in zip(ids, vec_bodies, strict=True):
                await s.json("PUT", f"/collections/bench/vectors/{pid}", body)
            t_update = time.perf_counter() - t0
            ins_bodies = [
                orjson.dumps(
                    {"vectors": [{"id": pid, "vector": v}]}, option=orjson.OPT_SERIALIZE_NUMPY
                )
                for pid, v in zip(ids, new, strict=True)
            ]
            t0 = time.perf_counter()
            for pid, body in zip(ids, ins_bodies, strict=True):
                await s.json("DELETE", f"/collections/bench/vectors/{pid}")
                await s.json("POST", "/collections/bench/vectors", body)
            t_del_ins = time.perf_counter() - t0
            # payload-only updates against the same delete + insert
            pay_bodies = [orjson.dumps({"payload": {"rev": i}}) for i in range(len(ids))]
            t0 = time.perf_counter()
            for pid, body in zip(ids, pay_bodies, strict=True):
                await s.json("PUT", f"/collections/bench/vectors/{pid}", body)
            t_payload = time.perf_counter() - t0
            report.update(
                update_per_s=args.updates / t_update,
                delete_insert_per_s=args.updates / t_del_ins,
                update_speedup=t_del_ins / t_update,
                payload_update_per_s=args.updates / t_payload,
                payload_update_speedup=t_del_ins / t_payload,
            )
            print(
                f"update in place: {report['update_per_s']:.0f}/s; delete+insert: "
                f"{report['delete_insert_per_s']:.0f}/s; update is {report['update_speedup']:.2f}x faster; "
                f"payload-only update {report['payload_update_per_s']:.0f}/s "
                f"({report['payload_update_speedup']:.2f}x delete+insert)"
            )
            report.update(await searches_while_updating(srv.port, search, qbodies, ids, vec_bodies))
            print(
                f"search while {UPDATERS} connections update "
                f"({report['mixed_updates_per_s']:.0f} updates/s): "
                f"{report['mixed_search_qps']:.0f} QPS, p50 {report['mixed_search_p50_ms']:.2f} ms, "
                f"p99 {report['mixed_search_p99_ms']:.2f} ms, "
                f"p99.9 {report['mixed_search_p999_ms']:.2f} ms"
            )
            report.update(engine_updates(data, ids, new))
            print(
                f"engine only (no HTTP, no log): update {report['engine_update_per_s']:.0f}/s, "
                f"delete+insert {report['engine_delete_insert_per_s']:.0f}/s: update is "
                f"{report['engine_update_speedup']:.2f}x faster (the graph work of updates, "
                "folded from the delta buffer, included)"
            )
            print(
                f"resident memory per vector: {report['rss_bytes_per_vector']:.0f} bytes "
                f"({args.dim * 4} bytes of raw float32)"
            )
            s.close()
        finally:
            srv.terminate()
            if bare is not None:
                bare.terminate()
                bare.wait()
    return report


UPDATERS = 4
MIXED_SECONDS = 5.0


async def searches_while_updating(
    port: int, search: str, qbodies: list[bytes], ids: list[int], vec_bodies: list[bytes]
) -> dict[str, float]:
    """One sequential search client while ``UPDATERS`` connections stream in-place
    updates: what folding updated vectors into the graph costs searches (a search waits
    for a fold in progress)."""
    searcher = await Connection.open("127.0.0.1", port)
    writers = [await Connection.open("127.0.0.1", port) for _ in range(UPDATERS)]
    stop = time.perf_counter() + MIXED_SECONDS
    lat: list[float] = []
    updates = 0

    async def searching() -> None:
        i = 0
        while time.perf_counter() < stop:
            t = time.perf_counter()
            await searcher.json("POST", search, qbodies[i % len(qbodies)])
            lat.append(time.perf_counter() - t)
            i += 1

    async def updating(c: Connection, first: int) -> None:
        nonlocal updates
        for i in itertools.count(first, UPDATERS):
            if time.perf_counter() >= stop:
                return
            j = i % len(ids)
            await c.json("PUT", f"/collections/bench/vectors/{ids[j]}", vec_bodies[j])
            updates += 1

    await asyncio.gather(searching(), *(updating(c, k) for k, c in enumerate(writers)))
    for c in (searcher, *writers):
        c.close()
    return {
        "mixed_updates_per_s": updates / MIXED_SECONDS,
        "mixed_search_qps": len(lat) / MIXED_SECONDS,
        "mixed_search_p50_ms": pct(lat, 50),
        "mixed_search_p99_ms": pct(lat, 99),
        "mixed_search_p999_ms": pct(lat, 99.9),
    }


def engine_updates(data: np.ndarray, ids: list[int], new: np.ndarray) -> dict[str, float]:
    """The same updates against an in-process collection: what the index itself costs.

    Over HTTP both sides pay a request and a durable log write per call, so the ratio
    there is bounded near 2 by construction; here only the engine's work is timed, and
    the update side includes folding its staged vectors into the graph.
    """
    config = CollectionConfig(dimension=data.shape[1])
    coll = Collection("bench", config)  # grown by doubling, as the server's collection was
    for b in range(0, len(data), 1000):
        rows = config.metric.prepare(data[b : b + 1000].astype(np.float32))
        coll.upsert(list(range(b, b + len(rows))), rows, [None] * len(rows))
    coll.settle()  # (the last batch's link, on the link thread: not the updates' time)
    rows = config.metric.prepare(new.astype(np.float32))
    t0 = time.perf_counter()
    for i, pid in enumerate(ids):
        coll.update(pid, rows[i : i + 1], None)
    coll.fold()
    coll.settle()
    t_update = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i, pid in enumerate(ids):
        coll.delete([pid])
        coll.upsert([pid], rows[i : i + 1], [None])
    t_del_ins = time.perf_counter() - t0
    return {
        "engine_update_per_s": len(ids) / t_update,
        "engine_delete_insert_per_s": len(ids) / t_del_ins,
        "engine_update_speedup": t_del_ins / t_update,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--clusters", type=int, default=100)
    p.add_argument(
        "--decay", type=float, default=0.5, help="spectrum decay inside clusters (0 = isotropic)"
    )
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--concurrent-queries", type=int, default=10_000)
    p.add_argument("--updates", type=int, default=2000)
    p.add_argument(
        "--no-floor",
        dest="floor",
        action="store_false",
        help="skip the bare aiohttp + hnswlib server measured for comparison",
    )
    p.add_argument(
        "--server-args", nargs=argparse.REMAINDER, default=[], help="extra `vectorizer serve` flags"
    )
    p.add_argument("--out", type=Path, default=Path("benches/results/dataplane.json"))
    args = p.parse_args()
    import uvloop

    report = uvloop.run(run(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
