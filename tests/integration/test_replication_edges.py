"""Replication edge cases a failover drill found: a primary that lost its log tail, a
second link under a live replica's id, hellos that are not hellos, control calls sent
at once, and a fenced replica."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.faultproxy import FaultProxy
from tests.integration import test_replication
from tests.integration.test_replication import (
    Cluster,
    all_points,
    caught_up,
    eventually,
    primary_and_replica,
    seed,
)
from vectorizer.client import Point, VectorizerClient
from vectorizer.errors import (
    CollectionExists,
    CollectionNotFound,
    ReplicationTimeout,
    VectorNotFound,
)
from vectorizer.replication.state import EPOCH_MAX, EPOCH_STEP_MAX

cluster = test_replication.cluster  # (the fixture)


async def _hello(url: str, hello: dict[str, Any]) -> dict[str, Any]:
    """Send one hello on the stream; the primary's first answer."""
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.send_json(hello)
        answer: dict[str, Any] = await ws.receive_json(timeout=10)
        return answer


async def test_a_primary_that_lost_its_log_tail_resyncs_the_replica_that_had_it(
    cluster: Cluster,
) -> None:
    """A primary loses records it had streamed (a crash before its log was on disk:
    here its data directory as it was before them), then writes others under the same
    sequences. Its replica held the lost ones: by epoch and sequence the logs looked
    alike and it streamed on from its position (its points were not the primary's).
    Each start of a primary begins a new timeline: a full sync."""
    p, vp, r, vr = await primary_and_replica(cluster)
    await seed(vp, 20, batch=5)  # (records 2-5)
    await eventually(lambda: caught_up(vp, vr))
    assert p.terminate() == 0
    before = p.data_dir.with_name("p-before")
    shutil.copytree(p.data_dir, before)
    await asyncio.to_thread(p.start)
    await seed(vp, 20, start=500, batch=5)  # (records 6-9: the replica has them)
    await eventually(lambda: caught_up(vp, vr))
    assert r.terminate() == 0
    p.kill()
    shutil.rmtree(p.data_dir)
    before.rename(p.data_dir)  # (records 6-9 lost)
    await asyncio.to_thread(p.start)
    await seed(vp, 40, start=1000, batch=5)  # (records 6-13: others)
    await asyncio.to_thread(r.start)

    async def synced() -> bool:
        return (await vr.replication_stats())["full_syncs"] >= 1 and await caught_up(vp, vr)

    await eventually(synced)
    assert await all_points(vr, "c") == await all_points(vp, "c")
    assert await vr.count("c") == 60


@pytest.mark.parametrize(
    "epoch", ["7", 3.9, 2**64 - 1, None, True], ids=["string", "float", "huge", "none", "bool"]
)
async def test_a_hello_with_a_bad_epoch_is_refused_and_fences_nothing(
    cluster: Cluster, epoch: Any
) -> None:
    """An epoch from a hello can fence the primary: one that is no epoch (a string or a
    float that int() took, one past 64 bits that fenced it for good) is a protocol
    error, and the primary stays primary."""
    p = await cluster.start("p")
    vp = cluster.client(p)
    url = p.url.replace("http", "ws") + "/replication/stream"
    hello = {"type": "hello", "node_id": "x", "epoch": epoch, "sequence": 0, "history": []}
    answer = await _hello(url, hello)
    assert answer["type"] == "error" and answer["code"] == "protocol", answer
    status = await vp.replication_status()
    assert status["role"] == "primary" and status["epoch"] == 1
    for bad in ({"type": "hello"}, {"type": "ack", "sequence": 1}):  # (no traceback either)
        assert (await _hello(url, bad))["code"] == "protocol"
    await vp.create_collection("c", 4)  # still takes writes


