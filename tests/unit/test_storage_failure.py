"""A failed fsync stops a node's writes for good and makes it unhealthy (the real app,
over a socket): only a restart, recovering from what the disk holds, brings it back.

A failing fsync cannot be made without root and a faulty device, so it is injected at
``os.fsync``; a full disk is real in tests/integration/test_disk_full.py.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from vectorizer.server.app import create_app, open_node
from vectorizer.settings import Settings

Client = TestClient[web.Request, web.Application]


async def test_a_failed_fsync_fails_the_node_until_it_restarts(
    aiohttp_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(Settings(data_dir=tmp_path / "data", snapshot_on_shutdown=False))

    async def start(app: web.Application) -> None:
        await open_node(app)

    app.on_startup.append(start)
    client: Client = await aiohttp_client(app)
    assert (await client.post("/collections", json={"name": "c", "dimension": 2})).status == 201
    points = {"vectors": [{"id": 1, "vector": [1, 0]}]}
    assert (await client.post("/collections/c/vectors", json=points)).status == 200

    def broken(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken)
    r = await client.post("/collections/c/vectors", json={"vectors": [{"id": 2, "vector": [0, 1]}]})
    body = await r.json()
    assert r.status == 503 and body["error"]["code"] == "storage_failed", body
    assert "restarts" in body["error"]["message"]
    monkeypatch.undo()  # the disk answers again; the node still takes no writes

    r = await client.put(
        "/qdrant/collections/c/points", json={"points": [{"id": 3, "vector": [1, 1]}]}
    )
    assert r.status == 503 and "restarts" in (await r.json())["status"]["error"]
    for path in ("/health", "/ready"):
        r = await client.get(path)
        assert r.status == 503 and (await r.json())["status"] == "failed", path
    stats = await (await client.get("/stats")).json()
    assert "fsync of the log failed" in stats["wal"]["failure"]
    r = await client.post("/collections/c/search", json={"vector": [1, 0], "limit": 1})
    assert r.status == 200 and (await r.json())["results"][0]["id"] == 1  # reads go on


@pytest.mark.parametrize("auth", [False, True], ids=["auth-off", "auth-on"])
async def test_the_probes_say_why_the_log_failed_only_with_auth_off(
    aiohttp_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, auth: bool
) -> None:
    """The probes answer everyone (no credentials): with auth on, strangers learn that
    the node failed, not why. Qdrant's /healthz and /livez told the reason all the same."""
    key = "k" * 24
    settings = Settings(
        data_dir=tmp_path / "data",
        snapshot_on_shutdown=False,
        auth_enabled=auth,
        auth_admin_key=key,
    )
    app = create_app(settings)

    async def start(app: web.Application) -> None:
        await open_node(app)

    app.on_startup.append(start)
    client: Client = await aiohttp_client(app)
    admin = {"X-API-Key": key}
    r = await client.post("/collections", json={"name": "c", "dimension": 2}, headers=admin)
    assert r.status == 201

    def broken(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken)
    points = {"vectors": [{"id": 2, "vector": [0, 1]}]}
    r = await client.post("/collections/c/vectors", json=points, headers=admin)
    assert r.status == 503
    monkeypatch.undo()
    for path in ("/health", "/ready"):
        r = await client.get(path)
        assert r.status == 503 and ("reason" in await r.json()) is not auth, path
    for path in ("/qdrant/healthz", "/qdrant/livez"):
        r = await client.get(path)
        text = await r.text()
        assert r.status == 503 and text.startswith("log failed"), path
        assert ("Input/output error" in text) is not auth, text
