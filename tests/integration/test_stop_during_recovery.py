"""SIGTERM while a node replays its log at start-up: the replay ends at the next record
and the node exits promptly, leaving a snapshot of what it replayed (with
``snapshot_on_shutdown``), so the next start replays only the rest; nothing is lost."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest

from tests.servers import ServerProcess

BATCHES = 40


def _logged(server_factory: type[ServerProcess], data: Path) -> ServerProcess:
    """A node whose every write is in the log only (killed: no shutdown snapshot)."""
    first = server_factory(data_dir=data, args=["--snapshot-interval-s", "0"]).start()
    assert first.request("POST", "/collections", {"name": "c", "dimension": 32})[0] == 201
    rng = np.random.default_rng(0)
    for b in range(BATCHES):  # a log to replay: a few seconds of graph building
        rows = rng.normal(size=(1000, 32)).tolist()
        pts = [{"id": b * 1000 + i, "vector": rows[i]} for i in range(1000)]
        assert first.request("POST", "/collections/c/vectors", {"vectors": pts})[0] == 200
    first.kill()
    return first


def _terminated_while_recovering(srv: ServerProcess) -> float:
    """SIGTERM once the node listens and is still recovering; seconds it took to exit."""
    srv.start(wait_ready=False)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if srv.request("GET", "/ready")[0] == 503:
                break
        except OSError:
            pass
        time.sleep(0.02)
    time.sleep(0.3)  # (some records replayed)
    began = time.monotonic()
    assert srv.terminate() == 0
    return time.monotonic() - began


@pytest.mark.parametrize("snapshot_on_shutdown", [True, False])
def test_sigterm_during_replay_stops_it_and_the_next_start_replays_only_the_rest(
    server_factory: type[ServerProcess], tmp_path: Path, snapshot_on_shutdown: bool
) -> None:
    data = tmp_path / "data"
    first = _logged(server_factory, data)
    args = ["--snapshot-on-shutdown", str(snapshot_on_shutdown).lower()]
    again = server_factory(
        data_dir=data, port=first.port, args=args, log_path=tmp_path / "again.log"
    )
    _terminated_while_recovering(again)
    log = again.log()
    stopped = re.search(r"replay ended at record (\d+) of (\d+)", log)
    assert stopped is not None, log
    reached, last = int(stopped[1]), int(stopped[2])
    assert reached < last, log  # (not replayed to the end)
    assert "recovered 1 collections" not in log, log
    snaps = sorted(p.name for p in (data / "snapshots").glob("[0-9]*"))
    assert snaps == ([f"{reached:020d}"] if snapshot_on_shutdown else []), snaps
    # The recovery thread's last word (the snapshot, or the replay's end) before the
    # process let the data directory's lock go: a thread cannot be cancelled, and a
    # second server opening the directory meanwhile would find it being written.
    last_word = "of the records replayed" if snapshot_on_shutdown else "replay ended at"
    assert log.index(last_word) < log.index('"stopped"'), log
    third = server_factory(data_dir=data, port=first.port, log_path=tmp_path / "third.log")
    third.start()
    done = re.search(r"at sequence (\d+) \(snapshot (\d+) \+ (\d+) log records\)", third.log())
    assert done is not None, third.log()
    assert int(done[1]) == last
    assert int(done[2]) == (reached if snapshot_on_shutdown else 0)
    status, body = third.request("POST", "/collections/c/count", {})
    assert status == 200 and body["count"] == BATCHES * 1000, body  # nothing lost
