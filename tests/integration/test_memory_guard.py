"""At its memory limit a node refuses writes with ``insufficient_memory`` instead of being
killed by the kernel, keeps serving reads and deletes, and loses nothing acknowledged.

The limit is real where the test can make a memory cgroup (root with a writable memory
controller, as on the CI machine): the server starts inside it and finds the limit
itself, as in a container. Elsewhere the same limit is given as a setting.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from tests.cgroups import MemoryCgroup, memory_cgroup
from tests.servers import ServerProcess

LIMIT = 160 << 20  # about 45 MiB of it is the idle server
DIM = 256
BATCH = 500


def batch(first: int) -> dict[str, Any]:
    vecs = np.random.default_rng(first).normal(size=(BATCH, DIM)).round(3).tolist()
    return {
        "vectors": [
            {"id": first + i, "vector": v, "payload": {"n": first + i}} for i, v in enumerate(vecs)
        ]
    }


def count(srv: ServerProcess) -> int:
    status, body = srv.request("GET", "/collections/c")
    assert status == 200, body
    return int(body["collection"]["vector_count"])


def stored_ids(srv: ServerProcess) -> set[int]:
    ids: set[int] = set()
    offset = ""
    while offset is not None:
        status, page = srv.request(
            "GET", f"/collections/c/vectors?limit=10000&with_payload=false{offset}"
        )
        assert status == 200, page
        ids.update(p["id"] for p in page["vectors"])
        offset = None if page["next_offset"] is None else f"&offset={page['next_offset']}"
    return ids


def anonymous_memory(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("RssAnon:")[1].split()[0]) * 1024


def test_at_its_memory_limit_a_node_refuses_writes_and_is_not_killed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with memory_cgroup(LIMIT) as group:
        args = ["--snapshot-interval-s", "0"]
        if group is None:
            args += ["--memory-limit-bytes", str(LIMIT)]
        path = None if group is None else group.path
        srv = ServerProcess(data_dir=data, args=args, cgroup=path).start()
        assert srv.proc is not None
        pid = srv.proc.pid
        try:
            memory = srv.request("GET", "/stats")[1]["memory"]
            assert memory["limit_bytes"] == LIMIT, memory  # found in the cgroup
            assert memory["high_water_bytes"] == int(LIMIT * 0.9)
            assert 0 < memory["used_bytes"] < memory["high_water_bytes"]
            # A small graph builds fast; the memory per point is what it is either way.
            created = srv.request(
                "POST",
                "/collections",
                {"name": "c", "dimension": DIM, "hnsw": {"m": 8, "ef_construction": 32}},
            )
            assert created[0] == 201, created
            acked: set[int] = set()
            refused: dict[str, Any] | None = None
            for first in range(0, 200 * BATCH, BATCH):  # ~2 KiB per point: ~90k points fit
                status, body = srv.request("POST", "/collections/c/vectors", batch(first))
                if status != 200:
                    assert status == 507, body
                    refused, refused_first = body, first
                    break
                acked.update(range(first, first + BATCH))
            assert refused is not None, "the node never reached its high-water mark"
            error = refused["error"]
            assert error["code"] == "insufficient_memory", error
            assert "deletes are still taken" in error["message"]
            assert error["details"]["high_water_bytes"] == int(LIMIT * 0.9)
            # What the operator reads, for the cluster's WritesRefused condition.
            status = srv.request("GET", "/replication/status")[1]
            assert status["writes_refused"] == "insufficient_memory", status

            # Alive, under the limit, and serving: nothing of the refused batch is stored.
            assert srv.proc.poll() is None
            assert anonymous_memory(pid) < LIMIT
            assert count(srv) == len(acked)
            assert srv.request("GET", f"/collections/c/vectors/{refused_first}")[0] == 404
            # (exact: the test's small graph, m 8 and ef_construction 32 over random
            # 256-d points, can miss a point's own vector; it did once in CI)
            query = {"vector": batch(0)["vectors"][7]["vector"], "exact": True}
            status, found = srv.request("POST", "/collections/c/search", query)
            assert status == 200 and found["results"][0]["id"] == 7, found
            assert srv.request("GET", "/ready")[0] == 200
            status, body = srv.request(
                "PUT", "/qdrant/collections/c/points?wait=true", {"points": batch(10**6)["vectors"]}
            )
            assert status == 507 and body["status"]["error"].startswith("insufficient_memory")
            if group is not None:  # the pod resized in place: writes resume, no restart
                group.set_limit(2 * LIMIT)
                deadline = time.monotonic() + 10
                while srv.request("GET", "/stats")[1]["memory"]["limit_bytes"] != 2 * LIMIT:
                    assert time.monotonic() < deadline, "the new limit was never taken up"
                    time.sleep(0.2)
                status, body = srv.request("POST", "/collections/c/vectors", batch(refused_first))
                assert status == 200, body
                acked.update(range(refused_first, refused_first + BATCH))
                group.set_limit(LIMIT)  # as it was, for the restart
            gone = list(range(BATCH))
            status, body = srv.request("POST", "/collections/c/vectors/delete", {"ids": gone})
            assert status == 200 and body["deleted"] == BATCH, body
            acked -= set(gone)
            # A snapshot: start-up then loads it (and replays the log since).
            assert srv.request("POST", "/collections/c/snapshot")[0] == 201
            more = {"ids": list(range(BATCH, 2 * BATCH))}
            assert srv.request("POST", "/collections/c/vectors/delete", more)[1]["deleted"] == BATCH
            acked -= set(more["ids"])
        finally:
            srv.kill()

        # What was acknowledged comes back, and fits: the node starts again in its limit.
        again = ServerProcess(data_dir=data, port=srv.port, args=args, cgroup=path).start()
        try:
            assert count(again) == len(acked)
            assert stored_ids(again) == acked
        finally:
            again.kill()


def test_a_body_too_large_to_decode_in_the_memory_left_is_refused(tmp_path: Path) -> None:
    # ~45 MiB of the 256 in use: a 40 MiB body (~200 MiB decoded) does not fit beside it.
    srv = ServerProcess(data_dir=tmp_path / "data", args=["--memory-limit-bytes", str(256 << 20)])
    srv.start()
    try:
        assert srv.request("POST", "/collections", {"name": "c", "dimension": DIM})[0] == 201
        huge = {
            "vectors": [v for first in range(0, 24_000, BATCH) for v in batch(first)["vectors"]]
        }
        status, body = srv.request("POST", "/collections/c/vectors", huge)
        assert status == 507, body
        error = body["error"]
        assert error["code"] == "insufficient_memory" and error["field"] == "body", error
        assert "send it in smaller parts" in error["message"]
        assert error["details"]["needed_bytes"] > 200 << 20
        status, body = srv.request(
            "PUT", "/qdrant/collections/c/points", {"points": huge["vectors"]}
        )
        assert status == 507 and body["status"]["error"].startswith("insufficient_memory")
        # The same points in parts of 2,000 (~5 MiB each) are taken.
        for first in range(0, 24_000, 2000):
            part = {"vectors": huge["vectors"][first : first + 2000]}
            assert srv.request("POST", "/collections/c/vectors", part)[0] == 200
        assert count(srv) == 24_000
        assert srv.proc is not None and srv.proc.poll() is None
    finally:
        srv.kill()


def test_an_answer_too_large_to_build_in_the_memory_left_is_refused(tmp_path: Path) -> None:
    # 2,000 vectors of 3,072 components are ~300 MB while an answer holds them.
    srv = ServerProcess(data_dir=tmp_path / "data", args=["--memory-limit-bytes", str(320 << 20)])
    srv.start()
    wide, n = 3072, 2000
    try:
        spec = {"name": "c", "dimension": wide, "index": "exact"}
        assert srv.request("POST", "/collections", spec)[0] == 201
        rng = np.random.default_rng(3)
        for first in range(0, n, 250):
            vecs = rng.normal(size=(250, wide)).round(2).tolist()
            points = [{"id": first + i, "vector": v} for i, v in enumerate(vecs)]
            assert srv.request("POST", "/collections/c/vectors", {"vectors": points})[0] == 200
        query = vecs[0]
        too_large: list[tuple[str, str, Any]] = [
            ("GET", f"/collections/c/vectors?limit={n}&with_vector=true", None),
            ("POST", "/collections/c/search", {"vector": query, "limit": n, "with_vector": True}),
            (
                "POST",
                "/batch_search",
                {
                    "collection": "c",
                    "queries": [{"vector": query, "limit": n // 2, "with_vector": True}] * 2,
                },
            ),
            ("POST", "/qdrant/collections/c/points/scroll", {"limit": n, "with_vector": True}),
            ("POST", "/qdrant/collections/c/points", {"ids": list(range(n)), "with_vector": True}),
            (
                "POST",
                "/qdrant/collections/c/points/query",
                {"query": query, "limit": n, "with_vector": True},
            ),
        ]
        for method, path, body in too_large:
            status, answer = srv.request(method, path, body)
            assert status == 507, (path, answer)
            if path.startswith("/qdrant"):
                assert answer["status"]["error"].startswith("insufficient_memory"), answer
            else:
                assert answer["error"]["code"] == "insufficient_memory", answer
                assert answer["error"]["field"] == "limit", answer
        # Smaller pages of the same, and the whole without vectors, are answered.
        status, page = srv.request("GET", "/collections/c/vectors?limit=200&with_vector=true")
        assert status == 200 and len(page["vectors"]) == 200
        assert len(page["vectors"][0]["vector"]) == wide
        status, page = srv.request("GET", f"/collections/c/vectors?limit={n}")
        assert status == 200 and len(page["vectors"]) == n
        status, hits = srv.request("POST", "/collections/c/search", {"vector": query, "limit": n})
        assert status == 200 and len(hits["results"]) == n
        assert srv.proc is not None and srv.proc.poll() is None
    finally:
        srv.kill()


def start_primary(data: Path, *args: str) -> ServerProcess:
    srv = ServerProcess(data_dir=data, args=["--snapshot-interval-s", "0", *args]).start()
    created = srv.request(
        "POST",
        "/collections",
        {"name": "c", "dimension": DIM, "hnsw": {"m": 8, "ef_construction": 32}},
    )
    assert created[0] == 201, created
    return srv


def start_replica(data: Path, primary: ServerProcess, group: MemoryCgroup | None) -> ServerProcess:
    """A replica of ``primary`` limited to LIMIT: by its cgroup, or by the setting."""
    args = ["--snapshot-interval-s", "0", "--role", "replica"]
    args += ["--primary-url", primary.url, "--reconnect-interval-ms", "200"]
    if group is None:
        args += ["--memory-limit-bytes", str(LIMIT)]
    path = None if group is None else group.path
    return ServerProcess(data_dir=data, args=args, cgroup=path).start()


def sequence(srv: ServerProcess) -> int:
    assert srv.proc is not None and srv.proc.poll() is None, "the node was killed"
    return int(srv.request("GET", "/replication/status")[1]["sequence"])


def wait_refused(replica: ServerProcess) -> int:
    """The sequence a replica holds at once it says it has no memory for the next record."""
    deadline = time.monotonic() + 60
    while True:
        held = sequence(replica)
        status = replica.request("GET", "/replication/status")[1]
        if status["writes_refused"] == "insufficient_memory":
            return held
        assert time.monotonic() < deadline, status
        time.sleep(0.2)


def wait_caught_up(replica: ServerProcess, head: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while sequence(replica) < head:
        assert time.monotonic() < deadline, "the replica never caught up"
        time.sleep(0.2)


def test_a_replica_without_memory_for_a_record_holds_instead_of_dying(tmp_path: Path) -> None:
    """A replica given less memory than its primary stops before the record it has no
    room for (it cannot skip it) instead of being killed by the kernel, and killed again
    replaying its log on every restart. It keeps serving what it has, says why it lags,
    and catches up once it has the memory."""
    primary = start_primary(tmp_path / "p")
    try:
        with memory_cgroup(LIMIT) as group:
            replica = start_replica(tmp_path / "r", primary, group)
            assert replica.proc is not None
            try:
                for first in range(0, 130 * BATCH, BATCH):  # ~130 MiB of points: over the limit
                    status, body = primary.request("POST", "/collections/c/vectors", batch(first))
                    assert status == 200, body
                head = sequence(primary)
                held = wait_refused(replica)
                assert held < head, "the replica took every record"
                time.sleep(1.5)  # it retries, and holds at the same record
                assert sequence(replica) == held
                assert anonymous_memory(replica.proc.pid) < LIMIT
                assert 0 < count(replica) < count(primary)  # it serves what it holds
                if group is not None:  # given the memory, it catches up
                    group.set_limit(3 * LIMIT)
                    wait_caught_up(replica, head, 60)
                    assert stored_ids(replica) == stored_ids(primary)
            finally:
                replica.kill()
    finally:
        primary.kill()


def test_a_replica_refuses_a_full_sync_it_cannot_hold(tmp_path: Path) -> None:
    """The snapshot of a full sync is loaded beside what the replica holds: one too large
    for its memory is refused before it is even sent (its size comes first), and taken
    once the replica has the memory."""
    primary = start_primary(tmp_path / "p", "--wal-segment-bytes", str(4 << 20))
    try:
        for first in range(0, 130 * BATCH, BATCH):
            assert primary.request("POST", "/collections/c/vectors", batch(first))[0] == 200
        # a snapshot, and the log behind it gone: a new replica needs a full sync
        assert primary.request("POST", "/collections/c/snapshot")[0] == 201
        head = sequence(primary)
        with memory_cgroup(LIMIT) as group:
            replica = start_replica(tmp_path / "r", primary, group)
            try:
                assert wait_refused(replica) == 0
                time.sleep(1.5)  # it retries, and refuses again
                assert sequence(replica) == 0
                stats = primary.request("GET", "/replication/stats")[1]
                assert stats["bytes_sent"] < 64 << 10, stats  # nothing of the snapshot went
                if group is not None:
                    group.set_limit(3 * LIMIT)
                    wait_caught_up(replica, head, 90)
                    assert stored_ids(replica) == stored_ids(primary)
            finally:
                replica.kill()
    finally:
        primary.kill()
