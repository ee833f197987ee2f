"""Replication between real nodes on 127.0.0.1: sync, catch-up, failover, partitions, fencing."""

from __future__ import annotations

import asyncio
import random
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import numpy as np
import orjson
import pytest
from aiohttp import WSMsgType

from tests.faultproxy import FaultProxy
from tests.servers import ServerProcess
from tests.writemodel import State, Writer, check_indexes, diff, read_state, same
from vectorizer.client import Point, VectorizerClient
from vectorizer.errors import (
    NodeFenced,
    NotPrimary,
    ReplicationTimeout,
    StaleEpoch,
    VectorizerError,
)

FAST = [
    "--heartbeat-interval-ms",
    "100",
    "--disconnect-timeout-ms",
    "1500",
    "--reconnect-interval-ms",
    "200",
    "--lagging-threshold-ms",
    "500",
]
T = TypeVar("T")


class Cluster:
    """Nodes of one test, each a real server process with its own SDK client."""

    def __init__(self, factory: type[ServerProcess], root: Path) -> None:
        self.factory, self.root = factory, root
        self.nodes: dict[str, ServerProcess] = {}
        self.clients: list[VectorizerClient] = []

    async def start(self, name: str, *args: str, port: int | None = None) -> ServerProcess:
        kw: dict[str, Any] = {"port": port} if port else {}
        srv = self.factory(data_dir=self.root / name, args=[*FAST, "--node-id", name, *args], **kw)
        await asyncio.to_thread(srv.start)
        self.nodes[name] = srv
        return srv

    def client(self, srv: ServerProcess | str) -> VectorizerClient:
        url = srv if isinstance(srv, str) else srv.url
        c = VectorizerClient(url, timeout=15)
        self.clients.append(c)
        return c

    async def close(self) -> None:
        for c in self.clients:
            await c.close()


@pytest.fixture
async def cluster(server_factory: type[ServerProcess], tmp_path: Path) -> AsyncIterator[Cluster]:
    c = Cluster(server_factory, tmp_path)
    yield c
    await c.close()


