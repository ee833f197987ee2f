"""The replication-control contract the operator relies on, against real `vectorizer serve`.

Two data-plane processes on 127.0.0.1, started the way the StatefulSet starts them (a
replica with no primary), driven through the operator's own client: bootstrap
(promote at epoch 1, follow), the epoch rules, and the switchover steps.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.servers import ServerProcess, free_port, start_all
from vectorizer.client import Point, VectorizerClient
from vectorizer.errors import CollectionExists, NodeFenced
from vectorizer_operator.dataplane_client import DataPlaneError, NodeStatus, ReplicationClient
from vectorizer_operator.reconcile.replication import timeline


def node(tmp_path: Path, name: str) -> ServerProcess:
    port = free_port()
    env = {
        "VECTORIZER_ROLE": "replica",
        "VECTORIZER_NODE_ID": name,
        "VECTORIZER_ADVERTISE_URL": f"http://127.0.0.1:{port}",
    }
    return ServerProcess(data_dir=tmp_path / name, port=port, env=env)


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    a, b = node(tmp_path, "vz-0"), node(tmp_path, "vz-1")
    start_all(a, b)
    yield a, b
    a.kill()
    b.kill()


async def wait_for(
    client: ReplicationClient, url: str, ok: Callable[[NodeStatus], bool], timeout: float = 15
) -> NodeStatus:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        status = await client.status(url)
        if ok(status):
            return status
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{url}: {status}")
        await asyncio.sleep(0.1)


async def write(url: str, n: int) -> None:
    async with VectorizerClient(url) as vz:
        with contextlib.suppress(CollectionExists):
            await vz.create_collection("c", dimension=2, index="exact")
        await vz.upsert("c", [Point(i, [float(i), 1.0]) for i in range(n)])


@pytest.mark.timeout(120)
async def test_bootstrap_epochs_and_switchover(nodes: tuple[ServerProcess, ServerProcess]) -> None:
    a, b = nodes
    client = ReplicationClient(timeout=5)
    try:
        # A fresh pod: a replica with no primary, epoch 0 and no history.
        fresh = await client.status(a.url)
        assert (fresh.role, fresh.epoch, fresh.history, fresh.primary) == ("replica", 0, (), None)

        # Bootstrap: the first instance at epoch 1, the other follows it.
        await client.promote(a.url, 1)
        await client.follow(b.url, a.url, 1)
        with pytest.raises(DataPlaneError) as err:
            await client.promote(b.url, 1)  # not newer than what it has seen
        assert err.value.code == "stale_epoch"
        await write(a.url, 5)
        sa = await client.status(a.url)
        assert (sa.role, sa.epoch, timeline(sa)) == ("primary", 1, 1)
        sb = await wait_for(client, b.url, lambda s: s.sequence == sa.sequence and s.connected)
        assert sb.role == "replica" and sb.primary == a.url and sb.lag_operations == 0

        # Switchover: fence the primary at its epoch, the target has every record,
        # promote it at epoch 2, the old primary follows it.
        await client.fence(a.url, 1)
        fenced = await client.status(a.url)
        assert fenced.role == "fenced" and fenced.sequence == sa.sequence
        with pytest.raises(NodeFenced):  # a fenced node takes no writes
            await write(a.url, 1)
        await client.promote(b.url, 2)
        await client.follow(a.url, b.url, 2)
        await write(b.url, 3)
        sb = await client.status(b.url)
        assert (sb.role, sb.epoch, timeline(sb)) == ("primary", 2, 2)
        sa = await wait_for(client, a.url, lambda s: s.sequence == sb.sequence and s.connected)
        assert (sa.role, sa.primary, sa.epoch) == ("replica", b.url, 2)
    finally:
        await client.close()


@pytest.mark.timeout(120)
async def test_roles_survive_a_restart(nodes: tuple[ServerProcess, ServerProcess]) -> None:
    """The env says replica, but a persisted primary comes back as primary (rolling restart)."""
    a, _ = nodes
    client = ReplicationClient(timeout=5)
    try:
        await client.promote(a.url, 1)
        a.terminate()
        a.start()
        status = await client.status(a.url)
        assert (status.role, status.epoch) == ("primary", 1)
    finally:
        await client.close()
