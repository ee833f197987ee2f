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
