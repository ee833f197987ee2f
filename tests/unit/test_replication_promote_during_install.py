"""A replica promoted while it installs a full sync's snapshot: the promotion waits for
the install to end (the node's files are half replaced until then), then stops the
follower. The sync was made, yet it was counted a failed one, and not a full sync.

The replica runs in this process (the real app), its install slowed by a sleep in
``Store._wipe`` (which runs once the install has begun replacing files); the primary is
a real ``vectorizer serve``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.servers import ServerProcess
from vectorizer.engine.store import Store
from vectorizer.server.app import create_app, open_node
from vectorizer.settings import Settings

Client = TestClient[web.Request, web.Application]
Factory = Callable[[web.Application], Awaitable[Client]]


def replica(data: Path, primary_url: str) -> web.Application:
    settings = Settings(
        data_dir=data,
        role="replica",
        primary_url=primary_url,
        snapshot_on_shutdown=False,
        snapshot_interval_s=0,
    )
    app = create_app(settings)

    async def start(app: web.Application) -> None:
        await open_node(app)

    app.on_startup.append(start)
    return app


@pytest.fixture
def primary(tmp_path: Path) -> Iterator[ServerProcess]:
    """A primary whose log no longer holds its first records: a new replica syncs in full."""
    args = ["--snapshots-retained", "1", "--wal-segment-bytes", "2048"]
    srv = ServerProcess(data_dir=tmp_path / "p", args=args).start()
    assert srv.request("POST", "/collections", {"name": "c", "dimension": 2})[0] == 201
    for first in range(0, 200, 10):
        points = [{"id": i, "vector": [1, i]} for i in range(first, first + 10)]
        assert srv.request("POST", "/collections/c/vectors", {"vectors": points})[0] == 200
    assert srv.request("POST", "/collections/c/snapshot")[0] == 201
    yield srv
    srv.kill()


async def test_a_sync_installed_while_the_replica_is_promoted_counts_as_made(
    aiohttp_client: Factory,
    tmp_path: Path,
    primary: ServerProcess,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wiping = threading.Event()
    real = Store._wipe

    def slow_wipe(self: Store) -> None:
        wiping.set()
        time.sleep(1.0)  # (the promotion comes meanwhile)
        real(self)

    monkeypatch.setattr(Store, "_wipe", slow_wipe)
    client = await aiohttp_client(replica(tmp_path / "r", primary.url))
    assert await asyncio.to_thread(wiping.wait, 30)
    resp = await client.post("/replication/promote", json={"epoch": 2})
    assert resp.status == 200, await resp.text()
    stats = await (await client.get("/replication/stats")).json()
    assert (stats["full_syncs_received"], stats["failed_syncs"]) == (1, 0), stats
    got = await (await client.get("/collections/c")).json()
    assert got["collection"]["vector_count"] == 200, got
