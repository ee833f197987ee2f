"""A write through an alias lands where the alias points when the write commits.

Regression: Qdrant's payload writes, index changes and named-vector changes looked the
alias up before waiting out a snapshot; an alias move acknowledged meanwhile (queued
ahead of them) was ignored, and the write went to the old collection for good (its log
record names the collection). The snapshot's fsync is held at the system call's edge.
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
Q = "/qdrant/collections"

WRITES = [
    ("POST", "al/points/payload", {"payload": {"v": "late"}, "points": [1]}),
    ("POST", "al/points/payload", {"payload": {"v": "late"}, "filter": {}}),
    ("PUT", "al/points/payload", {"payload": {"v": "late"}, "points": [1]}),
    ("PUT", "al/index", {"field_name": "v", "field_schema": "keyword"}),
]


@pytest.mark.parametrize(("method", "path", "body"), WRITES)
async def test_a_write_waiting_out_a_snapshot_goes_where_the_alias_then_points(
    aiohttp_client: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    path: str,
    body: dict[str, Any],
) -> None:
    fsync = HeldFsync(monkeypatch)
    app = create_app(Settings(data_dir=tmp_path / "data", snapshot_on_shutdown=False))
    client: Client = await aiohttp_client(app)
    await open_node(app)
    for name in ("s1", "s2"):
        vectors = {"size": 2, "distance": "Dot"}
        assert (await client.put(f"{Q}/{name}", json={"vectors": vectors})).status == 200
        point = {"id": 1, "vector": [1, 0], "payload": {"v": "init"}}
        assert (await client.put(f"{Q}/{name}/points", json={"points": [point]})).status == 200
    alias = {"create_alias": {"collection_name": "s1", "alias_name": "al"}}
    assert (await client.post(f"{Q}/aliases", json={"actions": [alias]})).status == 200

    fsync.armed = True
    snapshot = asyncio.create_task(client.post("/collections/s1/snapshot"))
    assert await asyncio.to_thread(fsync.entered.wait, 10)  # (writes wait now)
    moved = {"actions": [{"delete_alias": {"alias_name": "al"}}]}
    moved["actions"].append({"create_alias": {"collection_name": "s2", "alias_name": "al"}})
    move = asyncio.create_task(client.post(f"{Q}/aliases", json=moved))
    await asyncio.sleep(0.1)  # (the move waits first)
    write = asyncio.create_task(client.request(method, f"{Q}/{path}", json=body))
    await asyncio.sleep(0.1)
    fsync.released.set()
    assert (await snapshot).status == 201
    assert (await move).status == 200
    answer = await write
    assert answer.status == 200, await answer.text()

    def state(name: str) -> Any:
        return client.post(f"{Q}/{name}/points", json={"ids": [1], "with_payload": True})

    payloads = [(await (await state(n)).json())["result"][0]["payload"] for n in ("s1", "s2")]
    indexed = [
        (await (await client.get(f"{Q}/{n}")).json())["result"]["payload_schema"]
        for n in ("s1", "s2")
    ]
    if path.endswith("index"):
        assert indexed == [{}, {"v": indexed[1]["v"]}], indexed
    else:
        assert payloads == [{"v": "init"}, {"v": "late"}], payloads
