"""A full sync whose snapshot takes longer to prepare than a replica waits for a message.

The primary sent nothing between its welcome and the snapshot's header while it wrote
the snapshot and hashed its files: a replica dropped the link after its
``disconnect_timeout_ms`` and asked again, and, writes going on meanwhile, each try took
a new snapshot: a large node's replica never synced. It beats now, to a replica that
takes beats before a snapshot's header (``waits_for_snapshots``).

The primary runs in this process (the real app, over a socket), its snapshot slowed by
a sleep around ``snapshot.write``; the replica is a real ``vectorizer serve``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.servers import ServerProcess
from vectorizer.engine import snapshot
from vectorizer.replication import primary as primary_module
from vectorizer.replication import protocol
from vectorizer.server.app import create_app, open_node
from vectorizer.settings import Settings

Client = TestClient[web.Request, web.Application]
Factory = Callable[[web.Application], Awaitable[Client]]
SLOW_S = 1.5  # a snapshot's preparation, three times what the replica waits


def primary(data: Path) -> web.Application:
    settings = Settings(
        data_dir=data,
        snapshot_on_shutdown=False,
        snapshot_interval_s=0,
        snapshots_retained=1,
        wal_segment_bytes=2048,
        heartbeat_interval_ms=100,
    )
    app = create_app(settings)

    async def start(app: web.Application) -> None:
        await open_node(app)

    app.on_startup.append(start)
    return app


def slow_snapshots(monkeypatch: pytest.MonkeyPatch) -> None:
    real = snapshot.write

    def write(*args: Any, **kw: Any) -> Any:
        time.sleep(SLOW_S)
        return real(*args, **kw)

    monkeypatch.setattr(snapshot, "write", write)


async def seeded(client: Client) -> None:
    assert (await client.post("/collections", json={"name": "c", "dimension": 2})).status == 201
    for first in range(0, 200, 10):  # (records enough for the log to have more segments)
        points = [{"id": i, "vector": [1, i]} for i in range(first, first + 10)]
        resp = await client.post("/collections/c/vectors", json={"vectors": points})
        assert resp.status == 200
    assert (await client.post("/collections/c/snapshot")).status == 201
    stats = await (await client.get("/stats")).json()
    assert stats["wal"]["first_sequence"] > 1  # (a new replica needs a full sync)


@pytest.fixture
async def slow_primary(
    aiohttp_client: Factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Client:
    """A primary seeded past its log's first segment, its snapshots slow from now on."""
    client = await aiohttp_client(primary(tmp_path / "p"))
    await seeded(client)
    slow_snapshots(monkeypatch)
    return client


async def test_a_replica_is_synced_however_long_the_snapshot_takes(
    slow_primary: Client, tmp_path: Path
) -> None:
    client = slow_primary
    await write(client, 999)  # (the snapshot to send is a new one, slow to make)
    url = str(client.make_url("")).rstrip("/")
    replica = ServerProcess(
        data_dir=tmp_path / "r",
        args=["--role", "replica", "--primary-url", url, "--disconnect-timeout-ms", "500"],
    )
    await asyncio.to_thread(replica.start)
    try:
        deadline, n = time.monotonic() + 4 * SLOW_S + 10, 200
        while True:  # a write every 100 ms: each try of the old code took a new snapshot
            await write(client, n)
            n += 1
            stats = await (await client.get("/replication/stats")).json()
            if stats["full_syncs"] == 1:  # (installed, and confirmed)
                break
            assert time.monotonic() < deadline, replica.log()
            await asyncio.sleep(0.1)
        status, got = await asyncio.to_thread(replica.request, "GET", "/collections/c")
        assert status == 200 and got["collection"]["vector_count"] >= 201, got
    finally:
        await asyncio.to_thread(replica.kill)


async def test_no_beat_goes_before_the_header_to_a_replica_that_does_not_take_them(
    slow_primary: Client,
) -> None:
    """An older replica reads the first message after a full welcome as the header."""
    client = slow_primary
    for takes, first_kind in ((False, "snapshot"), (True, "heartbeat")):
        await write(client, 999)  # (a new snapshot each time)
        ws = await client.ws_connect("/replication/stream")
        hello = {"node_id": f"r{takes}", "epoch": 1, "sequence": 0, "history": []}
        if takes:
            hello["waits_for_snapshots"] = True
        await ws.send_str(protocol.message("hello", **hello))
        welcome = protocol.parse((await ws.receive(timeout=10)).data)
        assert welcome["type"] == "welcome" and welcome["mode"] == "full", welcome
        first = protocol.parse((await ws.receive(timeout=10)).data)
        assert first["type"] == first_kind, first
        await ws.close()


async def write(client: Client, point: int) -> None:
    body = {"vectors": [{"id": point, "vector": [1, point]}]}
    assert (await client.post("/collections/c/vectors", json=body)).status == 200


async def test_replicas_synced_from_one_snapshot_share_its_digests(
    aiohttp_client: Factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each full sync read all of its snapshot's files again to hash them (~5 s for an
    840 MB node), though replicas synced with nothing written between get the same
    snapshot: they share its description now, at once or one after another."""
    client = await aiohttp_client(primary(tmp_path / "p"))
    await seeded(client)
    hashed: list[Path] = []
    real = primary_module.sha256

    def counted(path: Path) -> str:
        hashed.append(path)
        return real(path)

    monkeypatch.setattr(primary_module, "sha256", counted)

    async def header(node: str) -> dict[str, Any]:
        ws = await client.ws_connect("/replication/stream")
        hello = {"node_id": node, "epoch": 1, "sequence": 0, "history": []}
        await ws.send_str(protocol.message("hello", **hello))
        welcome = protocol.parse((await ws.receive(timeout=10)).data)
        assert welcome["type"] == "welcome" and welcome["mode"] == "full", welcome
        got = protocol.parse((await ws.receive(timeout=10)).data)
        assert got["type"] == "snapshot", got
        await ws.close()
        return got

    first, second = await asyncio.gather(header("r1"), header("r2"))
    third = await header("r3")
    assert first["files"] == second["files"] == third["files"]
    assert len(hashed) == len(first["files"])  # (each file once)
    await write(client, 999)  # a new snapshot: described again
    fourth = await header("r4")
    assert fourth["sequence"] > first["sequence"]
    assert len(hashed) == len(first["files"]) + len(fourth["files"])