async def test_a_hello_far_ahead_fences_nothing_and_one_just_ahead_still_does(
    cluster: Cluster,
) -> None:
    """A hello at EPOCH_MAX (a replication credential was enough to send one) fenced the
    primary for good: no promotion can go past it, and the operator's next epoch was out
    of range. A hello more than EPOCH_STEP_MAX ahead is a protocol error now; one from a
    replica of a newer primary still fences, as it must."""
    p = await cluster.start("p")
    vp = cluster.client(p)
    url = p.url.replace("http", "ws") + "/replication/stream"
    hello = {"type": "hello", "node_id": "x", "sequence": 0, "history": []}
    for epoch in (EPOCH_MAX, 1 + EPOCH_STEP_MAX + 1):
        answer = await _hello(url, {**hello, "epoch": epoch})
        assert answer["type"] == "error" and answer["code"] == "protocol", answer
        assert "more than" in answer["message"]
        status = await vp.replication_status()
        assert status["role"] == "primary" and status["epoch"] == 1
    await vp.create_collection("c", 4)  # still takes writes
    answer = await _hello(url, {**hello, "epoch": 1 + EPOCH_STEP_MAX})
    assert answer["type"] == "error" and answer["code"] == "stale_epoch", answer
    status = await vp.replication_status()
    assert status["role"] == "fenced" and status["epoch"] == 1 + EPOCH_STEP_MAX
    await vp.promote(2 + EPOCH_STEP_MAX)  # (and there is room to promote past it)
    assert (await vp.replication_status())["role"] == "primary"


@pytest.mark.parametrize("how", ["hello", "follow"])
async def test_a_write_waiting_for_replicas_is_answered_once_its_node_stops_streaming(
    cluster: Cluster, how: str
) -> None:
    """Stepped down by a newer epoch's hello, or (fenced for a switchover) told to follow
    the new primary: no replica can confirm the write any more. It waited out its whole
    sync timeout; only a fence with an epoch answered it at once."""
    p = await cluster.start("p", "--sync-replicas", "1", "--sync-timeout-ms", "30000")
    vp = cluster.client(p)
    # (a replica under "never" holds records but confirms none on its disk)
    await cluster.start("r", "--role", "replica", "--primary-url", p.url, "--wal-fsync", "never")
    write = asyncio.create_task(vp.create_collection("c", 4))
    await asyncio.sleep(1)
    assert not write.done()
    if how == "hello":
        url = p.url.replace("http", "ws") + "/replication/stream"
        hello = {"type": "hello", "node_id": "x", "epoch": 2, "sequence": 0, "history": []}
        assert (await _hello(url, hello))["code"] == "stale_epoch"
    else:
        q = await cluster.start("q")
        await cluster.client(q).promote(2)
        await vp.fence()
        await vp.follow(q.url, 2)
    with pytest.raises(ReplicationTimeout):
        async with asyncio.timeout(5):  # (not the 30 s of its timeout)
            await write


async def test_a_second_link_under_a_live_replica_id_replaces_the_first(cluster: Cluster) -> None:
    """A hello naming a connected replica's id (the replica reconnecting, or a stray
    link) takes its place: the old link is closed and the replica, reconnecting, is
    counted again. The primary used to keep the old link streaming while counting the
    new one's record, so once the stray link went, sync writes timed out for good."""
    p = await cluster.start("p", "--sync-replicas", "1", "--sync-timeout-ms", "3000")
    vp = cluster.client(p)
    await cluster.start("r", "--role", "replica", "--primary-url", p.url)
    await vp.create_collection("c", 4)  # (confirmed by the replica)
    status = await vp.replication_status()
    url = p.url.replace("http", "ws") + "/replication/stream"
    hello = {"type": "hello", "node_id": "r", "epoch": 1, "sequence": status["sequence"]}
    assert (await _hello(url, {**hello, "history": status["history"]}))["type"] == "welcome"

    async def connected_again() -> bool:
        reps = await vp.replicas()
        return [(x["id"], x["status"]) for x in reps] == [("r", "Connected")]

    await eventually(connected_again)
    await vp.upsert("c", [Point(1, [1.0, 0, 0, 0])])  # (sync: needs the replica's ack)


