"""Every kind of write, native and Qdrant, against a model, through repeated ``kill -9``.

Writers (tests/writemodel.py) stream random writes of every kind while the node
snapshots every second, and keep a model of what each acknowledged write did. The node
is killed at a random moment, restarted on the same data directory, and must hold
exactly the model's state: every collection, point, vector, payload and payload index;
a write in flight at the kill may be there or not, but whole (a batch of operations: any
prefix of it). The payload indexes must then answer filters exactly as the payloads say.
Three rounds.
"""

from __future__ import annotations

import asyncio
import random
import signal
from pathlib import Path

import aiohttp

from tests.servers import ServerProcess
from tests.writemodel import Writer, check_indexes, diff, read_state, same

WRITERS = 3
ROUNDS = 3


async def test_every_write_kind_survives_kill_9_as_the_model_says(tmp_path: Path) -> None:
    data = tmp_path / "data"
    rnd = random.Random(20261129)
    writers = [Writer([f"w{w}a", f"w{w}b"], random.Random(rnd.random())) for w in range(WRITERS)]
    args = ["--snapshot-interval-s", "1"]
    srv = ServerProcess(data_dir=data, args=args).start()
    timeout = aiohttp.ClientTimeout(total=30)
    try:
        for round_ in range(ROUNDS):
            async with aiohttp.ClientSession(timeout=timeout) as http:
                tasks = [asyncio.create_task(w.run(http, srv.url)) for w in writers]
                await asyncio.sleep(rnd.uniform(1.0, 2.5))
                assert srv.proc is not None
                srv.proc.send_signal(signal.SIGKILL)
                async with asyncio.timeout(30):
                    await asyncio.gather(*tasks)
            srv.kill()
            for w in writers:
                assert not w.failures, w.failures
            srv = ServerProcess(data_dir=data, port=srv.port, args=args).start()
            async with aiohttp.ClientSession(timeout=timeout) as http:
                for w in writers:
                    actual = await read_state(http, srv.url, w.names)
                    candidates = w.in_flight or [w.state]
                    found = [c for c in candidates if same(actual, c)]
                    assert found, (
                        f"round {round_}: the node's state is none of the {len(candidates)} "
                        f"the model allows after {w.writes} writes:\n{diff(actual, w.state)}"
                    )
                    w.state, w.in_flight = found[0], None
                    await check_indexes(http, srv.url, w.state)
        assert sum(w.writes for w in writers) > 300
    finally:
        srv.kill()
