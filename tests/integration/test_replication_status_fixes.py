"""What a node says of its replication, found wrong by a replication hunt: what a promoted
replica missed after it was re-pointed, the role and sequence headers while a node
recovers, and a node started to follow its own URL."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import aiohttp
import numpy as np

from tests.integration import test_replication
from tests.integration.test_replication import (
    FAST,
    Cluster,
    caught_up,
    eventually,
    primary_and_replica,
    seed,
)
from tests.servers import ServerProcess, free_port
from vectorizer.client import Point
from vectorizer.replication import state as node_state

cluster = test_replication.cluster  # (the fixture)

ROLE, SEQUENCE = "X-Vectorizer-Role", "X-Vectorizer-Sequence"


# ---- possibly_lost_operations: of the primary the node last followed -------------------


async def test_a_replica_re_pointed_at_a_primary_it_never_heard_says_what_it_missed_is_unknown(
    cluster: Cluster,
) -> None:
    """R follows P1 and catches up; P2, promoted to epoch 2, writes records R never sees
    and dies; R is told to follow P2 (down: accepted), then promoted. What it missed of
    P2 is unknown: null, not 0 from P1's sequence (which said nothing of P2's log)."""
    p1, vp1, r, vr = await primary_and_replica(cluster, primary="p1")
    await seed(vp1, 10, batch=5)
    await eventually(lambda: caught_up(vp1, vr))
    p2 = await cluster.start("p2")
    vp2 = cluster.client(p2)
    await vp2.promote(2)
    await vp2.create_collection("c", 8)
    for i in range(20):
        await vp2.upsert("c", [Point(i, [float(i)] * 8)])
    assert (await vp2.replication_status())["sequence"] > (await vr.replication_status())[
        "sequence"
    ]
    p2.kill()
    followed = await vr.follow(p2.url, 2)
    assert followed["primary"] == p2.url and followed["epoch"] == 2
    promoted = await vr.promote(3)
    assert promoted["role"] == "primary" and promoted["epoch"] == 3
    assert promoted["possibly_lost_operations"] is None, promoted
    assert promoted["last_known_primary_sequence"] is None, promoted
    assert "what it had is unknown" in r.log()


async def test_the_same_primary_followed_again_keeps_its_figure_and_a_promotion_spends_it(
    cluster: Cluster,
) -> None:
    """Told to follow its primary again (fenced, then back to it while it is down), a
    replica still knows what that primary had. Once promoted, that figure is spent: the
    node's own log went on from there, and after following again a primary it never
    hears from, a second promotion says unknown (it said the first primary's old
    sequence, and 0 lost)."""
    p, vp, r, vr = await primary_and_replica(cluster)
    await seed(vp, 10, batch=5)
    await eventually(lambda: caught_up(vp, vr))
    heard = (await vp.replication_status())["sequence"]
    p.kill()
    await vr.fence()
    await vr.follow(p.url, 1)  # (down: accepted; the same primary)
    promoted = await vr.promote(2)
    assert promoted["last_known_primary_sequence"] == heard, promoted
    assert promoted["possibly_lost_operations"] == 0, promoted

    await seed(vr, 5, start=100)  # (its own records, under epoch 2)
    await vr.follow(p.url, 3)  # (down: accepted; newer than the epoch it wrote in)
    again = await vr.promote(4)
    assert again["possibly_lost_operations"] is None, again
    assert again["last_known_primary_sequence"] is None, again


# ---- the role and sequence headers while a node recovers ------------------------------


async def test_a_restarted_replica_says_no_role_nor_sequence_until_it_has_recovered(
    cluster: Cluster,
) -> None:
    """Restarted without --role (its persisted state says replica), the node answered
    `X-Vectorizer-Role: primary` (the settings' placeholder) and a sequence counting up
    through its log's replay while /ready said 503. Both are left out until the role is
    known, as /metrics leaves them out."""
    n = await cluster.start("n", "--snapshot-interval-s", "0", "--snapshot-on-shutdown", "false")
    vn = cluster.client(n)
    await vn.create_collection("c", 64)
    rng = np.random.default_rng(0)
    for b in range(0, 10_000, 1000):  # (a log whose replay takes a while)
        vectors = rng.normal(size=(1000, 64)).tolist()
        await vn.upsert("c", [Point(b + i, v) for i, v in enumerate(vectors)])
    # A replica now (of a primary nowhere: not checked when it cannot be reached).
    await vn.follow(f"http://127.0.0.1:{free_port()}", 2)
    sequence = (await vn.replication_status())["sequence"]
    assert n.terminate() == 0

    # (/ready's status, then the role and sequence said by /health and by /ready)
    seen: list[tuple[int, tuple[str | None, ...]]] = []
    await asyncio.to_thread(n.start, False)  # (same settings: no --role)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                async with session.get(n.url + "/health") as health:
                    said: tuple[str | None, ...] = (
                        health.headers.get(ROLE),
                        health.headers.get(SEQUENCE),
                    )
                async with session.get(n.url + "/ready") as ready:
                    said += (ready.headers.get(ROLE), ready.headers.get(SEQUENCE))
                    seen.append((ready.status, said))
            except aiohttp.ClientConnectionError:  # (not listening yet)
                await asyncio.sleep(0.01)
                continue
            if seen[-1][0] == 200:
                break
            await asyncio.sleep(0.02)
        async with session.get(n.url + "/health") as health:
            assert health.headers.get(ROLE) == "replica"
            assert health.headers.get(SEQUENCE) == str(sequence)
    recovering = [said for status, said in seen if status != 200]
    assert recovering, f"never answered while recovering: {seen[-3:]}"
    assert set(recovering) == {(None,) * 4}, list(set(recovering))[:5]
    assert seen[-1][0] == 200


# ---- a node started to follow its own URL ---------------------------------------------


def _exits(srv: ServerProcess, timeout: float = 60.0) -> int:
    """Start ``srv`` and wait for it to exit (its code; fails if it keeps running)."""
    srv.start(wait_ready=False)
    assert srv.proc is not None
    try:
        return srv.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the node started:\n{srv.log()[-2000:]}") from None
    finally:
        srv.kill()


async def test_a_new_replica_given_its_own_url_as_primary_does_not_start(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    """`--primary-url` naming the node itself: it dialled itself every
    reconnect_interval_ms and was told not_primary for ever. Refused as
    POST /replication/follow refuses it: the node does not start, and says why."""
    port = free_port()
    own = f"http://127.0.0.1:{port}"
    srv = server_factory(
        data_dir=tmp_path / "n", port=port, args=[*FAST, "--role", "replica", "--primary-url", own]
    )
    assert await asyncio.to_thread(_exits, srv) == 1
    assert f"cannot start: primary_url ({own}) is this node's own address" in srv.log()
    assert node_state.load(srv.data_dir) is None  # (nothing recorded)


async def test_a_restarted_replica_given_its_own_url_as_primary_does_not_start(
    cluster: Cluster,
) -> None:
    """Without --role its persisted state makes it a replica, which would follow the
    --primary-url given: its own. A primary, which follows no one, still starts with it."""
    p, vp, r, vr = await primary_and_replica(cluster)
    assert r.terminate() == 0
    recorded = node_state.load(r.data_dir)
    own = r.url + "/"  # (a trailing slash is the same URL, as for POST /replication/follow)
    r.args = [*FAST, "--node-id", "r", "--primary-url", own]
    assert await asyncio.to_thread(_exits, r) == 1
    assert "is this node's own address: a node cannot follow itself" in r.log()
    assert node_state.load(r.data_dir) == recorded  # (nothing recorded over it)

    p.terminate()
    p.args = [*p.args, "--primary-url", p.url]
    await asyncio.to_thread(p.start)
    status = await vp.replication_status()
    assert status["role"] == "primary" and status["primary"] is None
    await seed(vp, 3)  # (it takes writes)


async def test_a_replica_whose_state_records_its_own_url_as_primary_does_not_start(
    cluster: Cluster,
) -> None:
    """A start before this was refused recorded the node's own URL as its primary: a
    start that would go on following it is refused the same way."""
    p, vp, r, vr = await primary_and_replica(cluster)
    assert r.terminate() == 0
    recorded = node_state.load(r.data_dir)
    assert recorded is not None and recorded.primary_url == p.url
    node_state.save(r.data_dir, recorded.following(r.url, recorded.epoch))
    r.args = [*FAST, "--node-id", "r"]  # (no --primary-url: the recorded one is followed)
    assert await asyncio.to_thread(_exits, r) == 1
    assert f"cannot start: its recorded primary ({r.url}) is this node's own address" in r.log()
    # Given its primary's URL, it starts and follows it again.
    r.args = [*FAST, "--node-id", "r", "--primary-url", p.url]
    await asyncio.to_thread(r.start)
    await seed(vp, 3)
    await eventually(lambda: caught_up(vp, vr))
    assert (await vr.replication_status())["primary"] == p.url
