"""The stack's floor: a bare aiohttp + hnswlib search server, measured for scale.

It does only what any search server on this stack must do: read a JSON body, make the
query a unit float32 vector, walk the graph (searches that arrive together share one
pass on both cores over one loop turn, or two when others joined; the real server
waits while joiners keep coming, up to eight turns), answer JSON of the same shape. No
validation, errors, security, request ids, metrics or durability. ``make bench``
measures it right after the real server, with the same vectors, index parameters,
queries and load generator, so the ratio between the two holds whatever mood the
machine is in (a VM drifts by 10-15% within the hour, the two servers alike).

Run by the benchmark as ``python -m benches.floor --port P --vectors FILE.npy ...``;
it listens once its graph is built.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import hnswlib
import numpy as np
import orjson
from aiohttp import web

from vectorizer.hugepages import huge_pages_environ

ROUTE = "/collections/bench/search"


class BareSearch:
    """Queries of one loop turn (two when others joined) walk the graph together."""

    def __init__(self, index: hnswlib.Index) -> None:
        self._index = index
        self._pending: list[tuple[np.ndarray, asyncio.Future[tuple[list[int], list[float]]]]] = []

    async def handle(self, request: web.Request) -> web.Response:
        query = np.asarray(orjson.loads(await request.read())["vector"], dtype=np.float32)
        query /= np.linalg.norm(query)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[tuple[list[int], list[float]]] = loop.create_future()
        self._pending.append((query, fut))
        if len(self._pending) == 1:
            loop.call_soon(self._flush, False)
        labels, distances = await fut
        hits = [
            {"id": label, "score": 1.0 - d, "payload": None}
            for label, d in zip(labels, distances, strict=True)
        ]
        return web.Response(body=orjson.dumps({"results": hits}), content_type="application/json")

    def _flush(self, second_turn: bool) -> None:
        if not second_turn and len(self._pending) > 1:  # others joined: one more turn
            asyncio.get_running_loop().call_soon(self._flush, True)
            return
        batch, self._pending = self._pending, []
        queries = np.vstack([q for q, _ in batch])
        labels, distances = self._index.knn_query(
            queries, k=10, num_threads=1 if len(batch) < 4 else -1
        )
        for i, (_, fut) in enumerate(batch):
            if not fut.done():
                fut.set_result((labels[i].tolist(), distances[i].tolist()))


def build_index(vectors: np.ndarray, m: int, ef_construction: int, ef: int) -> hnswlib.Index:
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    index = hnswlib.Index(space="ip", dim=vectors.shape[1])
    index.init_index(max_elements=len(unit), M=m, ef_construction=ef_construction)
    index.add_items(unit, np.arange(len(unit)))
    index.set_ef(ef)
    return index


def start(
    port: int, vectors: Path, m: int, ef_construction: int, ef: int, timeout: float = 300.0
) -> subprocess.Popen[bytes]:
    """The floor server as a child process (on huge pages as ``vectorizer serve`` runs,
    unless the environment chose otherwise), returned once it listens on ``port``."""
    env = huge_pages_environ(os.environ) or dict(os.environ)
    args = ["--port", str(port), "--vectors", str(vectors), "--m", str(m)]
    args += ["--ef-construction", str(ef_construction), "--ef", str(ef)]
    proc = subprocess.Popen([sys.executable, "-m", "benches.floor", *args], env=env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the floor server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    proc.wait()
    raise TimeoutError(f"the floor server did not listen within {timeout:g}s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--vectors", type=Path, required=True, help="an .npy file of float32 rows")
    p.add_argument("--m", type=int, required=True)
    p.add_argument("--ef-construction", type=int, required=True)
    p.add_argument("--ef", type=int, required=True)
    args = p.parse_args()
    index = build_index(np.load(args.vectors), args.m, args.ef_construction, args.ef)
    app = web.Application()
    app.router.add_post(ROUTE, BareSearch(index).handle)
    import uvloop

    uvloop.run(serve(app, args.port))


async def serve(app: web.Application, port: int) -> None:
    """Until the benchmark terminates the process."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    main()
