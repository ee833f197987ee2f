"""Acknowledged writes survive kill -9; a torn log tail is cut, not fatal; SIGTERM is clean;
a snapshot that does not load is never passed over for less than it held."""

from __future__ import annotations

import asyncio
import signal
import socket
import stat
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import orjson
import pytest

from tests.servers import ServerProcess
from vectorizer.client import Point, VectorizerClient
from vectorizer.engine import wal


async def test_acknowledged_writes_survive_kill_9(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    # Snapshots every second, so the kill also lands around snapshot writes.
    srv = server_factory(data_dir=data, args=["--snapshot-interval-s", "1"]).start()
    rng = np.random.default_rng(7)
    acked: dict[int, list[float]] = {}
    acked_payload_updates: dict[int, int] = {}

    async with VectorizerClient(srv.url, timeout=10) as vz:
        await vz.create_collection("d", 8)

        async def writer(w: int) -> None:
            n = 0
            while True:
                ids = [w * 1_000_000 + n + j for j in range(25)]
                vecs = rng.normal(size=(25, 8)).tolist()
                await vz.upsert(
                    "d", [Point(i, v, {"w": w}) for i, v in zip(ids, vecs, strict=True)]
                )
                acked.update(zip(ids, vecs, strict=True))
                await vz.update("d", ids[0], payload={"w": w, "rev": n})
                acked_payload_updates[ids[0]] = n
                n += 25

        tasks = [asyncio.create_task(writer(w)) for w in range(4)]
        await asyncio.sleep(3.0)
        srv.proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, Exception) for r in results)  # the writers died with the server
    srv.kill()
    assert len(acked) > 500

    srv2 = server_factory(data_dir=data, port=srv.port).start()
    async with VectorizerClient(srv2.url) as vz:
        total = await vz.count("d")
        assert total >= len(acked)
        # Upserts are whole: every point of the batch or none of it.
        assert total % 25 == 0
        sample = list(acked)[:: max(1, len(acked) // 300)]
        for pid in sample:
            rec = await vz.get("d", pid)
            assert np.allclose(
                rec.vector, np.asarray(acked[pid]) / np.linalg.norm(acked[pid]), atol=1e-6
            )
        for pid, rev in acked_payload_updates.items():
            rec = await vz.get("d", pid, with_vector=False)
            assert rec.payload is not None and rec.payload.get("rev", -1) >= rev


async def test_torn_log_tail_is_truncated_and_logged(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    srv = server_factory(data_dir=data, args=["--snapshot-on-shutdown", "false"]).start()
    async with VectorizerClient(srv.url) as vz:
        await vz.create_collection("t", 2)
        for i in range(10):
            await vz.upsert("t", [Point(i, [1, i + 1])])
    srv.kill()
    (segment,) = (data / "wal").iterdir()
    with open(segment, "r+b") as f:
        f.truncate(segment.stat().st_size - 7)  # tear the last record

    srv2 = server_factory(data_dir=data, port=srv.port).start()
    async with VectorizerClient(srv2.url) as vz:
        assert await vz.count("t") == 9
        assert (await vz.stats())["sequence"] == 10  # create + 9 upserts
        await vz.upsert("t", [Point(100, [1, 1])])  # writing continues after the cut
        assert await vz.count("t") == 10
    assert "log tail torn" in srv2.log()


def framed_vector(seq: int, dim: int) -> list[float]:
    """A vector whose float32 bytes begin with a whole valid log frame numbered ``seq``
    (every component finite and small): what a client can choose."""
    for salt in range(1, 100_000):
        body = struct.pack("<II", 0x3F800000, salt)
        inner = wal.frame(seq, body)
        floats = np.frombuffer(inner, dtype="<f4")
        if np.isfinite(floats).all() and np.abs(floats).max() < 1e6:
            return [float(x) for x in np.concatenate([floats, np.ones(dim - len(floats))])]
    raise AssertionError("no such vector")


def test_a_write_holding_a_log_record_is_refused_and_a_crash_loses_nothing(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    """An upsert whose vectors hold the bytes of a log record numbered as its own (a
    trap: torn by a kill -9 as it was written, recovery found that record after the tear
    and refused every start) is refused whole, on either API; the node then survives a
    kill -9 with everything it acknowledged."""
    data = tmp_path / "data"
    srv = server_factory(data_dir=data, args=["--snapshot-on-shutdown", "false"]).start()
    made = {"name": "t", "dimension": 8, "metric": "euclidean"}
    assert srv.request("POST", "/collections", made)[0] == 201
    status, answer = srv.request(
        "POST", "/collections/t/vectors", {"vectors": [{"id": 1, "vector": [1.0] * 8}]}
    )
    assert status == 200
    trap = framed_vector(answer["sequence"] + 1, 8)
    points = [{"id": i, "vector": trap} for i in range(2, 50)]
    status, refused = srv.request("POST", "/collections/t/vectors", {"vectors": points})
    assert status == 422 and refused["error"]["code"] == "validation_error", refused
    assert refused["error"]["field"] == "vectors"
    status, refused = srv.request(
        "PUT", "/qdrant/collections/t/points?wait=true", {"points": points}
    )
    assert status == 400 and "reads as a record" in refused["status"]["error"], refused
    status, answer = srv.request(
        "POST", "/collections/t/vectors", {"vectors": [{"id": 2, "vector": [2.0] * 8}]}
    )
    assert status == 200
    srv.kill()
    srv2 = server_factory(data_dir=data, port=srv.port).start()
    assert srv2.request("POST", "/collections/t/count", {})[1] == {"count": 2}
    assert srv2.request("GET", "/stats")[1]["sequence"] == answer["sequence"]


async def test_corruption_mid_log_refuses_to_start(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    srv = server_factory(data_dir=data, args=["--snapshot-on-shutdown", "false"]).start()
    async with VectorizerClient(srv.url) as vz:
        await vz.create_collection("t", 2)
        for i in range(10):
            await vz.upsert("t", [Point(i, [1, i + 1])])
    srv.kill()
    (segment,) = (data / "wal").iterdir()
    raw = bytearray(segment.read_bytes())
    raw[40] ^= 0xFF
    segment.write_bytes(bytes(raw))
    srv2 = server_factory(data_dir=data, port=srv.port)
    srv2.start(wait_ready=False)
    assert srv2.proc is not None
    assert srv2.proc.wait(30) == 1
    assert "valid records follow" in srv2.log()
    assert segment.read_bytes() == bytes(raw)  # nothing was cut


async def test_sigterm_flushes_snapshots_and_exits_zero(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    srv = server_factory(data_dir=data).start()
    async with VectorizerClient(srv.url) as vz:
        await vz.create_collection("s", 4)
        await vz.upsert("s", [Point(i, [i, 1, 1, 1]) for i in range(100)])
    assert srv.terminate() == 0
    snaps = list((data / "snapshots").iterdir())
    assert [p.name for p in snaps] == [f"{2:020d}"]
    srv2 = server_factory(data_dir=data, port=srv.port).start()
    async with VectorizerClient(srv2.url) as vz:
        assert await vz.count("s") == 100
    assert "0 log records" in srv2.log()  # recovered from the snapshot alone


async def test_a_body_on_its_way_when_the_stop_comes_is_read_and_answered(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    """The stop closed the connections and aiohttp then dropped every byte received,
    the rest of the body being read too: the upsert waited out the body timeout (30 s,
    the stop with it) and got a false 408. It is read to its end and answered."""
    data = tmp_path / "data"
    srv = server_factory(data_dir=data).start()
    async with VectorizerClient(srv.url) as vz:
        await vz.create_collection("b", 4)
    body = orjson.dumps({"vectors": [{"id": i, "vector": [i, 1, 1, 1]} for i in range(2000)]})
    head = (
        "POST /collections/b/vectors HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
        f"\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    answer, stopping = _send_across_a_stop(srv, head + body)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    assert srv.terminate() == 0 and time.monotonic() - stopping < 10
    srv = server_factory(data_dir=data, port=srv.port).start()
    async with VectorizerClient(srv.url) as vz:
        assert await vz.count("b") == 2000


def _send_across_a_stop(srv: ServerProcess, request: bytes) -> tuple[bytes, float]:
    """Send the first half of ``request``, SIGTERM, then the rest: the first bytes of
    the answer, and when the rest was sent."""
    assert srv.proc is not None
    with socket.create_connection(("127.0.0.1", srv.port), timeout=20) as sock:
        sock.sendall(request[: len(request) // 2])
        time.sleep(0.5)  # (its handler is reading the body)
        srv.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)  # (the stop has closed the connections)
        stopping = time.monotonic()
        sock.sendall(request[len(request) // 2 :])
        return sock.recv(1 << 16), stopping


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM], ids=["hup", "term-storm"])
def test_a_stop_signal_and_more_of_them_end_in_a_clean_exit(
    server_factory: type[ServerProcess], tmp_path: Path, sig: signal.Signals
) -> None:
    """SIGHUP stops the server as SIGTERM does; signals still arriving while it tears
    down do not kill it (exit 0, its snapshot taken)."""
    srv = server_factory(data_dir=tmp_path / "data").start()
    assert srv.request("POST", "/collections", {"name": "s", "dimension": 2})[0] == 201
    assert srv.proc is not None
    srv.proc.send_signal(sig)
    deadline = time.monotonic() + 30
    while srv.proc.poll() is None and time.monotonic() < deadline:
        if sig is signal.SIGTERM:
            srv.proc.send_signal(sig)
        time.sleep(0.01)
    assert srv.proc.wait(5) == 0, srv.log()
    assert '"stopped"' in srv.log()
    assert [p.name for p in (tmp_path / "data" / "snapshots").iterdir()] == [f"{1:020d}"]


def _caught(pid: int) -> int:
    """The signals process ``pid`` has handlers for (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("SigCgt:"):
                return int(line.split()[1], 16)
    except FileNotFoundError:
        pass
    return 0


@pytest.mark.parametrize("later_s", [0.0, 0.3], ids=["at-once", "later"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["term", "int"])
def test_a_stop_signal_during_start_up_is_a_clean_stop(
    server_factory: type[ServerProcess], tmp_path: Path, sig: signal.Signals, later_s: float
) -> None:
    """From its first moment (before its modules load, across its re-execution for huge
    pages, while the store opens), `vectorizer serve` takes a stop signal as it does
    once serving: exit 0, no traceback. Until the event loop took them over, ~1 s in,
    SIGTERM killed it and SIGINT raised a KeyboardInterrupt."""
    srv = server_factory(data_dir=tmp_path / "data").start(wait_ready=False)
    assert srv.proc is not None
    deadline = time.monotonic() + 30
    while not _caught(srv.proc.pid) & (1 << (signal.SIGTERM - 1)):
        assert srv.proc.poll() is None and time.monotonic() < deadline, srv.log()
        time.sleep(0.001)
    assert "listening on" not in srv.log()  # (read after the mask: caught before that)
    time.sleep(later_s)  # (0.3 s: about when it re-executes itself for huge pages)
    srv.proc.send_signal(sig)
    assert srv.proc.wait(30) == 0, srv.log()
    assert "Traceback" not in srv.log() and '"stopped"' in srv.log(), srv.log()


async def test_vector_updates_in_the_delta_buffer_survive_kill_9(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    """Updated vectors wait in the index's delta buffer before they join the graph; an
    acknowledged update is found by search after kill -9 whether it had joined or not."""
    data = tmp_path / "data"
    srv = server_factory(data_dir=data, args=["--snapshot-interval-s", "0"]).start()
    rng = np.random.default_rng(3)
    n, updated = 3000, 300  # past the graph threshold; one buffer's worth folds, the rest waits
    new = rng.normal(size=(updated, 8)) * 5
    async with VectorizerClient(srv.url, timeout=10) as vz:
        await vz.create_collection("u", 8)
        base = rng.normal(size=(n, 8))
        for b in range(0, n, 500):
            await vz.upsert("u", [Point(i, base[i].tolist()) for i in range(b, b + 500)])
        for pid in range(updated):
            await vz.update("u", pid, vector=new[pid].tolist(), payload={"rev": 1})
    srv.proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
    srv.kill()

    srv2 = server_factory(data_dir=data, port=srv.port).start()
    async with VectorizerClient(srv2.url) as vz:
        assert await vz.count("u") == n
        for pid in range(0, updated, 7):
            rec = await vz.get("u", pid)
            assert rec.payload == {"rev": 1}
            assert np.allclose(rec.vector, new[pid] / np.linalg.norm(new[pid]), atol=1e-6)
            hits = await vz.search("u", new[pid].tolist(), limit=1)
            assert hits[0].id == pid


@pytest.mark.parametrize("trouble", ["port in use", "audit log path a directory"])
def test_settings_that_cannot_work_refuse_to_start_plainly(
    server_factory: type[ServerProcess], tmp_path: Path, trouble: str
) -> None:
    args: list[str] = []
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1] if trouble == "port in use" else None
        if trouble == "audit log path a directory":
            args = ["--auth-enabled", "true", "--auth-admin-key", "k" * 20]
            args += ["--audit-log-path", str(tmp_path)]
        srv = server_factory(
            data_dir=tmp_path / "data",
            args=args,
            log_path=tmp_path / "srv.log",
            **({"port": port} if port else {}),
        )
        srv.start(wait_ready=False)
        assert srv.proc is not None and srv.proc.wait(30) == 1
    assert "cannot start: " in srv.log() and "Traceback" not in srv.log(), srv.log()


def test_a_data_directory_that_is_a_file_refuses_to_start_plainly(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    (tmp_path / "data").write_text("not a directory")
    srv = server_factory(data_dir=tmp_path / "data", log_path=tmp_path / "srv.log")
    srv.start(wait_ready=False)
    assert srv.proc is not None and srv.proc.wait(30) == 1
    assert "cannot start: the data directory" in srv.log() and "Traceback" not in srv.log()
    assert (tmp_path / "data").read_text() == "not a directory"


async def test_one_server_per_data_directory(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    """A second server (or a restore) on a directory in use is refused before it
    touches it; the lock goes with the process, however it ends."""
    data = tmp_path / "data"
    srv = server_factory(data_dir=data).start()
    assert stat.S_IMODE(data.stat().st_mode) == 0o700  # (its log holds every point)
    async with VectorizerClient(srv.url) as vz:
        await vz.create_collection("mine", 2)
        await vz.upsert("mine", [Point(i, [1, i]) for i in range(20)])
        wal = sorted(p.read_bytes() for p in (data / "wal").iterdir())
        second = server_factory(data_dir=data, log_path=tmp_path / "second.log")
        second.start(wait_ready=False)
        assert second.proc is not None
        assert second.proc.wait(30) == 1
        assert f"is in use by another process (pid {srv.proc.pid})" in second.log()  # type: ignore[union-attr]
        restore = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "vectorizer",
            "restore",
            str(tmp_path / "x.snapshot"),
            "--data-dir",
            str(data),
            "--replace",
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await restore.communicate()
        assert restore.returncode == 2 and b"in use by another process" in err
        assert sorted(p.read_bytes() for p in (data / "wal").iterdir()) == wal
        assert await vz.count("mine") == 20
    srv.kill()
    again = server_factory(data_dir=data, port=srv.port).start()  # kill -9 let the lock go
    async with VectorizerClient(again.url) as vz:
        assert await vz.count("mine") == 20


def _files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` and its bytes (but the lock, which names its holder)."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and p.name != "LOCK"
    }


def _restored(source: ServerProcess, file: Path, data: Path) -> None:
    """A full snapshot of ``source`` in ``file``, restored into the new ``data``."""
    status, made = source.request("POST", "/qdrant/snapshots?wait=true")
    assert status == 200, made
    with urllib.request.urlopen(f"{source.url}/qdrant/snapshots/{made['result']['name']}") as r:
        file.write_bytes(r.read())
    done = subprocess.run(
        [sys.executable, "-m", "vectorizer", "restore", str(file), "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("trouble", ["unreadable for one start", "damaged"])
async def test_a_restored_node_whose_snapshot_does_not_load_refuses_to_start(
    server_factory: type[ServerProcess], tmp_path: Path, trouble: str
) -> None:
    """A data directory made by `vectorizer restore` holds one snapshot and no log. If that
    snapshot does not load at a start, the node refuses to start, every file left as it
    is: started empty it would acknowledge writes under the sequences the snapshot holds,
    and lose them once the snapshot loads again. Once it loads, the node serves it."""
    source = server_factory(data_dir=tmp_path / "source").start()
    async with VectorizerClient(source.url) as vz:
        await vz.create_collection("c", 4)
        await vz.upsert("c", [Point(i, [i, 1, 2, 3], {"i": i}) for i in range(50)])
    data = tmp_path / "restored"
    await asyncio.to_thread(_restored, source, tmp_path / "full.snapshot", data)
    (points,) = data.glob("snapshots/*/c00000/points.json")
    good = points.read_bytes()
    if trouble == "damaged":
        points.write_bytes(bytes([good[0] ^ 0x01]) + good[1:])  # one flipped bit
    else:
        points.rename(tmp_path / "away")
    before = _files(data)

    node = server_factory(data_dir=data, log_path=tmp_path / "node.log")
    node.start(wait_ready=False)
    assert node.proc is not None and node.proc.wait(30) == 1
    log = node.log()
    assert f"cannot start: snapshot {points.parent.parent.name} does not load" in log, log
    assert "recovered" not in log and "Traceback" not in log, log
    assert _files(data) == before

    points.unlink(missing_ok=True)
    points.write_bytes(good)
    node.start()
    async with VectorizerClient(node.url) as vz:
        assert await vz.count("c") == 50
        assert (await vz.stats())["sequence"] == int(points.parent.parent.name)
        await vz.upsert("c", [Point(99, [1, 1, 1, 1])])  # it goes on from there
    node.kill()
    node.start()
    async with VectorizerClient(node.url) as vz:
        assert await vz.count("c") == 51
