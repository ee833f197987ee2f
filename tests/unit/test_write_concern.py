"""The sync write concern holds when the node stops being primary mid-write.

Regression: a write whose local fsync was running when the primary was fenced (a
switchover or failover beginning) or told to follow was answered 200 with no replica
having confirmed it (the wait for confirmations was skipped for a node no longer
primary), and a failover lost it. The fsync is held here at the system call's edge.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.held import HeldFsync
from vectorizer.server.app import create_app, open_node
from vectorizer.settings import Settings

Client = TestClient[web.Request, web.Application]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/replication/fence", {}),  # (a switchover's first step: it still streams)
        ("/replication/fence", {"epoch": 2}),  # (a newer primary exists)
        ("/replication/follow", {"primary_url": "http://127.0.0.1:9", "epoch": 2}),
    ],
    ids=["fenced", "fenced-newer", "told-to-follow"],
)
async def test_a_write_in_its_fsync_when_the_primary_steps_aside_is_not_acknowledged(
    aiohttp_client: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    path: str,
    body: dict[str, Any],
) -> None:
    fsync = HeldFsync(monkeypatch)
    app = create_app(
        Settings(
            data_dir=tmp_path / "data",
            sync_replicas=1,
            sync_timeout_ms=300,
            snapshot_on_shutdown=False,
        )
    )
    client: Client = await aiohttp_client(app)
    await open_node(app)
    created = await client.post("/collections", json={"name": "c", "dimension": 2})
    assert created.status == 503  # (no replica: durable here, not acknowledged)
    fsync.armed = True
    write = asyncio.create_task(
        client.post("/collections/c/vectors", json={"vectors": [{"id": 1, "vector": [1, 0]}]})
    )
    assert await asyncio.to_thread(fsync.entered.wait, 10)
    stepped = await client.post(path, json=body)
    fsync.released.set()
    answer = await write
    assert stepped.status == 200, await stepped.text()
    assert answer.status == 503, await answer.text()
    assert (await answer.json())["error"]["code"] == "replication_timeout"