async def test_follow_calls_sent_at_once_leave_one_follower(cluster: Cluster) -> None:
    """Control calls run one at a time: eight follows at once to two primaries used to
    leave a second follower running beside the one the state named (both primaries
    full-synced the replica back and forth)."""
    a = await cluster.start("a")
    b = await cluster.start("b")
    va, vb = cluster.client(a), cluster.client(b)
    await va.create_collection("from_a", 4)
    await vb.create_collection("from_b", 4)
    r = await cluster.start("r", "--role", "replica")
    vr = cluster.client(r)
    await asyncio.gather(*(vr.follow(a.url if i % 2 else b.url, 1) for i in range(8)))
    named = (await vr.replication_status())["primary"]
    source, other = (va, vb) if named == a.url else (vb, va)
    await eventually(lambda: caught_up(source, vr))
    await asyncio.sleep(2)  # (a stray follower would have synced the other's data by now)
    want = [c["name"] for c in await source.list_collections()]
    assert [c["name"] for c in await vr.list_collections()] == want
    assert [x["status"] for x in await other.replicas()] in ([], ["Disconnected"])


async def test_a_fenced_replica_follows_its_primary_again_and_streams_to_no_one(
    cluster: Cluster,
) -> None:
    """Fencing a replica (it takes no writes anyway) made it look like a fenced primary:
    following its primary again at the same epoch was refused ("this node was primary
    at epoch 1"), and other nodes could follow it."""
    p, vp, r, vr = await primary_and_replica(cluster)
    await vr.fence()
    url = r.url.replace("http", "ws") + "/replication/stream"
    status = await vr.replication_status()
    hello = {"type": "hello", "node_id": "x", "epoch": 1, "sequence": 0, "history": []}
    assert (await _hello(url, hello))["code"] == "not_primary", status
    await vr.follow(p.url, 1)
    await seed(vp, 10)
    await eventually(lambda: caught_up(vp, vr))
    assert await vr.count("c") == 10


@contextlib.asynccontextmanager
async def _sync_primary_with_replica(
    cluster: Cluster,
) -> AsyncIterator[tuple[VectorizerClient, FaultProxy]]:
    """A primary with sync write concern (1 s), its client, and the proxy its replica
    links through, which can cut the link (then nothing more is confirmed)."""
    p = await cluster.start("p", "--sync-replicas", "1", "--sync-timeout-ms", "1000")
    proxy = await FaultProxy(p.port).start()
    try:
        await cluster.start("r", "--role", "replica", "--primary-url", proxy.url)
        yield cluster.client(p), proxy
    finally:
        await proxy.close()


async def test_a_write_with_nothing_to_do_waits_for_what_made_it_so(cluster: Cluster) -> None:
    """Sync write concern: a delete of a point another delete removed a moment before
    (not yet confirmed by the replica) was answered 200 at once, and a client retrying
    a delete that timed out took that for a success: after a failover the point was
    back. A write that finds nothing to do is answered once the state it found is as
    durable and confirmed as a write's."""
    async with _sync_primary_with_replica(cluster) as (vp, proxy):
        await vp.create_collection("c", 4)
        await vp.upsert("c", [Point(i, [1.0, i, 0, 0]) for i in range(1, 4)])
        proxy.cut()  # (the replica confirms nothing more)
        first = asyncio.create_task(vp.delete_many("c", ids=[1]))
        await eventually(lambda: _gone(vp, 1))
        for again in (
            vp.delete_many("c", ids=[1]),
            vp.delete_many("c", filter={"must": [{"has_id": [1]}]}),
            vp.delete("c", 1),
        ):
            with pytest.raises(ReplicationTimeout):
                await again
        with pytest.raises(ReplicationTimeout):
            await first
        proxy.heal()
        assert await vp.delete_many("c", ids=[1]) == 0  # (confirmed now: at once)


