from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from vectorizer.server.app import create_app, open_node
from vectorizer.server.idlepoll import IdlePoller, available_cpus, idle_poller
from vectorizer.server.keys import IDLE_POLLER
from vectorizer.settings import Settings


class CountingPoller(IdlePoller):
    polls = 0

    def _poll(self) -> None:
        self.polls += 1
        super()._poll()


def request(poller: IdlePoller) -> None:
    now = time.perf_counter()
    poller.began(now)
    poller.answered(now)


# Windows are long next to the sleeps, so that a busy machine cannot flip a result.


async def test_the_loop_polls_for_the_window_after_an_answer_then_sleeps() -> None:
    poller = CountingPoller(1.0)
    request(poller)
    assert poller.polling
    await asyncio.sleep(0.2)  # (a fifth of the window: a busy machine runs it late)
    assert poller.polling and poller.polls >= 3  # the loop kept turning without sleeping
    await asyncio.sleep(1.2)
    assert not poller.polling
    stopped_at = poller.polls
    await asyncio.sleep(0.05)
    assert poller.polls == stopped_at  # asleep again: nothing polls


async def test_each_answer_extends_the_window_without_a_second_poller() -> None:
    poller = CountingPoller(0.2)
    for _ in range(3):
        request(poller)
        await asyncio.sleep(0.05)
        assert poller.polling
    await asyncio.sleep(0.4)  # the last answer's window, and then some
    assert not poller.polling
    # One chain of polls: a second one would have doubled the polls per loop turn.
    turns = CountingPoller(0.02)
    request(turns)
    request(turns)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert turns.polls == 2


async def test_a_request_in_flight_keeps_the_loop_polling_for_a_few_windows() -> None:
    poller = CountingPoller(0.05)  # in flight: up to 0.25 s
    poller.began(time.perf_counter())
    await asyncio.sleep(0.1)  # two windows: a waiting write keeps it polling
    assert poller.polling
    await asyncio.sleep(0.3)  # a long wait (a stream, a slow disk): asleep again
    assert not poller.polling
    stopped_at = poller.polls
    await asyncio.sleep(0.05)
    assert poller.polls == stopped_at
    poller.answered(time.perf_counter())  # its answer opens the usual window
    assert poller.polling
    await asyncio.sleep(0.15)
    assert not poller.polling


def test_off_when_zero_or_with_fewer_than_two_cpus() -> None:
    assert idle_poller(0, cpus=8) is None
    assert idle_poller(200, cpus=1) is None
    assert idle_poller(200, cpus=1.5) is None
    poller = idle_poller(200, cpus=2)
    assert poller is not None and poller.window_s == pytest.approx(200e-6)


@pytest.mark.parametrize(
    ("own", "files", "quota"),
    [
        ("0::/\n", {}, None),
        ("0::/\n", {"cpu.max": "max 100000\n"}, None),
        ("0::/\n", {"cpu.max": "150000 100000\n"}, 1.5),
        ("0::/\n", {"cpu.max": "garbage\n"}, None),
        # a container's cgroup inside a pod's (cgroup v2, no cgroup namespace)
        (
            "0::/kubepods/pod1/c1\n",
            {"kubepods/pod1/cpu.max": "300000 100000\n", "kubepods/pod1/c1/cpu.max": "max 1\n"},
            3.0,
        ),
        (
            "0::/kubepods/pod1/c1\n",
            {
                "kubepods/pod1/cpu.max": "300000 100000\n",
                "kubepods/pod1/c1/cpu.max": "50000 100000\n",
            },
            0.5,
        ),
        # cgroup v1
        ("1:cpu:/\n", {"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        (
            "4:memory:/x\n3:cpu,cpuacct:/docker/abc\n",
            {
                "cpu/docker/abc/cpu.cfs_quota_us": "50000\n",
                "cpu/docker/abc/cpu.cfs_period_us": "100000\n",
            },
            0.5,
        ),
        ("not a cgroup line\n", {"cpu.max": "100000 100000\n"}, 1.0),
    ],
)
def test_available_cpus_honours_the_tightest_cgroup_quota(
    tmp_path: Path, own: str, files: dict[str, str], quota: float | None
) -> None:
    root = tmp_path / "cgroup"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (tmp_path / "self").write_text(own)
    affinity = float(len(os.sched_getaffinity(0)))
    expected = affinity if quota is None else min(affinity, quota)
    assert available_cpus(root, tmp_path / "self") == expected


async def test_in_the_app_a_websocket_does_not_count_as_a_request_in_flight(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    """A replica's stream stays open for days; were it a request in flight, every other
    request would keep the loop polling for the in-flight limit instead of one window."""
    app = create_app(
        Settings(data_dir=tmp_path / "data", snapshot_on_shutdown=False, idle_poll_us=20_000)
    )
    await open_node(app)
    client: TestClient[web.Request, web.Application] = await aiohttp_client(app)
    poller = app[IDLE_POLLER]
    assert poller is not None and poller.in_flight_s == pytest.approx(0.1)
    ws = await client.ws_connect("/replication/stream")  # waits for the replica's hello
    try:
        assert (await client.get("/health")).status == 200
        await asyncio.sleep(0.05)  # past the window (20 ms), within the in-flight limit
        assert not poller.polling
    finally:
        await ws.close()


def test_the_default_setting_turns_polling_on_where_two_cpus_are() -> None:
    assert Settings().idle_poll_us == 200
    assert (idle_poller(Settings().idle_poll_us) is None) == (available_cpus() < 2)