async def eventually(check: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
    """Poll ``check`` until it returns a truthy value (or fail with its last result)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = await check()
            if last:
                return last  # type: ignore[no-any-return]
        except (VectorizerError, OSError) as exc:
            last = exc
        await asyncio.sleep(0.1)
    raise AssertionError(f"condition not met in {timeout}s; last: {last!r}")


async def caught_up(primary: VectorizerClient, replica: VectorizerClient) -> bool:
    p = await primary.replication_status()
    r = await replica.replication_status()
    return bool(r["sequence"] == p["sequence"])


async def confirmed(primary: VectorizerClient) -> list[dict[str, Any]]:
    """The primary's replica table once every replica confirmed everything (Connected, no lag)."""

    async def check() -> list[dict[str, Any]] | None:
        reps = await primary.replicas()
        ok = reps and all(r["status"] == "Connected" and r["lag_operations"] == 0 for r in reps)
        return reps if ok else None

    return await eventually(check)


async def all_points(vz: VectorizerClient, collection: str) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    offset = None
    while True:
        page, offset = await vz.list_points(collection, limit=1000, offset=offset, with_vector=True)
        out.update({r.id: (r.payload, r.vector) for r in page})
        if offset is None:
            return out


async def primary_and_replica(
    cluster: Cluster, primary: str = "p"
) -> tuple[ServerProcess, VectorizerClient, ServerProcess, VectorizerClient]:
    """A primary (node "p") with an empty collection "c" (8-d), and a replica "r" caught
    up with it."""
    p = await cluster.start(primary)
    vp = cluster.client(p)
    await vp.create_collection("c", 8)
    r = await cluster.start("r", "--role", "replica", "--primary-url", p.url)
    vr = cluster.client(r)
    await eventually(lambda: caught_up(vp, vr))
    return p, vp, r, vr


async def seed(vz: VectorizerClient, n: int, dim: int = 8, start: int = 0, batch: int = 50) -> None:
    rng = np.random.default_rng(start)
    for b in range(start, start + n, batch):
        pts = [
            Point(i, rng.normal(size=dim).tolist(), {"i": i})
            for i in range(b, min(b + batch, start + n))
        ]
        await vz.upsert("c", pts)


async def _full_sync_frames(
    url: str,
    node_id: str,
    answer: str | None,
    installed: Callable[[aiohttp.ClientWebSocketResponse, int], Awaitable[None]] | None = None,
) -> list[Any]:
    """Say hello from an empty replica; answer the snapshot header (or, like a replica on
    older code, do not) and return what the primary sends after it until the link ends
    or the snapshot is done; then ``installed(ws, sequence)``, when given, on the link
    still open: what a replica says once it installed the snapshot at ``sequence``."""
    hello = {"type": "hello", "node_id": node_id, "address": "", "epoch": 0, "sequence": 0}
    hello |= {"history": [], "confirms_snapshots": True} if answer else {"history": []}
    frames: list[Any] = []
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.send_json(hello)
        assert (await ws.receive_json(timeout=10))["mode"] == "full"
        header = await ws.receive_json(timeout=10)
        assert header["type"] == "snapshot"
        if answer == "refuse":
            refusal = {"type": "snapshot_refused", "code": "insufficient_memory", "message": "-"}
            await ws.send_json(refusal)
        elif answer == "take":
            await ws.send_json({"type": "snapshot_take"})
        while (msg := await ws.receive(timeout=10)).type in (WSMsgType.BINARY, WSMsgType.TEXT):
            frames.append(msg.data)
            if msg.type == WSMsgType.TEXT and '"snapshot_done"' in msg.data:
                if installed is not None:
                    await installed(ws, header["sequence"])
                break
    return frames


async def _acks(ws: aiohttp.ClientWebSocketResponse, sequence: int) -> None:
    await ws.send_json({"type": "ack", "sequence": sequence})
    await ws.send_json({"type": "heartbeat", "sequence": 0})  # (read after the ack)
    await asyncio.sleep(0.2)


async def test_a_replica_from_before_timelines_streams_on_and_reads_the_welcome(
    cluster: Cluster,
) -> None:
    """Rolling upgrades: a replica on older code says its history as pairs, without
    timelines; the primary takes it as the same timeline (incremental, no full sync) and
    its welcome still holds pairs that such a replica reads, the ids beside them."""
    p = await cluster.start("p")
    vp = cluster.client(p)
    await vp.create_collection("c", 8)
    await seed(vp, 20)
    status = await vp.replication_status()
    hello = {"type": "hello", "node_id": "old", "address": "", "epoch": 1}
    hello |= {"sequence": status["sequence"], "history": [[1, 1]]}
    url = p.url + "/replication/stream"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.send_json(hello)
        welcome = await ws.receive_json(timeout=10)
    assert welcome["mode"] == "incremental", welcome
    assert welcome["history"] == [[1, 1]] and welcome["timelines"] == status["timelines"]


async def test_a_snapshot_goes_only_to_a_replica_that_takes_it(cluster: Cluster) -> None:
    """A replica answers a snapshot's header before any of its data is sent: refused, none
    goes (and the primary says why); taken, all of it. A replica on older code, which
    does not say it answers, is sent the snapshot at once, as before."""
    p = await cluster.start("p", "--wal-segment-bytes", "2048")
    vp = cluster.client(p)
    await vp.create_collection("c", 8)
    await seed(vp, 400)
    await vp.snapshot("c")  # the log behind it is gone: an empty replica needs a full sync
    url = p.url + "/replication/stream"
    assert await _full_sync_frames(url, "refuses", "refuse") == []
    reps = {r["id"]: r for r in await vp.replicas()}
    assert reps["refuses"]["sync_refused"] == "insufficient_memory"
    assert reps["refuses"]["full_syncs"] == 0 and reps["refuses"]["bytes_sent"] < 4096
    for node, answer in (("takes", "take"), ("older", None)):
        frames = await _full_sync_frames(url, node, answer, _acks)
        assert sum(len(f) for f in frames if isinstance(f, bytes)) > 400 * 8 * 4
        assert '"snapshot_done"' in frames[-1]
    reps = {r["id"]: r for r in await vp.replicas()}
    assert reps["takes"]["full_syncs"] == reps["older"]["full_syncs"] == 1
    assert reps["takes"]["sync_refused"] is None


async def test_a_full_sync_counts_once_the_replica_confirms_it_installed_it(
    cluster: Cluster,
) -> None:
    """A snapshot sent whole is not yet installed (it may fail its checksum there, or the
    replica stop while it installs): the replica stays Syncing, and the sync uncounted,
    until its first ack at the snapshot's sequence; beats (sequence 0) confirm nothing.
    A replica that goes away unconfirmed leaves it uncounted."""
    p = await cluster.start("p", "--wal-segment-bytes", "2048")
    vp = cluster.client(p)
    await vp.create_collection("c", 8)
    await seed(vp, 400)
    await vp.snapshot("c")
    url = p.url + "/replication/stream"
    seen: dict[str, Any] = {}

    async def installs(ws: aiohttp.ClientWebSocketResponse, sequence: int) -> None:
        await ws.send_json({"type": "heartbeat", "sequence": 0})  # installing
        await asyncio.sleep(0.3)
        seen["installing"] = (await vp.replicas())[0]
        await _acks(ws, sequence)
        seen["installed"] = (await vp.replicas())[0]

    await _full_sync_frames(url, "installs", "take", installs)
    assert seen["installing"]["status"] == "Syncing" and seen["installing"]["full_syncs"] == 0
    assert seen["installed"]["status"] == "Connected" and seen["installed"]["full_syncs"] == 1
    assert seen["installed"]["sequence"] == (await vp.replication_status())["sequence"]

    await _full_sync_frames(url, "fails", "take")  # (gone without a word after the last)
    reps = {r["id"]: r for r in await vp.replicas()}
    assert reps["fails"]["full_syncs"] == 0 and reps["fails"]["bytes_sent"] > 400 * 8 * 4
    assert (await vp.replication_stats())["full_syncs_sent"] == 1


async def test_incremental_stream_headers_and_stats(cluster: Cluster) -> None:
    p = await cluster.start("p")
    vp = cluster.client(p)
    await vp.create_collection("c", 8)
    await seed(vp, 100)
    r = await cluster.start("r", "--role", "replica", "--primary-url", p.url)
    vr = cluster.client(r)
    await eventually(lambda: caught_up(vp, vr))
    assert await all_points(vr, "c") == await all_points(vp, "c")

    status = await vr.replication_status()
    assert status["role"] == "replica" and status["primary"] == p.url and status["epoch"] == 1
    assert status["history"] == (await vp.replication_status())["history"]
    assert status["history"] == [[1, 1]] and len(status["timelines"][0]) == 12
    assert status["timelines"] == (await vp.replication_status())["timelines"]
    rstats = await vr.replication_stats()
    assert rstats["full_syncs"] == 0 and rstats["bytes_received"] > 100 * 8 * 4

    reps = await confirmed(vp)
    assert [x["id"] for x in reps] == ["r"]
    assert reps[0]["operations_synced"] == (await vp.replication_status())["sequence"]
    pstats = await vp.replication_stats()
    assert pstats["connected_replicas"] == 1 and pstats["bytes_sent"] == reps[0]["bytes_sent"] > 0

    # Reads on the replica say how fresh they are; writes name the primary.
    _, headers = await raw_get(r.url + "/collections/c")
    assert headers["X-Vectorizer-Role"] == "replica"
    assert headers["X-Vectorizer-Lag-Operations"] == "0"
    with pytest.raises(NotPrimary) as err:
        await vr.upsert("c", [Point(999, [1.0] * 8)])
    assert err.value.details["primary"] == p.url
    assert await vr.count("c") == 100


async def raw_get(url: str) -> tuple[int, dict[str, str]]:
    import aiohttp

    async with aiohttp.ClientSession() as s, s.get(url) as resp:
        return resp.status, dict(resp.headers)


ALIASED = {"aliases": [{"alias_name": "live", "collection_name": "c"}]}


async def test_vector_updates_replicate_and_are_searchable_on_the_replica(
    cluster: Cluster,
) -> None:
    """A replica applies updates through the same delta buffer as its primary."""
    p = await cluster.start("p")
    vp = cluster.client(p)
    await vp.create_collection("c", 8)
    await seed(vp, 2600, batch=500)  # enough points that searches walk the graph
    r = await cluster.start("r", "--role", "replica", "--primary-url", p.url)
    vr = cluster.client(r)
    await eventually(lambda: caught_up(vp, vr))
    new = np.random.default_rng(9).normal(size=(300, 8)) * 5
    for pid in range(300):
        await vp.update("c", pid, vector=new[pid].tolist())
    await eventually(lambda: caught_up(vp, vr))
    for pid in range(0, 300, 11):
        for vz in (vp, vr):
            assert (await vz.search("c", new[pid].tolist(), limit=1))[0].id == pid
    assert await all_points(vr, "c") == await all_points(vp, "c")

    # The Qdrant layer's many-point writes ship as single records too.
    moved = (np.random.default_rng(10).normal(size=(40, 8)) * 5).tolist()
    batch = {
        "operations": [
            {
                "update_vectors": {
                    "points": [{"id": 400 + i, "vector": v} for i, v in enumerate(moved)]
                }
            },
            {
                "set_payload": {
                    "payload": {"keep": 1, "drop": {"a": 1, "b": 2}},
                    "points": [401, 402],
                }
            },
            {"delete_payload": {"keys": ["drop.a"], "points": [401]}},
        ]
    }
    status, body = p.request("POST", "/qdrant/collections/c/points/batch", batch)
    assert status == 200, body
    await eventually(lambda: caught_up(vp, vr))
    assert (await vr.search("c", moved[5], limit=1))[0].id == 405
    assert await all_points(vr, "c") == await all_points(vp, "c")
    # So do alias changes; a replica reads through the alias too.
    alias = {"actions": [{"create_alias": {"alias_name": "live", "collection_name": "c"}}]}
    assert p.request("POST", "/qdrant/collections/aliases", alias)[0] == 200
    await eventually(lambda: caught_up(vp, vr))
    assert r.request("GET", "/qdrant/aliases")[1]["result"] == ALIASED
    assert (await vr.search("live", moved[5], limit=1))[0].id == 405


async def test_full_sync_from_empty_when_the_log_was_truncated(cluster: Cluster) -> None:
    p = await cluster.start("p", "--snapshots-retained", "1", "--wal-segment-bytes", "2048")
    vp = cluster.client(p)
    await vp.create_collection("c", 8)
    await seed(vp, 400)
    alias = {"actions": [{"create_alias": {"alias_name": "live", "collection_name": "c"}}]}
    assert p.request("POST", "/qdrant/collections/aliases", alias)[0] == 200
    snap = await vp.snapshot("c")
    assert (await vp.stats())["wal"]["first_sequence"] > 1
    r = await cluster.start("r", "--role", "replica", "--primary-url", p.url)
    vr = cluster.client(r)
    await eventually(lambda: caught_up(vp, vr))
    assert await all_points(vr, "c") == await all_points(vp, "c")
    rstats = await vr.replication_stats()
    assert rstats["full_syncs"] == 1 and rstats["last_sync"] is not None
    assert r.request("GET", "/qdrant/aliases")[1]["result"] == ALIASED  # in the snapshot
    assert rstats["bytes_received"] >= snap["size_bytes"]
    reps = await confirmed(vp)
    assert reps[0]["full_syncs"] == 1 and reps[0]["bytes_sent"] >= snap["size_bytes"]
    # and then incrementally
    await seed(vp, 10, start=1000)
    await eventually(lambda: caught_up(vp, vr))
    assert await vr.count("c") == 410


async def test_replica_restart_catches_up_incrementally(cluster: Cluster) -> None:
    p = await cluster.start("p")
    vp = cluster.client(p)
    await vp.create_collection("c", 8)
    await seed(vp, 50)
    r = await cluster.start("r", "--role", "replica", "--primary-url", p.url)
    vr = cluster.client(r)
    await eventually(lambda: caught_up(vp, vr))
    synced_before = (await vp.replicas())[0]["operations_synced"]
    assert r.terminate() == 0

    await seed(vp, 200, start=100)

    async def disconnected() -> bool:
        return (await vp.replicas())[0]["status"] == "Disconnected"

    await eventually(disconnected)

    await asyncio.to_thread(r.start)
    await eventually(lambda: caught_up(vp, vr))
    assert (await vr.replication_stats())["full_syncs"] == 0  # the log still reached back
    assert await vr.count("c") == 250

    async def connected() -> dict[str, Any] | None:
        rep = (await vp.replicas())[0]
        return rep if rep["status"] == "Connected" and rep["lag_operations"] == 0 else None

    rep = await eventually(connected)
    assert rep["operations_synced"] > synced_before


async def test_catch_up_beyond_log_retention_resyncs_fully(cluster: Cluster) -> None:
    p = await cluster.start("p", "--snapshots-retained", "1", "--wal-segment-bytes", "2048")
    vp = cluster.client(p)
    await vp.create_collection("c", 8)
    await seed(vp, 50)
    r = await cluster.start("r", "--role", "replica", "--primary-url", p.url)
    vr = cluster.client(r)
    await eventually(lambda: caught_up(vp, vr))
    r.terminate()
    await seed(vp, 300, start=100)
    await vp.delete_many("c", ids=list(range(10)))
    await vp.snapshot("c")  # the log behind this snapshot is dropped
    assert (await vp.stats())["wal"]["first_sequence"] > (await vr_sequence_on_disk(r))
    await asyncio.to_thread(r.start)
    await eventually(lambda: caught_up(vp, vr))
    assert (await vr.replication_stats())["full_syncs"] == 1
    assert await all_points(vr, "c") == await all_points(vp, "c")


async def vr_sequence_on_disk(r: ServerProcess) -> int:
    # The stopped replica's last sequence: the newest of its snapshot and log names.
    wal = sorted((r.data_dir / "wal").iterdir())
    return int(wal[-1].name[:20]) if wal else 0


async def test_primary_restart(cluster: Cluster) -> None:
    p = await cluster.start("p")
    vp = cluster.client(p)
    await vp.create_collection("c", 8)
    await seed(vp, 30)
    r = await cluster.start("r", "--role", "replica", "--primary-url", p.url)
    vr = cluster.client(r)
    await eventually(lambda: caught_up(vp, vr))
    assert p.terminate() == 0
    await asyncio.sleep(0.5)
    await asyncio.to_thread(p.start)
    assert (await vp.replication_status())["role"] == "primary"  # persisted role
    await seed(vp, 20, start=500)
    await eventually(lambda: caught_up(vp, vr))
    assert await vr.count("c") == 50


async def test_a_replica_ahead_of_its_primary_is_synced_fully(cluster: Cluster) -> None:
    """A primary back with an empty disk is behind its replica: the replica's records
    are not the primary's, so it is synced whole, never streamed from its position."""
    p = await cluster.start("p")
    vp = cluster.client(p)
    await vp.create_collection("c", 8)
    await seed(vp, 40, batch=5)  # (9 records: more than the primary will have again)
    r = await cluster.start("r", "--role", "replica", "--primary-url", p.url)
    vr = cluster.client(r)
    await eventually(lambda: caught_up(vp, vr))
    p.kill()
    shutil.rmtree(p.data_dir)  # (a replaced disk)
    await asyncio.to_thread(p.start)
    await vp.create_collection("other", 4)
    await vp.create_collection("c", 8)
    await seed(vp, 3)
    assert (await vp.replication_status())["sequence"] == 3

    async def synced() -> bool:  # (its sequence is past the primary's from the start)
        return await vr.count("c") == 3 and await caught_up(vp, vr)

    await eventually(synced)
    assert await all_points(vr, "c") == await all_points(vp, "c")
    assert sorted(c["name"] for c in await vr.list_collections()) == ["c", "other"]


async def test_a_primary_back_on_an_empty_disk_and_past_its_replica_is_told_apart(
    cluster: Cluster,
) -> None:
    """The same, but the replica is away while the new primary writes past its sequence:
    by epoch and sequence alone the two logs looked like one (epoch 1 from sequence 1),
    and the replica streamed on from its own position, its old records merged with the
    new. Each promotion's timeline id tells them apart: a full sync."""
    p = await cluster.start("p")
    vp = cluster.client(p)
    await vp.create_collection("c", 8)
    await seed(vp, 20, batch=5)  # (5 records)
    r = await cluster.start("r", "--role", "replica", "--primary-url", p.url)
    vr = cluster.client(r)
    await eventually(lambda: caught_up(vp, vr))
    assert r.terminate() == 0
    p.kill()
    shutil.rmtree(p.data_dir)  # (a replaced disk)
    await asyncio.to_thread(p.start)
    await vp.create_collection("c", 8)
    await seed(vp, 30, start=1000, batch=3)  # (11 records: past the replica's 5)
    await asyncio.to_thread(r.start)

    async def synced() -> bool:  # (the count goes up once the installed snapshot serves)
        return (await vr.replication_stats())["full_syncs"] >= 1 and await caught_up(vp, vr)

    await eventually(synced)
    assert await all_points(vr, "c") == await all_points(vp, "c")
    assert await vr.count("c") == 30


async def test_epochs_out_of_range_are_refused_saying_what_is_allowed(cluster: Cluster) -> None:
    r = await cluster.start("r", "--role", "replica")
    for body in (b'{"epoch": -1}', b'{"epoch": 1180591620717411303424}', b'{"epoch": 1.5}'):
        for route in ("promote", "fence"):
            status, got = r.request("POST", f"/replication/{route}", body)
            assert status == 422 and got["error"]["field"] == "epoch", got
            assert got["error"]["message"] == f"epoch must be an integer from 0 to {2**63 - 1}"
    assert (await cluster.client(r).replication_status())["epoch"] == 0


async def test_a_node_cannot_be_told_to_follow_itself(cluster: Cluster) -> None:
    p = await cluster.start("p")
    vp = cluster.client(p)
    await vp.create_collection("c", 4)
    status, got = p.request("POST", "/replication/follow", {"primary_url": p.url, "epoch": 1})
    assert status == 422 and got["error"]["field"] == "primary_url", got
    assert (await vp.replication_status())["role"] == "primary"
    await seed(vp, 3, dim=4)  # still takes writes
    # Under another name: it was primary at that epoch (and is not at a newer one).
    other_name = p.url.replace("127.0.0.1", "localhost")
    for epoch in (1, 2):
        status, got = p.request(
            "POST", "/replication/follow", {"primary_url": other_name, "epoch": epoch}
        )
        assert status == 409 and got["error"]["code"] == "stale_epoch", got
    assert (await vp.replication_status())["role"] == "primary"


async def test_follow_refuses_an_epoch_its_primary_is_not_at(cluster: Cluster) -> None:
    """A replica told a wrong (newer) epoch would make its primary step down, fenced for
    a promotion that never happened; and a node that was primary at an epoch cannot
    follow another primary of that same epoch (two promoted beside each other)."""
    p = await cluster.start("p")
    vp = cluster.client(p)
    r = await cluster.start("r", "--role", "replica", "--primary-url", p.url)
    q = await cluster.start("q")  # a second primary at epoch 1
    status, got = r.request("POST", "/replication/follow", {"primary_url": p.url, "epoch": 50})
    assert status == 409 and got["error"]["code"] == "stale_epoch", got
    assert (await vp.replication_status())["role"] == "primary"
    await vp.create_collection("still", 2)  # it still takes writes
    status, got = q.request("POST", "/replication/follow", {"primary_url": p.url, "epoch": 1})
    assert status == 409 and "was primary at epoch 1" in got["error"]["message"], got


async def test_follow_refuses_a_replica_and_names_its_primary(cluster: Cluster) -> None:
    """A replica streams to no one: following it was accepted and retried for ever."""
    p = await cluster.start("p")
    r = await cluster.start("r", "--role", "replica", "--primary-url", p.url)
    s = await cluster.start("s", "--role", "replica")  # a replica of no one yet
    status, got = s.request("POST", "/replication/follow", {"primary_url": r.url, "epoch": 1})
    assert status == 409 and got["error"]["code"] == "not_primary", got
    assert got["error"]["field"] == "primary_url" and got["error"]["details"]["primary"] == p.url
    assert (await cluster.client(s).replication_status())["primary"] is None
    # Its primary, fenced (a switchover's target catches up from it), may be followed.
    assert p.request("POST", "/replication/fence", {"epoch": 1})[0] == 200
    status, got = s.request("POST", "/replication/follow", {"primary_url": p.url, "epoch": 1})
    assert status == 200 and got["primary"] == p.url, got


async def test_a_replica_refuses_a_snapshot_recovery_even_unwaited(cluster: Cluster) -> None:
    p = await cluster.start("p")
    r = await cluster.start("r", "--role", "replica", "--primary-url", p.url)
    recover = "/qdrant/collections/c/snapshots/recover"
    for query in ("", "?wait=false"):
        status, got = r.request("PUT", recover + query, {"location": "http://127.0.0.1:9/x"})
        assert status == 409 and "not_primary" in got["status"]["error"], got
    assert "Traceback" not in r.log()


async def writers(
    vz: VectorizerClient, acked: dict[int, list[float]], n_writers: int = 3
) -> list[Any]:
    async def one(w: int) -> None:
        rng = np.random.default_rng(w)
        n = 0
        while True:
            pid = w * 1_000_000 + n
            vec = rng.normal(size=8).tolist()
            await vz.upsert("c", [Point(pid, vec)])
            acked[pid] = vec
            n += 1

    tasks = [asyncio.create_task(one(w)) for w in range(n_writers)]
    await asyncio.sleep(2.0)
    return tasks


Node = tuple[ServerProcess, VectorizerClient]


async def sync_primary_with_two_replicas(cluster: Cluster) -> tuple[Node, Node, Node]:
    """A primary that acknowledges a write once one replica has it, and its two
    replicas, caught up."""
    p = await cluster.start("p", "--sync-replicas", "1")
    vp = cluster.client(p)
    r1 = await cluster.start("r1", "--role", "replica", "--primary-url", p.url)
    r2 = await cluster.start("r2", "--role", "replica", "--primary-url", p.url)
    v1, v2 = cluster.client(r1), cluster.client(r2)
    await eventually(lambda: caught_up(vp, v1))
    await eventually(lambda: caught_up(vp, v2))
    return (p, vp), (r1, v1), (r2, v2)


async def promote_the_further(one: Node, two: Node) -> tuple[Node, Node]:
    """Promote whichever replica is further ahead (as the operator does) at epoch 2 and
    re-point the other at it; (new primary, other) once the other caught up."""
    s1, s2 = (
        (await one[1].replication_status())["sequence"],
        (await two[1].replication_status())["sequence"],
    )
    (new, vnew), (other, vother) = (one, two) if s1 >= s2 else (two, one)
    promoted = await vnew.promote(2)
    assert promoted["role"] == "primary" and promoted["epoch"] == 2
    await vother.follow(new.url, 2)
    await eventually(lambda: caught_up(vnew, vother))
    return (new, vnew), (other, vother)


async def test_kill_9_primary_in_sync_mode_loses_no_acknowledged_write(cluster: Cluster) -> None:
    (p, vp), one, two = await sync_primary_with_two_replicas(cluster)
    await vp.create_collection("c", 8)  # acknowledged once a replica has it
    acked: dict[int, list[float]] = {}
    tasks = await writers(vp, acked)
    p.kill()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert len(acked) > 50

    (_, vnew), (_, vother) = await promote_the_further(one, two)
    for vz in (vnew, vother):
        held = await all_points(vz, "c")
        missing = [pid for pid in acked if pid not in held]
        assert missing == [], f"{len(missing)} acknowledged writes lost"
    await vnew.upsert("c", [Point(42, [1.0] * 8)])  # the new primary takes writes


async def test_kill_9_primary_in_async_mode_reports_the_possible_loss(cluster: Cluster) -> None:
    p, vp, r, vr = await primary_and_replica(cluster)
    acked: dict[int, list[float]] = {}
    tasks = await writers(vp, acked)
    p.kill()
    await asyncio.gather(*tasks, return_exceptions=True)
    promoted = await vr.promote(2)
    held = await all_points(vr, "c")
    lost = [pid for pid in acked if pid not in held]
    assert (
        promoted["possibly_lost_operations"]
        == (promoted["last_known_primary_sequence"] - promoted["sequence"])
        >= 0
    )
    # Asynchronous replication keeps up on loopback: at most what was in flight is lost.
    assert len(lost) <= max(3 * 2, promoted["possibly_lost_operations"] + 3), lost


async def test_a_replica_restarted_while_its_primary_is_down_says_what_it_missed_is_unknown(
    cluster: Cluster,
) -> None:
    """It has not heard the primary's sequence since it started: promoted, it reports
    the operations it may have lost as unknown (null), not as 0."""
    p, vp, r, vr = await primary_and_replica(cluster)
    assert r.terminate() == 0
    await seed(vp, 20)  # (the replica misses these)
    p.kill()
    await asyncio.to_thread(r.start)
    promoted = await vr.promote(2)
    assert promoted["possibly_lost_operations"] is None, promoted
    assert promoted["last_known_primary_sequence"] is None
    assert "what it had is unknown" in r.log()


async def test_partitioned_replica_catches_up_after_healing(cluster: Cluster) -> None:
    p = await cluster.start("p")
    vp = cluster.client(p)
    await vp.create_collection("c", 8)
    await seed(vp, 20)
    proxy = await FaultProxy(p.port).start()
    try:
        r = await cluster.start("r", "--role", "replica", "--primary-url", proxy.url)
        vr = cluster.client(r)
        await eventually(lambda: caught_up(vp, vr))
        sent_before = (await vp.replicas())[0]["bytes_sent"]
        proxy.cut()
        await seed(vp, 100, start=100)

        async def status_is(s: str) -> bool:
            return (await vp.replicas())[0]["status"] == s

        await eventually(lambda: status_is("Disconnected"))
        assert (await vp.replication_stats())["connected_replicas"] == 0
        assert await vr.count("c") == 20  # still readable, still the old data
        proxy.heal()
        await eventually(lambda: caught_up(vp, vr))
        await confirmed(vp)
        assert await vr.count("c") == 120
        assert (await vp.replicas())[0]["bytes_sent"] > sent_before
        assert (await vr.replication_stats())["full_syncs"] == 0
    finally:
        await proxy.close()


async def test_lagging_status_while_a_replica_is_paused(cluster: Cluster) -> None:
    p = await cluster.start("p")
    vp = cluster.client(p)
    await vp.create_collection("c", 8)
    proxy = await FaultProxy(p.port).start()
    try:
        r = await cluster.start(
            "r", "--role", "replica", "--primary-url", proxy.url, "--disconnect-timeout-ms", "10000"
        )
        vr = cluster.client(r)
        await eventually(lambda: caught_up(vp, vr))
        proxy.cut()
        await seed(vp, 10)

        async def lagging() -> dict[str, Any] | None:
            rep = (await vp.replicas())[0]
            return rep if rep["status"] == "Lagging" else None

        rep = await eventually(lagging)
        assert rep["lag_operations"] > 0 and rep["lag_ms"] > 500
        proxy.heal()
        await eventually(lambda: caught_up(vp, vr))
    finally:
        await proxy.close()


async def test_two_primaries_the_lower_epoch_is_fenced(cluster: Cluster) -> None:
    a, va, r, vr = await primary_and_replica(cluster, primary="a")
    await vr.promote(2)  # now two nodes believe they are primary: a (1) and r (2)
    with pytest.raises(StaleEpoch):
        await vr.promote(2)
    with pytest.raises(StaleEpoch):
        await vr.fence(1)
    # A replica of the new primary that reaches the old one tells it about epoch 2.
    c = await cluster.start("c", "--role", "replica", "--primary-url", r.url)
    vc = cluster.client(c)
    await eventually(lambda: caught_up(vr, vc))
    assert (await vc.replication_status())["epoch"] == 2
    await vc.follow(a.url, 2)

    async def a_fenced() -> bool:
        return (await va.replication_status())["role"] == "fenced"

    await eventually(a_fenced)
    assert (await va.replication_status())["epoch"] == 2
    with pytest.raises(NodeFenced):
        await va.upsert("c", [Point(1, [1.0] * 8)])
    # A refusal the node is meant to give: a warning in its log, not an error.
    logged = [orjson.loads(line) for line in a.log().splitlines() if line.startswith("{")]
    refusals = [r for r in logged if "takes no writes" in r["message"]]
    assert refusals and {r["level"] for r in refusals} == {"WARNING"}, refusals
    # c refuses to take a's log: it stays at epoch 2 and holds no write from a.
    assert (await vc.replication_status())["epoch"] == 2
    await vc.follow(r.url, 2)
    await vr.upsert("c", [Point(7, [1.0] * 8)])
    await eventually(lambda: caught_up(vr, vc))


async def test_old_primary_rejoins_and_discards_its_divergent_writes(cluster: Cluster) -> None:
    a = await cluster.start("a")
    va = cluster.client(a)
    await va.create_collection("c", 8)
    await seed(va, 40)
    proxy = await FaultProxy(a.port).start()
    try:
        r = await cluster.start("r", "--role", "replica", "--primary-url", proxy.url)
        vr = cluster.client(r)
        await eventually(lambda: caught_up(va, vr))
        proxy.cut()  # r stops hearing from a
        await va.upsert("c", [Point(f"only-on-a-{i}", [1.0] * 8) for i in range(5)])
        await va.delete_many("c", ids=[0, 1, 2])
        await vr.promote(2)
        await vr.upsert("c", [Point("only-on-r", [2.0] * 8)])
        # a is told to follow the new primary; its history diverges at the promotion point
        await va.follow(r.url, 2)
        await eventually(lambda: caught_up(vr, va))
        held_a, held_r = await all_points(va, "c"), await all_points(vr, "c")
        assert held_a == held_r
        assert "only-on-r" in held_a and "only-on-a-0" not in held_a and 0 in held_a
        status = await va.replication_status()
        assert status["role"] == "replica" and status["epoch"] == 2
        assert status["history"] == [[1, 1], [2, 3]]  # create + one batch, then epoch 2
        assert status["timelines"] == (await vr.replication_status())["timelines"]
        assert (await va.replication_stats())["full_syncs"] == 1
        with pytest.raises(NotPrimary):
            await va.upsert("c", [Point(5, [1.0] * 8)])
    finally:
        await proxy.close()


async def test_writes_continue_during_a_full_sync(cluster: Cluster) -> None:
    p = await cluster.start("p", "--snapshots-retained", "1", "--wal-segment-bytes", "65536")
    vp = cluster.client(p)
    await vp.create_collection("c", 64)
    rng = np.random.default_rng(0)
    for b in range(0, 10_000, 2000):
        await vp.upsert("c", [Point(i, rng.normal(size=64).tolist()) for i in range(b, b + 2000)])
    snap = await vp.snapshot("c")
    assert (await vp.stats())["wal"]["first_sequence"] > 1
    proxy = await FaultProxy(p.port).start()
    proxy.throttle(snap["size_bytes"] / 3)  # the transfer takes about three seconds
    try:
        r = await cluster.start("r", "--role", "replica", "--primary-url", proxy.url)
        vr = cluster.client(r)
        written_while_syncing = written = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            reps = await vp.replicas()
            syncing = bool(reps and reps[0]["status"] == "Syncing")
            await vp.upsert("c", [Point(100_000 + written, rng.normal(size=64).tolist())])
            written += 1
            written_while_syncing += syncing
            if reps and not syncing and written_while_syncing:
                break
        proxy.throttle(None)
        await eventually(lambda: caught_up(vp, vr))
        assert written_while_syncing > 5
        assert await vr.count("c") == 10_000 + written
        assert (await vr.replication_stats())["full_syncs"] == 1
    finally:
        await proxy.close()


async def test_a_corrupted_snapshot_transfer_is_retried_not_applied(cluster: Cluster) -> None:
    p = await cluster.start("p", "--snapshots-retained", "1", "--wal-segment-bytes", "4096")
    vp = cluster.client(p)
    await vp.create_collection("c", 64)
    await seed(vp, 3000, dim=64, batch=500)
    await vp.snapshot("c")
    proxy = await FaultProxy(p.port).start()
    proxy.corrupt_once(at=300_000)  # inside the snapshot's bytes
    try:
        r = await cluster.start("r", "--role", "replica", "--primary-url", proxy.url)
        vr = cluster.client(r)
        await eventually(lambda: caught_up(vp, vr))
        assert proxy.corrupted == 1
        rstats = await vr.replication_stats()
        assert rstats["failed_syncs"] >= 1 and rstats["full_syncs"] == 1
        assert await all_points(vr, "c") == await all_points(vp, "c")
        assert "failed its checksum" in r.log() or "link to" in r.log()
    finally:
        await proxy.close()


async def test_sync_write_concern_times_out_without_replicas(cluster: Cluster) -> None:
    p = await cluster.start("p", "--sync-replicas", "1", "--sync-timeout-ms", "300")
    vp = cluster.client(p)
    with pytest.raises(ReplicationTimeout) as err:
        await vp.create_collection("c", 8)
    assert "not acknowledged" in err.value.message
    r = await cluster.start("r", "--role", "replica", "--primary-url", p.url)
    vr = cluster.client(r)
    await eventually(lambda: caught_up(vp, vr))
    await vp.upsert("c", [Point(1, [1.0] * 8)])  # with a replica the write is acknowledged
    assert await vr.count("c") == 1


async def test_switchover_fenced_primary_keeps_streaming_until_the_target_caught_up(
    cluster: Cluster,
) -> None:
    p, vp, r, vr = await primary_and_replica(cluster)
    await seed(vp, 200)
    fenced = await vp.fence()
    assert fenced["role"] == "fenced" and fenced["epoch"] == 1
    with pytest.raises(NodeFenced):
        await vp.upsert("c", [Point(1, [1.0] * 8)])
    await eventually(lambda: caught_up(vp, vr))  # the stream goes on while fenced
    await vr.promote(2)
    await vp.follow(r.url, 2)
    await vr.upsert("c", [Point("after", [1.0] * 8)])
    await eventually(lambda: caught_up(vr, vp))
    assert await all_points(vp, "c") == await all_points(vr, "c")
    assert (await vp.replication_stats())["full_syncs"] == 0  # nothing diverged
    status = await vp.replication_status()
    assert status["role"] == "replica" and status["history"] == [[1, 1], [2, 6]]
    assert status["timelines"] == (await vr.replication_status())["timelines"]


# ---- every kind of write, held to a model (tests/writemodel.py) ---------------------------


async def _model_states(url: str, writers: list[Writer]) -> list[tuple[Writer, State]]:
    async with aiohttp.ClientSession() as http:
        return [(w, await read_state(http, url, w.names)) for w in writers]


async def _stop_writers(
    stop: asyncio.Event, tasks: list[asyncio.Task[None]], writers: list[Writer]
) -> None:
    """Stop the writers; every write they sent was acknowledged."""
    stop.set()
    await asyncio.gather(*tasks)
    for w in writers:
        assert not w.failures and w.in_flight is None, w.failures
    assert sum(w.writes for w in writers) > 300


async def _both_hold_the_model(primary: str, replica: str, writers: list[Writer]) -> None:
    for (w, on_p), (_, on_r) in zip(
        await _model_states(primary, writers), await _model_states(replica, writers), strict=True
    ):
        assert same(on_p, w.state), diff(on_p, w.state)
        assert same(on_r, w.state), diff(on_r, w.state)


async def test_a_replica_holds_every_kind_of_write_through_full_sync_and_kill_9(
    cluster: Cluster,
) -> None:
    """Writes of every kind stream to the primary while a replica joins (a full sync: the
    primary's log was truncated behind its snapshots), is killed with SIGKILL and comes
    back; once the stream stops, the replica holds exactly what the primary and the model
    hold, and its payload indexes answer as the payloads say."""
    small_log = ["--snapshot-interval-s", "1", "--snapshots-retained", "1"]
    p = await cluster.start("p", *small_log, "--wal-segment-bytes", "4096")
    vp = cluster.client(p)
    rnd = random.Random(11)
    writers = [Writer([f"w{w}a", f"w{w}b"], random.Random(rnd.random())) for w in range(3)]
    stop = asyncio.Event()
    async with aiohttp.ClientSession() as http:
        tasks = [asyncio.create_task(w.run(http, p.url, stop)) for w in writers]
        await asyncio.sleep(1.5)
        r = await cluster.start("r", "--role", "replica", "--primary-url", p.url)
        vr = cluster.client(r)
        await asyncio.sleep(1.0)
        r.kill()
        await asyncio.sleep(0.5)
        await asyncio.to_thread(r.start)
        await asyncio.sleep(1.0)
        await _stop_writers(stop, tasks, writers)
    await eventually(lambda: caught_up(vp, vr))
    assert (await vr.replication_stats())["full_syncs"] >= 1
    await _both_hold_the_model(p.url, r.url, writers)
    async with aiohttp.ClientSession() as http:
        for w in writers:
            await check_indexes(http, r.url, w.state)


async def test_failover_in_sync_mode_keeps_every_kind_of_acknowledged_write(
    cluster: Cluster,
) -> None:
    """With one synchronous replica, the primary killed with SIGKILL in the middle of a
    stream of every kind of write: the replica promoted holds every acknowledged write
    (the ones in flight whole or not at all), and so does the one re-pointed at it."""
    (p, _), one, two = await sync_primary_with_two_replicas(cluster)
    rnd = random.Random(12)
    writers = [Writer([f"w{w}a", f"w{w}b"], random.Random(rnd.random())) for w in range(3)]
    async with aiohttp.ClientSession() as http:
        tasks = [asyncio.create_task(w.run(http, p.url)) for w in writers]
        await asyncio.sleep(2.5)
        p.kill()
        async with asyncio.timeout(30):
            await asyncio.gather(*tasks)
    for w in writers:
        assert not w.failures, w.failures
    assert sum(w.writes for w in writers) > 100

    (new, _), (other, _) = await promote_the_further(one, two)
    on_new, on_other = (
        await _model_states(new.url, writers),
        await _model_states(other.url, writers),
    )
    for (w, held), (_, copied) in zip(on_new, on_other, strict=True):
        candidates = w.in_flight or [w.state]
        assert any(same(held, c) for c in candidates), diff(held, w.state)
        assert same(copied, held), diff(copied, held)


async def test_a_replica_behind_a_faulty_link_holds_every_kind_of_write(
    cluster: Cluster,
) -> None:
    """Writes of every kind stream to the primary while the replica's link is cut (long
    enough for the primary to see it gone), healed, slowed to a trickle and freed, and
    one byte of a new connection's stream is flipped: once the stream stops, the replica
    holds exactly what the primary and the model hold."""
    p = await cluster.start("p")
    vp = cluster.client(p)
    proxy = await FaultProxy(p.port).start()
    rnd = random.Random(13)
    writers = [Writer([f"w{w}a", f"w{w}b"], random.Random(rnd.random())) for w in range(3)]
    stop = asyncio.Event()
    try:
        r = await cluster.start("r", "--role", "replica", "--primary-url", proxy.url)
        vr = cluster.client(r)
        async with aiohttp.ClientSession() as http:
            tasks = [asyncio.create_task(w.run(http, p.url, stop)) for w in writers]
            await asyncio.sleep(0.8)
            proxy.cut()
            await asyncio.sleep(2.0)  # past the disconnect timeout (1.5 s)
            proxy.corrupt_once(5_000)  # the reconnection's stream
            proxy.heal()
            await asyncio.sleep(0.8)
            proxy.throttle(20_000)
            await asyncio.sleep(0.8)
            proxy.throttle(None)
            await asyncio.sleep(0.5)
            await _stop_writers(stop, tasks, writers)
        await eventually(lambda: caught_up(vp, vr), timeout=60)
        assert proxy.corrupted == 1  # the fault was there to be survived
        await _both_hold_the_model(p.url, r.url, writers)
    finally:
        await proxy.close()


async def test_a_record_damaged_on_the_way_is_sent_again_not_applied(cluster: Cluster) -> None:
    """One byte flipped in the vectors of a record on its way to the replica (valid
    JSON still, the floats only wrong): the replica refuses it by its checksum, the link
    is dropped and the record sent again; the replica ends with the primary's vectors."""
    p = await cluster.start("p")
    vp = cluster.client(p)
    await vp.create_collection("c", 256, metric="euclidean")
    proxy = await FaultProxy(p.port).start()
    try:
        r = await cluster.start("r", "--role", "replica", "--primary-url", proxy.url)
        vr = cluster.client(r)
        await eventually(lambda: caught_up(vp, vr))
        proxy.cut()

        async def gone() -> bool:
            return (await vp.replicas())[0]["status"] == "Disconnected"

        await eventually(gone)
        # one record of 1,000 vectors (1 MB of floats) for the reconnection to carry
        rng = np.random.default_rng(5)
        await vp.upsert("c", [Point(i, rng.normal(size=256).tolist()) for i in range(1000)])
        proxy.corrupt_once(200_000)  # far into the floats of that record
        proxy.heal()
        await eventually(lambda: caught_up(vp, vr))
        assert proxy.corrupted == 1
        assert await all_points(vr, "c") == await all_points(vp, "c")
    finally:
        await proxy.close()
