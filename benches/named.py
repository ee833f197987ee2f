"""Several dense vectors per collection, over HTTP against ``vectorizer serve`` (the
Qdrant routes).

``make bench-named`` (or ``python -m benches.named``): 50k points, each a 128-d "image"
vector and, for 90% of them, a 256-d "text" vector (both named: the collection has no
vector of its own, as Qdrant makes it), clustered
(as ``make bench``'s data, whose spread decays over directions like real embeddings'), loaded in 1,000-point upserts; the same
"image" vectors into a collection without "text", so that the resident memory "text"
takes is the difference. Then one sequential client's latency (p50/p99) for nearest
queries of "image" and of "text", each with a payload filter (10% of the points, no
payload index), a recommendation by
two points' "text" vectors, and a fusion (RRF) of both vectors; and recall@10 of the
"text" queries against the same queries searched exactly. Writes JSON to
``benches/results/named.json``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from benches.dataplane import clustered
from benches.httpclient import BlockingConnection
from benches.queries import Q, grown, latencies, served

RESULTS = Path(__file__).parent / "results" / "named.json"
IMAGE, TEXT = 128, 256


def _load(conn: BlockingConnection, name: str, image: np.ndarray, text: np.ndarray | None) -> float:
    """Upsert the points in batches of 1,000; points a second."""
    vectors: dict[str, Any] = {"image": {"size": IMAGE, "distance": "Cosine"}}
    if text is not None:
        vectors["text"] = {"size": TEXT, "distance": "Cosine"}
    conn.json("PUT", f"{Q}/{name}", orjson.dumps({"vectors": vectors}))
    started = time.perf_counter()
    for start in range(0, len(image), 1000):
        points = []
        for i in range(start, min(start + 1000, len(image))):
            vector: dict[str, Any] = {"image": image[i].tolist()}
            if text is not None and i % 10:
                vector["text"] = text[i].tolist()
            points.append({"id": i, "vector": vector, "payload": {"shard": i % 10}})
        conn.json("PUT", f"{Q}/{name}/points?wait=true", orjson.dumps({"points": points}))
    return len(image) / (time.perf_counter() - started)


def _ids(conn: BlockingConnection, body: dict[str, Any]) -> list[Any]:
    result = conn.json("POST", f"{Q}/n/points/query", orjson.dumps(body))
    return [p["id"] for p in result["result"]["points"]]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=50_000)
    p.add_argument("--queries", type=int, default=300)
    args = p.parse_args()
    rng = np.random.default_rng(1)
    image, text = clustered(args.n, IMAGE, 100, seed=1), clustered(args.n, TEXT, 100, seed=3)
    qi = clustered(args.queries, IMAGE, 100, seed=2)
    qt = clustered(args.queries, TEXT, 100, seed=4)
    out: dict[str, Any] = {"n": args.n, "with_text": sum(1 for i in range(args.n) if i % 10)}
    with served() as (conn, proc):
        out["image_only_points_per_s"], image_bytes = grown(
            proc, lambda: _load(conn, "o", image, None)
        )
        out["named_points_per_s"], both_bytes = grown(proc, lambda: _load(conn, "n", image, text))
        out["bytes_per_text_vector"] = (both_bytes - image_bytes) / out["with_text"]
        shard = {"must": [{"key": "shard", "match": {"value": 3}}]}
        pairs = rng.integers(1, args.n // 10, (args.queries, 2)) * 10 + 1  # (have "text")
        asks = {
            "image": [{"query": q.tolist(), "using": "image"} for q in qi],
            "text": [{"query": q.tolist(), "using": "text"} for q in qt],
            "image_filtered": [
                {"query": q.tolist(), "using": "image", "filter": shard} for q in qi
            ],
            "text_filtered": [{"query": q.tolist(), "using": "text", "filter": shard} for q in qt],
            "text_recommend": [
                {"query": {"recommend": {"positive": a.tolist()}}, "using": "text"} for a in pairs
            ],
            "fused_rrf": [
                {
                    "prefetch": [
                        {"query": a.tolist(), "using": "image", "limit": 50},
                        {"query": b.tolist(), "using": "text", "limit": 50},
                    ],
                    "query": {"fusion": "rrf"},
                }
                for a, b in zip(qi, qt, strict=True)
            ],
        }
        for key, bodies in asks.items():
            p50, p99, _ = latencies(conn, "n", [{**b, "limit": 10} for b in bodies])
            out[key] = {"p50_ms": p50, "p99_ms": p99}
        for using in ("image", "text"):
            found = 0
            for body in asks[using]:
                graph = _ids(conn, {**body, "limit": 10})
                exact = _ids(conn, {**body, "limit": 10, "params": {"exact": True}})
                found += len(set(graph) & set(exact))
            out[f"{using}_recall_at_10"] = found / (10 * len(asks[using]))
    print(f"{args.n:,} points with 128-d 'image', {out['with_text']:,} of them with 256-d 'text'")
    print(
        f"upserts: {out['image_only_points_per_s']:,.0f} points/s with 'image' alone, "
        f"{out['named_points_per_s']:,.0f} with 'text' too"
    )
    print(f"resident memory: ~{out['bytes_per_text_vector']:,.0f} bytes per 'text' vector")
    for key in asks:
        r = out[key]
        print(f"{key}: p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms")
    print(
        f"recall@10 against exact search: 'image' {out['image_recall_at_10']:.4f}, "
        f"'text' {out['text_recall_at_10']:.4f}"
    )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_bytes(orjson.dumps(out, option=orjson.OPT_INDENT_2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
