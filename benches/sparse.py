"""Sparse vectors, over HTTP against ``vectorizer serve`` (the Qdrant routes).

``make bench-sparse`` (or ``python -m benches.sparse``): 100k documents of 20-60 words
drawn from a 30,000-word vocabulary with Zipf-like frequencies, each a BM25-style
sparse vector (its distinct words, weighted by their counts) beside a 64-d dense
vector, loaded in 1,000-point upserts into a collection whose sparse vector has
Qdrant's IDF modifier; the same dense vectors into a collection without sparse ones,
so that the resident memory the sparse vectors take is the difference. Then one
sequential client's latency (p50/p99) for sparse queries of 2-5 words drawn as the
documents' (so common words come up), the same with a payload filter, and hybrid
queries (a dense and a sparse prefetch of 50 each, fused by RRF); and the sparse queries
again, each right after an upsert of one new document. Writes JSON to
``benches/results/sparse.json``.
"""

from __future__ import annotations

import argparse
import math
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from benches.httpclient import BlockingConnection
from benches.queries import Q, grown, latencies, served

RESULTS = Path(__file__).parent / "results" / "sparse.json"
VOCABULARY = 30_000
DIM = 64


def _words(rng: np.random.Generator, n: int, low: int, high: int) -> list[Counter[int]]:
    """``n`` bags of low..high words, word ``w`` drawn with probability ~ 1/(w+1)^1.1."""
    weights = 1 / np.arange(1, VOCABULARY + 1) ** 1.1
    weights /= weights.sum()
    sizes = rng.integers(low, high + 1, n)
    drawn = rng.choice(VOCABULARY, size=int(sizes.sum()), p=weights)
    bags, at = [], 0
    for size in sizes:
        bags.append(Counter(drawn[at : at + size].tolist()))
        at += size
    return bags


def _sparse(bag: Counter[int]) -> dict[str, list[Any]]:
    indices = sorted(bag)
    return {"indices": indices, "values": [1 + math.log(bag[i]) for i in indices]}


def _load(conn: BlockingConnection, name: str, dense: np.ndarray, bags: list[Any] | None) -> float:
    """Upsert the points in batches of 1,000; points a second."""
    body: dict[str, Any] = {"vectors": {"size": DIM, "distance": "Cosine"}}
    if bags is not None:
        body["sparse_vectors"] = {"bm25": {"modifier": "idf"}}
    conn.json("PUT", f"{Q}/{name}", orjson.dumps(body))
    started = time.perf_counter()
    for start in range(0, len(dense), 1000):
        points = []
        for i in range(start, min(start + 1000, len(dense))):
            vector: Any = dense[i].tolist()
            if bags is not None:
                vector = {"": vector, "bm25": _sparse(bags[i])}
            points.append({"id": i, "vector": vector, "payload": {"shard": i % 10}})
        conn.json("PUT", f"{Q}/{name}/points?wait=true", orjson.dumps({"points": points}))
    return len(dense) / (time.perf_counter() - started)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--queries", type=int, default=300)
    args = p.parse_args()
    rng = np.random.default_rng(1)
    bags = _words(rng, args.n, 20, 60)
    dense = rng.normal(size=(args.n, DIM)).astype(np.float32)
    postings = sum(len(b) for b in bags)
    queries = [_sparse(b) for b in _words(rng, args.queries, 2, 5)]
    out: dict[str, Any] = {"n": args.n, "postings": postings}
    with served() as (conn, proc):
        out["dense_points_per_s"], dense_bytes = grown(proc, lambda: _load(conn, "d", dense, None))
        out["sparse_points_per_s"], both_bytes = grown(proc, lambda: _load(conn, "s", dense, bags))
        out["bytes_per_posting"] = (both_bytes - dense_bytes) / postings
        shard = {"must": [{"key": "shard", "match": {"value": 3}}]}
        asks = {
            "sparse": [{"query": q, "using": "bm25", "limit": 10} for q in queries],
            "sparse_filtered": [
                {"query": q, "using": "bm25", "limit": 10, "filter": shard} for q in queries
            ],
            "hybrid_rrf": [
                {
                    "prefetch": [
                        {"query": dense[i].tolist(), "limit": 50},
                        {"query": q, "using": "bm25", "limit": 50},
                    ],
                    "query": {"fusion": "rrf"},
                    "limit": 10,
                }
                for i, q in enumerate(queries)
            ],
        }
        # each query after an upsert of one new document (which holds common words)
        writes = [
            orjson.dumps(
                {
                    "points": [
                        {
                            "id": args.n + i,
                            "vector": {"": dense[i].tolist(), "bm25": _sparse(bag)},
                            "payload": {"shard": i % 10},
                        }
                    ]
                }
            )
            for i, bag in enumerate(_words(rng, args.queries, 20, 60))
        ]
        for key, bodies in asks.items():
            figures = latencies(conn, "s", bodies)
            out[key] = dict(zip(("p50_ms", "p99_ms", "hits"), figures, strict=True))
        figures = latencies(conn, "s", asks["sparse"], writes)
        out["sparse_after_writes"] = dict(zip(("p50_ms", "p99_ms", "hits"), figures, strict=True))
    print(f"{args.n:,} points, {postings:,} postings ({postings / args.n:.1f} a point)")
    print(
        f"upserts: {out['dense_points_per_s']:,.0f} points/s dense only, "
        f"{out['sparse_points_per_s']:,.0f} with the sparse vector"
    )
    print(f"resident memory: ~{out['bytes_per_posting']:.0f} bytes per posting")
    for key in [*asks, "sparse_after_writes"]:
        r = out[key]
        print(f"{key}: p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, {r['hits']:.1f} hits")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_bytes(orjson.dumps(out, option=orjson.OPT_INDENT_2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
