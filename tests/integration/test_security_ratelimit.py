"""Load test: one credential hammering a real node is held to its configured rate (±10%)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp

from tests.servers import ServerProcess

ADMIN = "rate-limit-admin-key-0123456789"
RATE, BURST, SECONDS, WORKERS = 50.0, 10, 4.0, 4


async def test_rate_limit_holds_within_ten_percent(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    srv = server_factory(
        data_dir=tmp_path / "data",
        args=[
            "--auth-enabled",
            "true",
            "--auth-admin-key",
            ADMIN,
            "--rate-limit-rps",
            str(RATE),
            "--rate-limit-burst",
            str(BURST),
        ],
    ).start()
    other = {"X-API-Key": ADMIN}
    async with aiohttp.ClientSession() as s:
        async with s.post(
            srv.url + "/auth/keys", json={"name": "load", "role": "viewer"}, headers=other
        ) as r:
            secret = (await r.json())["secret"]
        await asyncio.sleep(1)  # the admin's own bucket is not the one under test anyway
        headers = {"X-API-Key": secret}
        accepted = refused = 0
        retry_after: set[str] = set()
        started = time.monotonic()
        deadline = started + SECONDS

        async def worker() -> None:
            nonlocal accepted, refused
            while time.monotonic() < deadline:
                async with s.get(srv.url + "/collections", headers=headers) as r:
                    await r.read()
                    if r.status == 200:
                        accepted += 1
                    else:
                        assert r.status == 429, r.status
                        refused += 1
                        retry_after.add(r.headers["Retry-After"])
                        assert r.headers["X-RateLimit-Remaining"] == "0"

        await asyncio.gather(*(worker() for _ in range(WORKERS)))
        elapsed = time.monotonic() - started
        # Another credential is not slowed down by this one.
        async with s.get(srv.url + "/collections", headers=other) as r:
            assert r.status == 200
    measured = (accepted - BURST) / elapsed
    print(  # noqa: T201 - the figure the issue asks for
        f"\nrate limit {RATE:g}/s burst {BURST}: {accepted} accepted, {refused} refused "
        f"in {elapsed:.2f}s -> {measured:.2f}/s ({(measured / RATE - 1) * 100:+.1f}%)"
    )
    assert refused > accepted  # the load really was above the limit
    assert abs(measured - RATE) <= 0.1 * RATE
    assert retry_after == {"1"}


async def test_refused_calls_count_against_the_rate_too(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    """A limited key cannot send calls it may not make without end (each one an audit
    line): they spend its rate like any other, and say so in their headers."""
    srv = server_factory(
        data_dir=tmp_path / "data",
        args=["--auth-enabled", "true", "--auth-admin-key", ADMIN, "--rate-limit-rps", "0.1"]
        + ["--rate-limit-burst", "3"],
    ).start()
    async with aiohttp.ClientSession() as s:
        async with s.post(
            srv.url + "/auth/keys",
            json={"name": "v", "role": "viewer"},
            headers={"X-API-Key": ADMIN},
        ) as r:
            viewer = {"X-API-Key": (await r.json())["secret"]}
        statuses = []
        for _ in range(5):  # a viewer may not create collections
            async with s.post(
                srv.url + "/collections", json={"name": "x", "dimension": 2}, headers=viewer
            ) as r:
                statuses.append(r.status)
                assert "X-RateLimit-Remaining" in r.headers
        assert statuses == [403, 403, 403, 429, 429]
        async with s.get(srv.url + "/collections", headers=viewer) as r:
            assert r.status == 429  # what it may do waits too


async def test_the_operator_s_key_and_replication_are_not_held_to_the_node_s_limit(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    """The node's limit is for applications. The bootstrap admin key is the operator's
    (and a replica's primary is called with the replication key): held to a limit set at
    0.2 a second, the operator's calls were refused (429) and the cluster was never set
    up; an application using the admin key above the limit made the operator's status
    calls 429 too, and the cluster's status said its primary did not answer."""
    (tmp_path / "replication.key").write_text("replication-key-for-rates-0123456789")
    srv = server_factory(
        data_dir=tmp_path / "data",
        args=["--auth-enabled", "true", "--auth-admin-key", ADMIN, "--rate-limit-rps", "0.2"]
        + ["--rate-limit-burst", "1"]
        + ["--replication-key-file", str(tmp_path / "replication.key")],
    ).start()
    admin = {"X-API-Key": ADMIN}
    replication = {"X-API-Key": (tmp_path / "replication.key").read_text()}
    async with aiohttp.ClientSession() as s:
        async with s.post(
            srv.url + "/auth/keys", json={"name": "app", "role": "admin"}, headers=admin
        ) as r:
            app = {"X-API-Key": (await r.json())["secret"]}
        statuses: dict[str, list[int]] = {"admin": [], "replication": [], "app": []}
        for _ in range(10):
            for who, headers in (("admin", admin), ("replication", replication), ("app", app)):
                async with s.get(srv.url + "/replication/status", headers=headers) as r:
                    statuses[who].append(r.status)
                    assert (who == "app") == ("X-RateLimit-Limit" in r.headers), who
    assert statuses["admin"] == statuses["replication"] == [200] * 10, statuses
    assert statuses["app"] == [200] + [429] * 9, statuses
