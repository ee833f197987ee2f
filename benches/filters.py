"""Filtered reads with and without payload indexes, over HTTP against ``vectorizer serve``.

``make bench-filters`` (or ``python -m benches.filters``): 200k points of 32 dimensions
with a keyword (``city``, 100 values), an integer (``price``, 0-9,999), a tag array and
a title (4-8 words of a 2,000-word vocabulary, drawn with Zipf-like frequencies); each
filter is counted and searched (limit 10), and facets and ordered listings are asked
through the Qdrant routes, before and after the keys are indexed, sequentially; the
median latency of each is printed with each index's build time and the server's
resident memory before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import psutil

from benches.httpclient import Connection
from tests.servers import ServerProcess

C = "/collections/bench"
FILTERS: dict[str, dict[str, Any]] = {
    "city = one of 100 (1%)": {"must": [{"key": "city", "match": {"value": "c7"}}]},
    "price in a 5% range": {"must": [{"key": "price", "range": {"gte": 1000, "lt": 1500}}]},
    "city (1%) and price (50%)": {
        "must": [
            {"key": "city", "match": {"value": "c7"}},
            {"key": "price", "range": {"lt": 5000}},
        ]
    },
    "tag any of 2 (20%)": {"must": [{"key": "tags", "match": {"any": ["t1", "t2"]}}]},
    "city any of 40 (40%)": {
        "must": [{"key": "city", "match": {"any": [f"c{i}" for i in range(40)]}}]
    },
    "title has a rare word": {"must": [{"key": "title", "match": {"text": "w500"}}]},
    "title has two common words": {"must": [{"key": "title", "match": {"text": "w3 w9"}}]},
    "title has any of 3 words": {"must": [{"key": "title", "match": {"text_any": "w7 w70 w700"}}]},
    "title has the phrase": {"must": [{"key": "title", "match": {"phrase": "w1 w2"}}]},
}
TEXT = {"type": "text", "tokenizer": "word", "phrase_matching": True}
INDEXES: dict[str, Any] = {"city": "keyword", "price": "integer", "tags": "keyword", "title": TEXT}
WORDS = 2000
_ZIPF = 1 / np.arange(1, WORDS + 1)  # a word's frequency falls with its rank
_ZIPF /= _ZIPF.sum()
Q = "/qdrant/collections/bench"
LISTINGS: dict[str, tuple[str, dict[str, Any]]] = {
    "facet city": (Q + "/facet", {"key": "city", "limit": 10}),
    "facet tags, city = c7": (
        Q + "/facet",
        {"key": "tags", "filter": {"must": [{"key": "city", "match": {"value": "c7"}}]}},
    ),
    "scroll by price desc, 10": (
        Q + "/points/scroll",
        {"limit": 10, "order_by": {"key": "price", "direction": "desc"}, "with_payload": False},
    ),
    "scroll by price from 5000, city = c7": (
        Q + "/points/scroll",
        {
            "limit": 10,
            "order_by": {"key": "price", "start_from": 5000},
            "filter": {"must": [{"key": "city", "match": {"value": "c7"}}]},
        },
    ),
}


def _payload(i: int, rng: np.random.Generator) -> dict[str, Any]:
    return {
        "city": f"c{rng.integers(100)}",
        "price": int(rng.integers(10_000)),
        "tags": [f"t{rng.integers(10)}" for _ in range(2)],
        "title": " ".join(f"w{w}" for w in rng.choice(WORDS, rng.integers(4, 9), p=_ZIPF)),
        "i": i,
    }


async def _load(conn: Connection, n: int, dim: int) -> None:
    rng = np.random.default_rng(0)
    await conn.json("POST", "/collections", orjson.dumps({"name": "bench", "dimension": dim}))
    for start in range(0, n, 1000):
        vectors = rng.standard_normal((1000, dim)).astype(np.float32).tolist()
        batch = [
            {"id": start + j, "vector": vectors[j], "payload": _payload(start + j, rng)}
            for j in range(1000)
        ]
        await conn.json("POST", C + "/vectors", orjson.dumps({"vectors": batch}))


async def _median_ms(conn: Connection, path: str, body: bytes, repeat: int) -> float:
    took = []
    for _ in range(repeat):
        t = time.perf_counter()
        status, raw = await conn.request("POST", path, body)
        took.append((time.perf_counter() - t) * 1000)
        assert status == 200, raw
    return statistics.median(took)


async def _listings(conn: Connection, repeat: int) -> dict[str, float]:
    return {
        name: await _median_ms(conn, path, orjson.dumps(body), repeat)
        for name, (path, body) in LISTINGS.items()
    }


async def _measure(conn: Connection, dim: int, repeat: int) -> dict[str, tuple[float, float, int]]:
    query = np.random.default_rng(9).standard_normal(dim).tolist()
    out = {}
    for name, flt in FILTERS.items():
        count_body = orjson.dumps({"filter": flt})
        search_body = orjson.dumps({"vector": query, "limit": 10, "filter": flt})
        matches = (await conn.json("POST", C + "/count", count_body))["count"]
        out[name] = (
            await _median_ms(conn, C + "/count", count_body, repeat),
            await _median_ms(conn, C + "/search", search_body, repeat),
            int(matches),
        )
    return out


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        srv = ServerProcess(data_dir=Path(tmp) / "d", args=["--snapshot-interval-s", "0"])
        srv.start()
        conn = await Connection.open("127.0.0.1", srv.port)
        try:
            assert srv.proc is not None
            started = time.perf_counter()
            await _load(conn, args.n, args.dim)
            print(f"loaded {args.n:,} points in {time.perf_counter() - started:.1f} s")
            rss = psutil.Process(srv.proc.pid).memory_info().rss
            before = await _measure(conn, args.dim, args.repeat)
            listed_before = await _listings(conn, args.repeat)
            built: dict[str, tuple[float, int]] = {}  # key -> (seconds, resident bytes added)
            for key, schema in INDEXES.items():
                had = psutil.Process(srv.proc.pid).memory_info().rss
                started = time.perf_counter()
                body = orjson.dumps({"schema": schema})
                await conn.json("PUT", f"{C}/payload_indexes/{key}", body)
                took = time.perf_counter() - started
                built[key] = (took, psutil.Process(srv.proc.pid).memory_info().rss - had)
            grown = psutil.Process(srv.proc.pid).memory_info().rss - rss
            after = await _measure(conn, args.dim, args.repeat)
            listed_after = await _listings(conn, args.repeat)
        finally:
            conn.close()
            srv.terminate()
    for key, (took, added) in built.items():
        print(
            f"index on {key} ({INDEXES[key] if isinstance(INDEXES[key], str) else 'text'}): "
            f"built in {took * 1000:.0f} ms, resident memory +{added / args.n:.0f} B per point"
        )
    print(f"all indexes: resident memory +{grown / 2**20:.0f} MiB")
    print(f"{'filter':28} {'matches':>8} {'count ms':>17} {'search ms':>17}")
    for name, (count_ms, search_ms, matches) in before.items():
        count_after, search_after, _ = after[name]
        print(
            f"{name:28} {matches:>8,} {count_ms:>7.1f} -> {count_after:>6.1f} "
            f"{search_ms:>7.1f} -> {search_after:>6.1f}"
        )
    print(f"{'Qdrant route':38} {'ms':>17}")
    for name, ms in listed_before.items():
        print(f"{name:38} {ms:>7.1f} -> {listed_after[name]:>6.1f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=200_000)
    p.add_argument("--dim", type=int, default=32)
    p.add_argument("--repeat", type=int, default=15, help="requests per figure (median)")
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()
