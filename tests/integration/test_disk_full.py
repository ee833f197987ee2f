"""A full disk refuses writes with ``insufficient_storage``, keeps serving reads, takes
writes again once there is room, and loses nothing acknowledged across ``kill -9``.

The full disk is real to the server: a file size limit (RLIMIT_FSIZE, set on the
running process with prlimit) makes its writes fail with EFBIG, as they fail with
ENOSPC on a full volume, partway through a record.
"""

from __future__ import annotations

import resource
from pathlib import Path
from typing import Any

import numpy as np

from tests.servers import ServerProcess

DIM = 64


def batch(first: int, n: int = 100) -> dict[str, Any]:
    vecs = np.random.default_rng(first).normal(size=(n, DIM)).round(4).tolist()
    return {
        "vectors": [
            {"id": first + i, "vector": v, "payload": {"n": first + i}} for i, v in enumerate(vecs)
        ]
    }


def wal_bytes(data: Path) -> int:
    return max(p.stat().st_size for p in (data / "wal").iterdir())


def count(srv: ServerProcess) -> int:
    status, body = srv.request("GET", "/collections/c")
    assert status == 200, body
    return int(body["collection"]["vector_count"])


def test_a_full_disk_refuses_writes_and_loses_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    # No periodic snapshot: the test decides when the disk is asked for one.
    srv = ServerProcess(data_dir=data, args=["--snapshot-interval-s", "0"]).start()
    assert srv.proc is not None
    pid = srv.proc.pid
    try:
        assert srv.request("POST", "/collections", {"name": "c", "dimension": DIM})[0] == 201
        acked: set[int] = set()
        for first in range(0, 3000, 100):
            assert srv.request("POST", "/collections/c/vectors", batch(first))[0] == 200
            acked.update(range(first, first + 100))
        soft, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (wal_bytes(data) + 200_000, hard))

        refused: dict[str, Any] | None = None
        refused_ids: set[int] = set()
        for first in range(100_000, 200_000, 100):
            status, body = srv.request("POST", "/collections/c/vectors", batch(first))
            if status != 200:
                refused, refused_ids = body, set(range(first, first + 100))
                assert status == 507, body
                break
            acked.update(range(first, first + 100))
        assert refused is not None, "the disk never filled up"
        assert refused["error"]["code"] == "insufficient_storage"
        assert "nothing of it was kept" in refused["error"]["message"]
        assert count(srv) == len(acked)  # nothing of the refused batch was applied

        # Reads go on; the node stays live and ready (only its writes wait for room).
        first_refused = min(refused_ids)
        assert srv.request("GET", f"/collections/c/vectors/{first_refused}")[0] == 404
        # (exact: the graph's approximate walk may, rarely, miss a point's own vector)
        query = {"vector": batch(0)["vectors"][7]["vector"], "exact": True}
        status, found = srv.request("POST", "/collections/c/search", query)
        assert status == 200 and found["results"][0]["id"] == 7, found
        assert srv.request("GET", "/health")[0] == 200
        assert srv.request("GET", "/ready")[0] == 200
        # A snapshot's files are each smaller than the log: the limit goes lower for it.
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (100_000, hard))
        status, body = srv.request("POST", "/collections/c/snapshot")
        assert status == 507 and body["error"]["code"] == "insufficient_storage", body
        assert not [p.name for p in (data / "snapshots").glob(".*")]  # no partial snapshot

        resource.prlimit(pid, resource.RLIMIT_FSIZE, (soft, hard))  # room again
        for first in range(200_000, 200_500, 100):
            assert srv.request("POST", "/collections/c/vectors", batch(first))[0] == 200
            acked.update(range(first, first + 100))
        assert count(srv) == len(acked)
    finally:
        srv.kill()

    again = ServerProcess(data_dir=data, port=srv.port).start()
    try:
        assert "torn" not in again.log()  # the refused record left nothing behind
        assert count(again) == len(acked)
        status, page = again.request("GET", "/collections/c/vectors?limit=10000")
        assert status == 200
        stored = {p["id"] for p in page["vectors"]}
        assert stored == acked and not stored & refused_ids
    finally:
        again.kill()


def test_below_the_disk_reserve_only_deletes_are_taken(tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv = ServerProcess(data_dir=data).start()
    try:
        assert srv.request("POST", "/collections", {"name": "c", "dimension": DIM})[0] == 201
        assert srv.request("POST", "/collections/c/vectors", batch(0))[0] == 200
        disk = srv.request("GET", "/stats")[1]["disk"]
        assert 64 << 20 <= disk["reserve_bytes"] < disk["free_bytes"]  # automatic: data + 64 MiB
        assert srv.request("GET", "/replication/status")[1]["writes_refused"] is None
    finally:
        srv.terminate()

    # A reserve larger than the free space: as if the volume were nearly full.
    tight = ServerProcess(data_dir=data, args=["--disk-reserve-bytes", str(1 << 60)]).start()
    try:
        status, body = tight.request("POST", "/collections/c/vectors", batch(1000, 1))
        assert status == 507 and body["error"]["code"] == "insufficient_storage", body
        assert "deletes are still taken" in body["error"]["message"]
        status, body = tight.request(
            "PUT", "/qdrant/collections/q", {"vectors": {"size": 2, "distance": "Dot"}}
        )
        assert status == 507 and body["status"]["error"].startswith("insufficient_storage"), body
        assert (
            tight.request("POST", "/collections/c/vectors/delete", {"ids": [1, 2]})[1]["deleted"]
            == 2
        )
        assert count(tight) == 98  # reads go on
        status = tight.request("GET", "/replication/status")[1]
        assert status["writes_refused"] == "insufficient_storage", status
        assert tight.request("GET", "/ready")[0] == 200
    finally:
        tight.kill()
