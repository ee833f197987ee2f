"""A primary restarted on a full disk cannot record the new timeline its start begins
(``replication.json``): it starts all the same and serves reads, but takes no write and
streams to no replica until the timeline is recorded, which it retries until there is
room. (The real app, over a socket; the full disk is injected at ``os.fsync`` for the
state file only. A real full disk: tests/integration/test_full_disk_edges.py.)

Writing records under the old timeline would be unsafe: a replica may hold records the
crashed primary streamed and then lost; after another crash they would read as the
same timeline as the records written in their place, and the replica would stream on
from its own.
"""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from vectorizer.replication import protocol
from vectorizer.replication import state as node_state
from vectorizer.replication.state import Role
from vectorizer.server.app import create_app, open_node
from vectorizer.settings import Settings

Client = TestClient[web.Request, web.Application]
Factory = Callable[[web.Application], Awaitable[Client]]


def started(data: Path) -> web.Application:
    app = create_app(Settings(data_dir=data, snapshot_on_shutdown=False))

    async def start(app: web.Application) -> None:
        await open_node(app)

    app.on_startup.append(start)
    return app


class StateFileFull:
    """``os.fsync`` failing with ENOSPC for the replication state file (while ``full``)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._real = os.fsync
        self.full = True
        self.refused = 0
        monkeypatch.setattr(os, "fsync", self)

    def __call__(self, fd: Any) -> None:
        fd = fd if isinstance(fd, int) else fd.fileno()
        if self.full and os.readlink(f"/proc/self/fd/{fd}").endswith(node_state.FILE + ".tmp"):
            self.refused += 1
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._real(fd)


async def upsert(client: Client, point: int) -> tuple[int, Any]:
    body = {"vectors": [{"id": point, "vector": [1, 0]}]}
    resp = await client.post("/collections/c/vectors", json=body)
    return resp.status, await resp.json()


async def test_a_primary_restarted_on_a_full_disk_starts_and_writes_once_there_is_room(
    aiohttp_client: Factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    first = await aiohttp_client(started(data))
    assert (await first.post("/collections", json={"name": "c", "dimension": 2})).status == 201
    assert (await upsert(first, 1))[0] == 200
    await first.close()
    before = node_state.load(data)
    assert before is not None and before.role is Role.PRIMARY

    disk = StateFileFull(monkeypatch)
    client = await aiohttp_client(started(data))  # ("cannot start: No space left on device")
    assert disk.refused
    resp = await client.get("/collections/c/vectors/1")
    assert resp.status == 200  # reads go on
    status, body = await upsert(client, 2)
    assert status == 507 and body["error"]["code"] == "insufficient_storage", body
    assert "timeline" in body["error"]["message"]
    resp = await client.delete("/collections/c/vectors/1")
    assert resp.status == 507  # (a record of the old timeline, whatever it does)
    ws = await client.ws_connect("/replication/stream")  # a replica: not streamed to
    hello = {"node_id": "r", "epoch": before.epoch, "sequence": 0, "history": []}
    await ws.send_str(protocol.message("hello", **hello))
    answer = protocol.parse((await ws.receive()).data)
    assert answer["type"] == "error" and answer["code"] == "not_primary", answer
    await ws.close()
    assert node_state.load(data) == before  # nothing written over it

    disk.full = False  # room again: recorded without a write asking for it
    for _ in range(100):
        if node_state.load(data) != before:
            break
        await asyncio.sleep(0.05)
    after = node_state.load(data)
    assert after is not None and after.role is Role.PRIMARY and after.epoch == before.epoch
    assert len(after.history) == len(before.history) + 1  # the new timeline, recorded
    assert after.history[-1][1] == 3  # from the next record on
    assert (await upsert(client, 2))[0] == 200
    status = await (await client.get("/replication/status")).json()
    assert status["timelines"] == [t for *_, t in after.history]
