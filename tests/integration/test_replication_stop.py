"""A primary stopped while sync writes wait for a replica that does not answer exits at
once: each waiting write is answered 503 ``replication_timeout`` (durable on the primary,
not acknowledged, as at its timeout). SIGTERM used to be held for the writes' whole
``sync_timeout_ms`` (20 s: the node exited after 18.7 s)."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from tests.integration import test_replication
from tests.integration.test_replication import Cluster, caught_up, eventually
from tests.servers import free_port
from vectorizer.client import Point
from vectorizer.errors import ReplicationTimeout

cluster = test_replication.cluster  # (the fixture)


async def test_a_primary_stopped_while_a_write_waits_for_a_paused_replica_exits_at_once(
    cluster: Cluster,
) -> None:
    p = await cluster.start("p", "--sync-replicas", "1", "--sync-timeout-ms", "60000")
    vp = cluster.client(p)
    r = await cluster.start("r", "--role", "replica", "--primary-url", p.url)
    vr = cluster.client(r)
    await vp.create_collection("c", 4)  # (confirmed by the replica: record 1)
    assert r.proc is not None
    replica = r.proc.pid
    os.kill(replica, signal.SIGSTOP)  # (it confirms nothing more, and closes nothing)
    try:
        write = asyncio.create_task(vp.upsert("c", [Point(1, [1.0, 0, 0, 0])]))

        async def logged() -> bool:
            return bool((await vp.replication_status())["sequence"] == 2)

        await eventually(logged)  # (the write waits for the replica now)
        started = time.monotonic()
        code = await asyncio.to_thread(p.terminate, 20)  # (SIGKILL after 20 s: not 0)
        took = time.monotonic() - started
        assert code == 0 and took < 10, (code, took)
        with pytest.raises(ReplicationTimeout, match="before the node stopped"):
            await write
    finally:
        os.kill(replica, signal.SIGCONT)
    # Durable on the primary all the same: the replica has it once it links again.
    await asyncio.to_thread(p.start)
    await eventually(lambda: caught_up(vp, vr))
    assert await vr.count("c") == await vp.count("c") == 1


async def test_a_primary_told_to_follow_ends_the_writes_waiting_for_its_replicas(
    cluster: Cluster,
) -> None:
    """Told to follow another node, a primary closes every replica's link: no write
    waiting for their confirmations can get one any more. Such a write was answered only
    at its ``sync_timeout_ms`` (60 s here); it is answered at once now, as at a stop."""
    p = await cluster.start("p", "--sync-replicas", "1", "--sync-timeout-ms", "60000")
    vp = cluster.client(p)
    r = await cluster.start("r", "--role", "replica", "--primary-url", p.url)
    await vp.create_collection("c", 4)  # (confirmed by the replica: record 1)
    assert r.proc is not None
    replica = r.proc.pid
    os.kill(replica, signal.SIGSTOP)  # (it confirms nothing more)
    try:
        write = asyncio.create_task(vp.upsert("c", [Point(1, [1.0, 0, 0, 0])]))

        async def logged() -> bool:
            return bool((await vp.replication_status())["sequence"] == 2)

        await eventually(logged)  # (the write waits for the replica now)
        epoch = (await vp.replication_status())["epoch"]
        started = time.monotonic()
        nobody = f"http://127.0.0.1:{free_port()}"  # (followed all the same, retrying)
        await vp.request("POST", "/replication/follow", {"primary_url": nobody, "epoch": epoch + 1})
        with pytest.raises(ReplicationTimeout, match="stopped streaming to its replicas"):
            async with asyncio.timeout(20):
                await write
        assert time.monotonic() - started < 10
    finally:
        os.kill(replica, signal.SIGCONT)
