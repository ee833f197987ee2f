"""Before the node has loaded its replication state, nothing may act on it.

Regression: a restarted primary, still replaying its log, took a replica's hello at
epoch 1 against its placeholder state (epoch 0), "stepped down" and persisted itself
fenced. Replication views now answer 503 not_ready until the state is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from vectorizer.replication import state as node_state
from vectorizer.replication.state import NodeState, Role
from vectorizer.server.app import create_app, open_node
from vectorizer.server.keys import REPLICATION
from vectorizer.settings import Settings

Client = TestClient[web.Request, web.Application]


async def test_replication_waits_for_the_persisted_state(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    primary = NodeState(role=Role.REPLICA, node_id="p").promoted(1, 1)
    node_state.save(data, primary)
    app = create_app(Settings(data_dir=data, snapshot_on_shutdown=False))
    client: Client = await aiohttp_client(app)  # listening, store not opened yet

    for method, path, body in [
        ("GET", "/replication/status", None),
        ("POST", "/replication/promote", {"epoch": 5}),
        ("POST", "/replication/fence", {"epoch": 1}),
    ]:
        resp = await client.request(method, path, json=body)
        assert resp.status == 503, path
        assert (await resp.json())["error"]["code"] == "not_ready"
    with pytest.raises(aiohttp.WSServerHandshakeError) as err:  # a replica's hello at epoch 1
        await client.ws_connect("/replication/stream")
    assert err.value.status == 503
    assert node_state.load(data) == primary  # nothing was persisted over it

    await open_node(app)
    assert app[REPLICATION].state.role is Role.PRIMARY
    resp = await client.get("/replication/status")
    assert resp.status == 200 and (await resp.json())["epoch"] == 1
