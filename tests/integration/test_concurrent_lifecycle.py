"""Clients that race each other over the same collections — creating and deleting them,
writing, searching, snapshotting, natively and through /qdrant — get answers or
structured 4xx errors, never a 5xx; and after ``kill -9`` every collection comes back
exactly as it was (every write was acknowledged before the kill)."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from tests.servers import ServerProcess

NAMES = ["a", "b", "c"]
DIM = 8
CLIENTS = 16
SECONDS = 10.0


def request(rnd: random.Random) -> tuple[str, str, Any]:
    """One random call on one of the shared collections."""
    name = rnd.choice(NAMES)
    vec = [rnd.gauss(0, 1) for _ in range(DIM)]

    def points(n: int) -> list[dict[str, Any]]:
        return [
            {
                "id": rnd.randrange(2000),
                "vector": [rnd.gauss(0, 1) for _ in range(DIM)],
                "payload": {"k": rnd.randrange(4)},
            }
            for _ in range(n)
        ]

    calls: list[tuple[float, tuple[str, str, Any]]] = [
        (4, ("POST", "/collections", {"name": name, "dimension": DIM})),
        (1, ("PUT", f"/qdrant/collections/{name}", {"vectors": {"size": DIM, "distance": "Dot"}})),
        (2, ("DELETE", f"/collections/{name}", None)),
        (1, ("DELETE", f"/qdrant/collections/{name}", None)),
        (20, ("POST", f"/collections/{name}/vectors", {"vectors": points(rnd.choice([1, 40]))})),
        (5, ("PUT", f"/qdrant/collections/{name}/points", {"points": points(20)})),
        (8, ("PUT", f"/collections/{name}/vectors/{rnd.randrange(2000)}", {"vector": vec})),
        (4, ("POST", f"/collections/{name}/vectors/delete", {"ids": list(range(50))})),
        (2, ("POST", f"/qdrant/collections/{name}/points/delete", {"points": [1, 2, 3]})),
        (1, ("POST", f"/collections/{name}/snapshot", None)),
        (20, ("POST", f"/collections/{name}/search", {"vector": vec, "limit": 10})),
        (
            5,
            (
                "POST",
                f"/collections/{name}/search",
                {"vector": vec, "filter": {"must": [{"key": "k", "match": {"value": 1}}]}},
            ),
        ),
        (5, ("POST", "/batch_search", {"collection": name, "queries": [{"vector": vec}] * 3})),
        (5, ("POST", f"/qdrant/collections/{name}/points/search", {"vector": vec, "limit": 5})),
        (3, ("POST", f"/qdrant/collections/{name}/points/scroll", {"limit": 20})),
        (3, ("GET", f"/collections/{name}/vectors?limit=50", None)),
    ]
    weights = [w for w, _ in calls]
    return rnd.choices([c for _, c in calls], weights)[0]


async def counts(session: aiohttp.ClientSession, url: str) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for name in NAMES:
        async with session.get(f"{url}/collections/{name}") as r:
            out[name] = (await r.json())["collection"]["vector_count"] if r.status == 200 else None
    return out


async def test_racing_clients_get_no_server_errors_and_lose_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv = ServerProcess(data_dir=data, args=["--snapshot-interval-s", "1"]).start()
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    try:
        async with aiohttp.ClientSession() as session:

            async def client(seed: int) -> None:
                rnd = random.Random(seed)
                stop = time.monotonic() + SECONDS
                while time.monotonic() < stop:
                    method, path, body = request(rnd)
                    async with session.request(method, srv.url + path, json=body) as r:
                        statuses[r.status] += 1
                        answer = await r.json()
                        qdrant = path.startswith("/qdrant")
                        if r.status >= 500:
                            failures.append(f"{method} {path} -> {r.status} {answer}")
                        elif r.status >= 400 and not (
                            isinstance(answer["status"]["error"], str)
                            if qdrant
                            else answer["error"]["code"]
                        ):
                            failures.append(f"{method} {path} -> unstructured {answer}")

            await asyncio.gather(*(client(seed) for seed in range(CLIENTS)))
            before = await counts(session, srv.url)
    finally:
        srv.kill()
    assert not failures, "\n".join(failures[:10])
    assert statuses[200] > 500 and statuses[404] > 0  # the races did happen

    again = ServerProcess(data_dir=data, port=srv.port).start()
    try:
        async with aiohttp.ClientSession() as session:
            assert await counts(session, again.url) == before
    finally:
        again.kill()
    assert '"ERROR"' not in srv.log() + again.log()
