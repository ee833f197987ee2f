"""A snapshot folder that a prune cut short (kill -9) left without its manifest: gone
at the next start, not logged as an unusable snapshot at every start for ever, and no
cause for a former primary to refuse to start once it has synced in full from a new
primary at a lower sequence (it counted as an unusable snapshot newer than the one it
loads)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from tests.servers import ServerProcess, free_port


def node(factory: type[ServerProcess], data: Path) -> ServerProcess:
    port = free_port()
    args = ["--snapshots-retained", "1", "--snapshot-interval-s", "0"]
    return factory(
        data_dir=data, port=port, args=[*args, "--advertise-url", f"http://127.0.0.1:{port}"]
    )


def ok(srv: ServerProcess, method: str, path: str, body: object = None) -> object:
    status, answer = srv.request(method, path, body)
    assert status in (200, 201), (method, path, status, answer)
    return answer


def collections(srv: ServerProcess) -> set[str]:
    answer = ok(srv, "GET", "/collections")
    assert isinstance(answer, dict)
    return {c["name"] for c in answer["collections"]}


def test_a_former_primary_synced_in_full_starts_again_whatever_a_prune_left(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    a = node(server_factory, tmp_path / "a").start()
    ok(a, "POST", "/collections", {"name": "old", "dimension": 2})
    for i in range(20):
        ok(a, "POST", "/collections/old/vectors", {"vectors": [{"id": i, "vector": [1, i]}]})
    made = ok(a, "POST", "/collections/old/snapshot")
    assert isinstance(made, dict)
    sequence = made["snapshot"]["sequence"]
    a.kill()
    # What a kill -9 while the previous snapshot was pruned left: its folder, some of its
    # files, not its manifest (deleted first).
    snaps = tmp_path / "a" / "snapshots"
    leftover = snaps / f"{sequence - 5:020d}"
    shutil.copytree(snaps / f"{sequence:020d}", leftover)
    (leftover / "MANIFEST.json").unlink()

    a.start()
    assert not leftover.exists()  # (stayed, logged as unusable at every start)
    b = node(server_factory, tmp_path / "b").start()
    ok(b, "POST", "/replication/promote", {"epoch": 2})
    ok(b, "POST", "/collections", {"name": "new", "dimension": 2})
    ok(b, "POST", "/collections/new/vectors", {"vectors": [{"id": 7, "vector": [1, 0]}]})
    ok(a, "POST", "/replication/follow", {"primary_url": b.url, "epoch": 2})
    deadline = time.monotonic() + 60
    while collections(a) != {"new"}:  # a full sync: the primary is behind it
        assert time.monotonic() < deadline, a.log()
        time.sleep(0.1)

    a.kill()
    a.start()  # (refused: "snapshot ... does not load ... refusing to start")
    assert collections(a) == {"new"}
    assert "unusable" not in a.log()
