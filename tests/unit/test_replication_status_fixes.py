"""A node's replication headers before its state is loaded, and a start that would follow
the node's own URL (the integration tests run the same over real processes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from vectorizer.errors import ValidationError
from vectorizer.replication import state as node_state
from vectorizer.replication.state import NodeState, Role
from vectorizer.server.app import create_app, open_node
from vectorizer.server.keys import REPLICATION, STORE
from vectorizer.settings import Settings

Client = TestClient[web.Request, web.Application]
ROLE, SEQUENCE = "X-Vectorizer-Role", "X-Vectorizer-Sequence"


async def test_no_role_nor_sequence_is_said_before_the_state_is_loaded(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    """A replica (by its persisted state) started without --role: until its state is
    loaded its role is the settings' placeholder, primary, and it said so."""
    data = tmp_path / "data"
    replica = NodeState(role=Role.REPLICA, node_id="r").following("http://127.0.0.1:9", 1)
    node_state.save(data, replica)
    app = create_app(Settings(data_dir=data, snapshot_on_shutdown=False))
    client: Client = await aiohttp_client(app)  # listening, store not opened yet

    for path in ("/health", "/ready", "/replication/status"):
        resp = await client.get(path)
        assert ROLE not in resp.headers and SEQUENCE not in resp.headers, (path, resp.headers)
    assert (await client.get("/ready")).status == 503

    await app[STORE].open()  # (recovered; the replication state not loaded yet)
    resp = await client.get("/health")
    assert ROLE not in resp.headers and SEQUENCE not in resp.headers

    await app[REPLICATION].start()
    resp = await client.get("/health")
    assert resp.headers[ROLE] == "replica" and resp.headers[SEQUENCE] == "0"
    await app[REPLICATION].stop()


def _settings(tmp_path: Path, **kw: Any) -> Settings:
    return Settings(data_dir=tmp_path / "data", host="127.0.0.1", port=7001, **kw)


OWN = "http://127.0.0.1:7001"


@pytest.mark.parametrize("url", [OWN, OWN + "/"])
def test_a_new_replica_with_its_own_url_as_primary_is_refused(tmp_path: Path, url: str) -> None:
    with pytest.raises(ValidationError) as err:
        create_app(_settings(tmp_path, role="replica", primary_url=url))
    assert err.value.field == "primary_url"
    assert "is this node's own address: a node cannot follow itself" in err.value.message
    # Under its --advertise-url it is its own address too; another URL is not.
    with pytest.raises(ValidationError):
        create_app(
            _settings(
                tmp_path,
                role="replica",
                primary_url="http://vz-0.vz:7001",
                advertise_url="http://vz-0.vz:7001",
            )
        )
    create_app(_settings(tmp_path, role="replica", primary_url="http://127.0.0.1:7002"))


def test_a_primary_given_its_own_url_is_not_refused(tmp_path: Path) -> None:
    """A primary follows no one: --primary-url is not used (a restarted one keeps its role)."""
    create_app(_settings(tmp_path, primary_url=OWN))  # (new: --role primary, the default)
    node_state.save(tmp_path / "data", NodeState(role=Role.REPLICA).promoted(1, 1))
    create_app(_settings(tmp_path, role="replica", primary_url=OWN))


def test_a_restarted_replica_given_its_own_url_is_refused_whatever_its_role_flag(
    tmp_path: Path,
) -> None:
    node_state.save(tmp_path / "data", NodeState(role=Role.REPLICA).following("http://p:1", 1))
    with pytest.raises(ValidationError):
        create_app(_settings(tmp_path, primary_url=OWN))  # (no --role: primary, a placeholder)


async def test_a_recorded_primary_that_is_the_node_itself_is_refused_at_start(
    tmp_path: Path,
) -> None:
    """Recorded by a start from before the check: the start refuses to follow it, and
    records nothing over it."""
    recorded = NodeState(role=Role.REPLICA, node_id="r").following(OWN, 1)
    node_state.save(tmp_path / "data", recorded)
    app = create_app(_settings(tmp_path, snapshot_on_shutdown=False))
    with pytest.raises(ValidationError) as err:
        await open_node(app)
    assert err.value.message.startswith(f"its recorded primary ({OWN}) is this node's own")
    assert node_state.load(tmp_path / "data") == recorded
    assert not app[REPLICATION].started
    await app[REPLICATION].stop()
    await app[STORE].close(take_snapshot=False)
