"""The replication-control client against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from vectorizer_operator.dataplane_client import (
    FENCE_PATH,
    FOLLOW_PATH,
    PROMOTE_PATH,
    STATUS_PATH,
    DataPlaneError,
    NodeStatus,
    ReplicationClient,
)

STATUS = {
    "role": "replica",
    "epoch": 3,
    "sequence": 42,
    "primary": "http://vz-0.vz-headless.db.svc.cluster.local:15002",
    "history": [[1, 1], [3, 30]],
    "timelines": ["5d0a1c9e2b7f", "9f1c2b7a0d3e"],  # (the operator has no use for them)
    "node_id": "vz-1",
    "ready": True,
    "lag_operations": 2,
    "lag_ms": 1.5,
    "connected": True,
    "sync_replicas": 0,
}


@pytest.fixture
async def node(aiohttp_server: Any) -> tuple[TestServer, list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []

    async def status(request: web.Request) -> web.Response:
        return web.json_response(STATUS)

    async def control(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append((request.path, body))
        if body.get("epoch") == 0:
            error = {"code": "stale_epoch", "message": "epoch 0 is not newer", "field": "epoch"}
            return web.json_response({"error": error}, status=409)
        return web.json_response({**STATUS, "role": "primary"})

    app = web.Application()
    app.router.add_get(STATUS_PATH, status)
    for path in (PROMOTE_PATH, FOLLOW_PATH, FENCE_PATH):
        app.router.add_post(path, control)
    return await aiohttp_server(app), seen


async def test_status_is_typed(node: tuple[TestServer, list[Any]]) -> None:
    server, _ = node
    client = ReplicationClient(timeout=2)
    try:
        s = await client.status(str(server.make_url("")))
    finally:
        await client.close()
    assert s == NodeStatus(
        role="replica",
        epoch=3,
        sequence=42,
        primary=STATUS["primary"],
        history=((1, 1), (3, 30)),
        node_id="vz-1",
        ready=True,
        lag_operations=2,
        lag_ms=1.5,
        connected=True,
    )


async def test_commands_send_the_contract_bodies(node: tuple[TestServer, list[Any]]) -> None:
    server, seen = node
    url = str(server.make_url("")).rstrip("/")
    client = ReplicationClient(timeout=2)
    try:
        await client.promote(url, 2)
        await client.follow(url, "http://p:15002", 2)
        await client.fence(url, 2)
        with pytest.raises(DataPlaneError) as err:
            await client.promote(url, 0)
    finally:
        await client.close()
    assert err.value.code == "stale_epoch"
    assert seen[:3] == [
        ("/replication/promote", {"epoch": 2}),
        ("/replication/follow", {"primary_url": "http://p:15002", "epoch": 2}),
        ("/replication/fence", {"epoch": 2}),
    ]


async def test_an_unreachable_node_is_a_data_plane_error() -> None:
    client = ReplicationClient(timeout=1)
    try:
        with pytest.raises(DataPlaneError) as err:
            await client.status("http://127.0.0.1:9")
    finally:
        await client.close()
    assert err.value.code == "unreachable"


async def test_a_node_without_the_api_is_a_data_plane_error(aiohttp_server: Any) -> None:
    server = await aiohttp_server(web.Application())
    client = ReplicationClient(timeout=2)
    try:
        with pytest.raises(DataPlaneError):
            await client.status(str(server.make_url("")))
    finally:
        await client.close()


@pytest.mark.parametrize(
    "raw",
    [
        None,
        {},
        {"role": "leader", "epoch": 1, "sequence": 1},
        {"role": "primary", "epoch": "x", "sequence": 1},
    ],
)
def test_malformed_status(raw: Any) -> None:
    with pytest.raises(DataPlaneError) as err:
        NodeStatus.from_json(raw)
    assert err.value.code == "malformed"


def test_minimal_status() -> None:
    s = NodeStatus.from_json({"role": "primary", "epoch": 1, "sequence": 0, "primary": None})
    assert (s.primary, s.history, s.lag_operations, s.connected) == (None, (), None, None)
    assert s.writes_refused is None  # (nodes before it was reported send nothing)
    raw = {"role": "primary", "epoch": 1, "sequence": 0, "writes_refused": "insufficient_memory"}
    assert NodeStatus.from_json(raw).writes_refused == "insufficient_memory"
    # (nodes on six commits of 2026-11-30 put the timeline's id in each history entry)
    raw = {"role": "primary", "epoch": 2, "sequence": 9, "history": [[1, 1, "a"], [2, 5, "b"]]}
    assert NodeStatus.from_json(raw).history == ((1, 1), (2, 5))