async def test_a_write_refused_for_what_it_found_waits_for_what_made_it_so(
    cluster: Cluster,
) -> None:
    """Sync write concern: retries of a collection delete, a collection create and a
    point delete that timed out unconfirmed were refused at once (404 collection,
    409 exists, 404 point) by the state those unconfirmed writes left, and after a
    failover the collection and the point were back. A refusal for the state found is
    answered once that state is confirmed: until then, 503."""
    async with _sync_primary_with_replica(cluster) as (vp, proxy):
        await vp.create_collection("gone", 4)
        await vp.create_collection("c", 4)
        await vp.upsert("c", [Point(1, [1.0, 0, 0, 0])])
        proxy.cut()  # (the replica confirms nothing more)
        unconfirmed = [
            vp.delete_collection("gone"),
            vp.create_collection("new", 4),
            vp.delete("c", 1),
        ]
        for write in unconfirmed:
            with pytest.raises(ReplicationTimeout):
                await write
        for again in (
            vp.delete_collection("gone"),
            vp.create_collection("new", 4),
            vp.update("c", 1, payload={"a": 1}),
        ):
            with pytest.raises(ReplicationTimeout):
                await again
        async with (
            aiohttp.ClientSession() as session,
            session.delete(f"{vp.url}/qdrant/collections/gone") as resp,  # (false, not 404)
        ):
            assert resp.status == 503, await resp.text()
        proxy.heal()
        with pytest.raises(CollectionNotFound):  # (confirmed now: at once)
            await vp.delete_collection("gone")
        with pytest.raises(CollectionExists):
            await vp.create_collection("new", 4)
        with pytest.raises(VectorNotFound):
            await vp.update("c", 1, payload={"a": 1})


async def _gone(vz: VectorizerClient, pid: int) -> bool:
    return await vz.count("c") == 2


async def test_replicas_linked_through_a_promotion_take_the_new_history(
    cluster: Cluster,
) -> None:
    """A fenced primary promoted again (a switchover given up) streamed the new epoch's
    records on its old links: the replica applied them under the old history, reported
    epoch 1, and its next link started over with a full sync. Links end at an epoch
    change; the replica reconnects and reads the new history."""
    p, vp, r, vr = await primary_and_replica(cluster)
    await seed(vp, 10)
    await vp.fence()
    await vp.promote(2)
    await seed(vp, 10, start=100)
    want = (await vp.replication_status())["history"]
    assert want == [[1, 1], [2, 3]]

    async def adopted() -> bool:
        status = await vr.replication_status()
        return bool(status["history"] == want and status["epoch"] == 2)

    await eventually(adopted, timeout=10)
    assert r.terminate() == 0
    await asyncio.to_thread(r.start)
    await eventually(lambda: caught_up(vp, vr))
    assert (await vr.replication_stats())["full_syncs"] == 0
    assert await all_points(vr, "c") == await all_points(vp, "c")


async def test_what_was_sent_to_a_replica_counts_over_its_links(cluster: Cluster) -> None:
    """``bytes_sent`` counts all that was sent to a replica, as ``operations_synced``
    does, over every link it had: it started from nothing again at each reconnect."""
    p, vp, r, vr = await primary_and_replica(cluster)
    await seed(vp, 100)
    await eventually(lambda: caught_up(vp, vr))
    [before] = await vp.replicas()
    await asyncio.to_thread(r.terminate)
    await asyncio.to_thread(r.start)
    await vp.upsert("c", [Point(10_000, [1.0] * 8)])
    # (the primary's table, once its replica's ack came: the replica holding the record
    # is not yet the primary hearing of it)
    [after] = await test_replication.confirmed(vp)
    assert after["operations_synced"] > before["operations_synced"]
    assert after["bytes_sent"] > before["bytes_sent"], (before, after)
