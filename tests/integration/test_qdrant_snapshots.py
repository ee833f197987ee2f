"""Qdrant's collection snapshots on a real server: qdrant-client makes, lists, deletes
and recovers from them; uploads; bad files and locations refused with nothing changed;
kill -9 during a recovery; a replica following one; full snapshots restored, a restore
killed at any step."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import aiohttp.web
import numpy as np
import pytest
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

from tests.servers import ServerProcess, serving
from tests.tarballs import tar

Q = "/qdrant/collections"


def make(client: QdrantClient, name: str, n: int, dim: int = 4, seed: int = 0) -> None:
    client.create_collection(
        name, vectors_config=models.VectorParams(size=dim, distance=models.Distance.COSINE)
    )
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, dim)).tolist()
    for start in range(0, n, 2000):
        client.upsert(
            name,
            points=[
                models.PointStruct(
                    id=i if i % 4 else f"00000000-0000-0000-0000-{i:012d}",
                    vector=vectors[i],
                    payload={"i": i, "city": ["Paris", "Rome"][i % 2]} if i % 9 else {},
                )
                for i in range(start, min(start + 2000, n))
            ],
            wait=True,
        )


def points_of(client: QdrantClient, name: str) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    offset = None
    while True:
        page, offset = client.scroll(
            name, limit=1000, offset=offset, with_vectors=True, with_payload=True
        )
        out.update({p.id: (p.payload, p.vector) for p in page})
        if offset is None:
            return out


def test_qdrant_client_makes_lists_recovers_and_deletes(
    client: QdrantClient, server: ServerProcess
) -> None:
    make(client, "docs", 300)
    client.create_payload_index("docs", "city", models.PayloadSchemaType.KEYWORD)
    client.delete("docs", points_selector=models.PointIdsList(points=[1, 2, 3]))
    made = client.create_snapshot("docs")
    assert made is not None and made.name.startswith("docs-") and made.size > 0
    assert client.list_snapshots("docs") == [made]

    url = f"{server.url}{Q}/docs/snapshots/{made.name}"
    status, raw = _get(url)
    assert status == 200 and hashlib.sha256(raw).hexdigest() == made.checksum
    assert client.recover_snapshot("copy", location=url, checksum=made.checksum) is True

    assert points_of(client, "copy") == points_of(client, "docs")  # vectors bit for bit
    assert len(points_of(client, "copy")) == 297
    assert (
        client.get_collection("copy").payload_schema == client.get_collection("docs").payload_schema
    )
    query = [0.3, -0.1, 0.9, 0.2]
    city = models.Filter(
        must=[models.FieldCondition(key="city", match=models.MatchValue(value="Rome"))]
    )
    for name in ("docs", "copy"):
        hits = client.query_points(name, query=query, query_filter=city, limit=5).points
        assert [h.id for h in hits] == [
            h.id
            for h in client.query_points("docs", query=query, query_filter=city, limit=5).points
        ]
    assert client.list_snapshots("copy") == []  # files belong to the collection they came from

    assert client.delete_snapshot("docs", made.name) is True
    assert client.list_snapshots("docs") == []
    assert _get(url)[0] == 404
    with pytest.raises(UnexpectedResponse) as err:
        client.delete_snapshot("docs", made.name)
    assert err.value.status_code == 404
    with pytest.raises(UnexpectedResponse) as err:
        client.create_snapshot("nope")
    assert err.value.status_code == 404


async def test_snapshots_asked_at_once_are_each_made_whole(
    client: QdrantClient, server: ServerProcess
) -> None:
    """Calls with no write between them are cut from one node snapshot, so name one
    file: it is cut once, whole, its checksum its own (they wrote it all at once)."""
    make(client, "docs", 3000)
    async with aiohttp.ClientSession() as s:

        async def snap(path: str) -> tuple[int, Any]:
            async with s.post(server.url + path) as r:
                return r.status, await r.json()

        for path in (f"{Q}/docs/snapshots", "/qdrant/snapshots"):
            for round_ in range(2):
                answers = await asyncio.gather(*(snap(path) for _ in range(8)))
                assert all(status == 200 for status, _ in answers), answers
                names = {got["result"]["name"] for _, got in answers}
                assert len(names) == 1, names
                client.upsert("docs", [models.PointStruct(id=round_, vector=[1, 2, 3, 4])])
    listed = [*client.list_snapshots("docs"), *client.list_full_snapshots()]
    assert len(listed) == 4
    for made in listed:
        full = made.name.startswith("full-")
        url = (
            f"{server.url}/qdrant/snapshots/{made.name}"
            if full
            else f"{server.url}{Q}/docs/snapshots/{made.name}"
        )
        status, raw = _get(url)
        assert status == 200 and hashlib.sha256(raw).hexdigest() == made.checksum, made.name
    assert "ERROR" not in server.log()


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


async def _upload(
    session: aiohttp.ClientSession, url: str, data: bytes, field: str = "snapshot", **query: str
) -> tuple[int, Any]:
    form = aiohttp.FormData()
    form.add_field(field, data, filename="x.snapshot", content_type="application/octet-stream")
    async with session.post(url, data=form, params=query) as r:
        return r.status, await r.json()


async def _post_raw(
    session: aiohttp.ClientSession, url: str, data: bytes, content_type: str | None
) -> tuple[int, Any]:
    """A body that is not the multipart form the upload takes."""
    headers = {} if content_type is None else {"Content-Type": content_type}
    async with session.post(
        url, data=data, headers=headers, skip_auto_headers=["Content-Type"]
    ) as r:
        return r.status, await r.json()


async def _put(session: aiohttp.ClientSession, url: str, body: Any) -> tuple[int, Any]:
    async with session.put(url, json=body) as r:
        return r.status, await r.json()


async def test_snapshot_files_made_listed_and_deleted_at_once_answer_no_500(
    client: QdrantClient, server: ServerProcess
) -> None:
    """Three clients for two seconds, each making, deleting or listing the same file (no
    write between: every make names it): a list described a file deleted meanwhile and
    a make read back one deleted at once, each a 500 (59 of 88 makes, 23 of 471 lists)."""
    make(client, "docs", 10)
    async with aiohttp.ClientSession() as s:
        seen: dict[tuple[str, int], int] = {}
        for folder in (f"{Q}/docs/snapshots", "/qdrant/snapshots"):
            async with s.post(server.url + folder) as r:
                name = (await r.json())["result"]["name"]
            end = asyncio.get_running_loop().time() + 1

            async def loop(method: str, path: str, end: float = end) -> None:
                while asyncio.get_running_loop().time() < end:
                    async with s.request(method, server.url + path) as r:
                        await r.read()
                        key = (method, r.status)
                        seen[key] = seen.get(key, 0) + 1

            await asyncio.gather(
                loop("POST", folder), loop("DELETE", f"{folder}/{name}"), loop("GET", folder)
            )
    assert {status for _, status in seen} <= {200, 404}, seen
    assert seen.get(("DELETE", 200), 0) > 0 and seen.get(("POST", 200), 0) > 0, seen


async def test_uploads_replace_the_collection_and_bad_ones_change_nothing(
    client: QdrantClient, server: ServerProcess, tmp_path: Path
) -> None:
    make(client, "src", 500, seed=1)
    make(client, "dst", 40, dim=3, seed=2)
    made = client.create_snapshot("src")
    assert made is not None
    status, good = _get(f"{server.url}{Q}/src/snapshots/{made.name}")
    assert status == 200
    before = points_of(client, "dst")
    base = f"{server.url}{Q}/dst/snapshots"
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0x10
    (tmp_path / "outside.snapshot").write_bytes(good)
    async with aiohttp.ClientSession() as session:
        refused = [
            await _upload(session, base + "/upload", good[:4096]),
            await _upload(session, base + "/upload", bytes(flipped)),
            await _upload(session, base + "/upload", b"not a tar at all"),
            await _upload(session, base + "/upload", good, checksum="0" * 64),
            await _upload(session, base + "/upload", good, field="file"),
            await _upload(session, base + "/upload", good, priority="first"),
            await _put(session, base + "/recover", {"location": "ftp://127.0.0.1/x"}),
            await _put(session, base + "/recover", {"location": "file:///etc/passwd"}),
            await _put(
                session, base + "/recover", {"location": f"file://{tmp_path}/outside.snapshot"}
            ),
            await _put(
                session, base + "/recover", {"location": f"{server.url}{Q}/src/snapshots/x"}
            ),
            await _put(session, base + "/recover", {"location": "http://127.0.0.1:1/x.snapshot"}),
            await _put(session, base + "/recover", {"location": "x", "unknown": 1}),
            await _post_raw(session, base + "/upload", good, None),
            await _post_raw(session, base + "/upload", good, "application/octet-stream"),
            await _post_raw(session, base + "/upload", b"--x\r\n", "multipart/form-data"),
        ]
        for status, body in refused:
            assert status == 400 and "error" in body["status"], body
        assert points_of(client, "dst") == before
        assert [c.name for c in client.get_collections().collections] == ["dst", "src"]

        status, body = await _upload(session, base + "/upload", good, checksum=made.checksum)
        assert (status, body["result"]) == (200, True)
    assert points_of(client, "dst") == points_of(client, "src")
    assert client.get_collection("dst").config.params.vectors.size == 4  # type: ignore[union-attr]
    leftovers = list((server.data_dir / "collection-snapshots").glob(".tmp-*"))
    assert leftovers == []


def _sequence(server: ServerProcess) -> int:
    status, stats = server.request("GET", "/stats")
    assert status == 200
    return int(stats["sequence"])


async def test_kill_9_during_a_recovery_leaves_the_old_collection_and_a_finished_one_stays(
    client: QdrantClient, server: ServerProcess
) -> None:
    make(client, "big", 40_000, dim=48, seed=3)
    make(client, "dst", 30, seed=4)
    made = client.create_snapshot("big")
    assert made is not None
    before = points_of(client, "dst")
    start = _sequence(server)
    url = f"{server.url}{Q}/dst/snapshots/recover"
    location = f"{server.url}{Q}/big/snapshots/{made.name}"

    async with aiohttp.ClientSession() as session:
        recovery = asyncio.create_task(_put(session, url, {"location": location}))
        deadline = time.monotonic() + 60
        while _sequence(server) < start + 5:  # the hidden collection is filling
            assert time.monotonic() < deadline and not recovery.done()
            await asyncio.sleep(0.02)
        server.kill()
        with pytest.raises(aiohttp.ClientError):
            await recovery

    server.start()
    assert points_of(client, "dst") == before
    assert [c.name for c in client.get_collections().collections] == ["big", "dst"]
    deadline = time.monotonic() + 30
    while "dropped what an unfinished recovery of 'dst'" not in server.log():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)

    assert client.recover_snapshot("dst", location=location) is True
    server.kill()  # acknowledged: it survives kill -9
    server.start()
    assert client.count("dst").count == 40_000
    assert points_of(client, "dst") == points_of(client, "big")


async def test_a_replica_follows_a_recovery(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    primary = server_factory(data_dir=tmp_path / "p").start()
    replica = server_factory(
        data_dir=tmp_path / "r", args=["--role", "replica", "--primary-url", primary.url]
    ).start()
    on_primary = QdrantClient(
        url=primary.url, prefix="qdrant", timeout=60, check_compatibility=False
    )
    on_replica = QdrantClient(
        url=replica.url, prefix="qdrant", timeout=60, check_compatibility=False
    )
    try:
        make(on_primary, "src", 2500, seed=5)
        make(on_primary, "dst", 10, seed=6)
        made = on_primary.create_snapshot("src")
        assert made is not None
        location = f"{primary.url}{Q}/src/snapshots/{made.name}"
        with pytest.raises(UnexpectedResponse):  # a replica takes no writes
            on_replica.recover_snapshot("dst", location=location)
        assert on_primary.recover_snapshot("dst", location=location) is True
        want = points_of(on_primary, "src")
        deadline = time.monotonic() + 30
        while _sequence(replica) < _sequence(primary):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        assert points_of(on_replica, "dst") == want
        assert [c.name for c in on_replica.get_collections().collections] == ["dst", "src"]
    finally:
        on_primary.close()
        on_replica.close()


def _restore(file: Path, data_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "vectorizer",
        "restore",
        str(file),
        "--data-dir",
        str(data_dir),
    ]
    return subprocess.run([*command, *extra], capture_output=True, text=True, timeout=120)


def test_a_full_snapshot_restores_a_node(
    client: QdrantClient, server: ServerProcess, server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    make(client, "one", 400, seed=7)
    make(client, "two", 50, dim=3, seed=8)
    client.create_payload_index("one", "i", models.PayloadSchemaType.INTEGER)
    client.update_collection_aliases(
        change_aliases_operations=[
            models.CreateAliasOperation(
                create_alias=models.CreateAlias(collection_name="two", alias_name="second")
            )
        ]
    )
    made = client.create_full_snapshot()
    assert made is not None and made.name.startswith("full-")
    assert client.list_full_snapshots() == [made]
    status, raw = _get(f"{server.url}/qdrant/snapshots/{made.name}")
    assert status == 200 and hashlib.sha256(raw).hexdigest() == made.checksum
    want = {name: points_of(client, name) for name in ("one", "two")}
    client.delete("one", points_selector=models.PointIdsList(points=[5, 6]))  # after the file

    file = tmp_path / "full.snapshot"
    file.write_bytes(raw)
    flipped = bytearray(raw)
    flipped[len(raw) // 3] ^= 0x04
    (tmp_path / "bad.snapshot").write_bytes(bytes(flipped))
    target = tmp_path / "restored"
    refused = _restore(tmp_path / "bad.snapshot", target)
    assert refused.returncode == 2 and "vectorizer:" in refused.stderr, refused
    assert not (target / "snapshots").exists() or not any((target / "snapshots").iterdir())
    done = _restore(file, target)
    assert done.returncode == 0, done.stderr
    again = _restore(file, target)  # holds data now
    assert again.returncode == 2 and "holds data" in again.stderr
    by_env = subprocess.run(  # no --data-dir: the one `vectorizer serve` would use
        [sys.executable, "-m", "vectorizer", "restore", str(file)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "VECTORIZER_DATA_DIR": str(target)},
        cwd=tmp_path,
    )
    assert by_env.returncode == 2 and "holds data" in by_env.stderr, by_env.stderr

    node = server_factory(data_dir=target).start()
    other = QdrantClient(url=node.url, prefix="qdrant", timeout=60, check_compatibility=False)
    try:
        assert {name: points_of(other, name) for name in ("one", "two")} == want
        assert other.get_collection("one").payload_schema == {
            "i": models.PayloadIndexInfo(
                data_type=models.PayloadSchemaType.INTEGER, points=want_i(want)
            )
        }
        assert [a.alias_name for a in other.get_aliases().aliases] == ["second"]
        other.delete("one", points_selector=models.PointIdsList(points=[7]))
    finally:
        other.close()
    assert node.terminate() == 0
    assert (target / "replication.json").exists()  # its history describes the data replaced
    assert _restore(file, target, "--replace").returncode == 0  # wiped: the writes since go
    assert not (target / "replication.json").exists()
    node.start()
    other = QdrantClient(url=node.url, prefix="qdrant", timeout=60, check_compatibility=False)
    try:
        assert points_of(other, "one") == want["one"]
    finally:
        other.close()
    assert client.delete_full_snapshot(made.name) is True
    assert client.list_full_snapshots() == []


# Runs `vectorizer restore` with an audit hook that logs each call by which it changes
# the data directory (os.rename, os.remove and os.rmdir: Python raises these audit events
# before the system call, for shutil.rmtree's too) and, at the ``kill_at``-th (0: never),
# sends the process SIGKILL: killed there, it has done everything before it and nothing
# after.
_KILLED_AT = """
import os, signal, sys
log, kill_at = sys.argv[1], int(sys.argv[2])
seen = 0
def hook(event, args):
    global seen
    if event in ("os.rename", "os.remove", "os.rmdir"):
        seen += 1
        with open(log, "a") as f:
            f.write(event + "\\n")
        if seen == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
sys.addaudithook(hook)
from vectorizer.cli import main
sys.exit(main(sys.argv[3:]))
"""


def _restore_killed(
    file: Path, data_dir: Path, log: Path, kill_at: int = 0
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """`vectorizer restore --replace`, killed (SIGKILL) at its ``kill_at``-th call that
    changes the directory; and those calls, in order."""
    log.unlink(missing_ok=True)
    command = [sys.executable, "-c", _KILLED_AT, str(log), str(kill_at), "restore", str(file)]
    command += ["--data-dir", str(data_dir), "--replace"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    return done, log.read_text().split() if log.exists() else []


def test_a_restore_killed_at_any_step_leaves_the_old_data_or_the_restored(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    """kill -9 of `vectorizer restore --replace` at each call that changes the data
    directory (every rename, unlink and rmdir: ``_restore_killed``) leaves a directory
    the node serves either its old data or the restored data from, whole: never nothing.
    Once the restore is committed (the old data begins to go only then) it stays done."""
    old = tmp_path / "old"
    node = server_factory(data_dir=old).start()
    client = QdrantClient(url=node.url, prefix="qdrant", timeout=60, check_compatibility=False)
    try:
        make(client, "restored", 120, seed=1)
        made = client.create_full_snapshot()
        assert made is not None
        status, raw = _get(f"{node.url}/qdrant/snapshots/{made.name}")
        assert status == 200
        restored = {"restored": points_of(client, "restored")}
        client.delete_collection("restored")
        make(client, "old", 80, seed=2)
        held = {"old": points_of(client, "old")}
    finally:
        client.close()
    node.kill()  # (the old data partly in the log only, beside its history)
    history = (old / "replication.json").read_bytes()
    file = tmp_path / "full.snapshot"
    file.write_bytes(raw)
    probe = tmp_path / "probe"
    shutil.copytree(old, probe)
    done, calls = _restore_killed(file, probe, tmp_path / "calls")
    assert done.returncode == 0 and calls, done.stderr

    outcomes = []
    for at, call in enumerate(calls):
        data = tmp_path / f"killed-{at}"
        shutil.copytree(old, data)
        killed, _ = _restore_killed(file, data, tmp_path / "calls", at + 1)
        assert killed.returncode == -9, (at, call, killed.stderr)
        node = server_factory(data_dir=data).start()
        client = QdrantClient(url=node.url, prefix="qdrant", timeout=60, check_compatibility=False)
        try:
            names = [c.name for c in client.get_collections().collections]
            serves = {name: points_of(client, name) for name in names}
        finally:
            client.close()
        node.kill()
        assert serves in (held, restored), (at, call, names)
        outcomes.append("restored" if serves == restored else "old")
        if serves == restored:  # (the history of the old data went with it: a new one)
            assert (data / "replication.json").read_bytes() != history
    assert outcomes[0] == "old" and outcomes[-1] == "restored", outcomes
    assert outcomes == sorted(outcomes, key=("old", "restored").index), outcomes


def test_a_snapshot_past_the_sequences_a_node_takes_is_refused(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    """A full snapshot ending at a sequence the node could not log the next record after
    is refused (exit 2), the directory untouched; the highest it takes, 2**63 - 1, serves
    and takes writes."""
    target = tmp_path / "data"
    node = server_factory(data_dir=target).start()
    assert node.request("PUT", f"{Q}/mine", {"vectors": {"size": 2, "distance": "Dot"}})[0] == 200
    node.kill()
    before = {p: p.read_bytes() for p in target.rglob("*") if p.is_file() and p.name != "LOCK"}
    for sequence in (2**64 - 1, 2**63 - 1):
        manifest = {"format": 1, "sequence": sequence, "created_at": 0, "collections": []}
        file = tmp_path / f"{sequence}.snapshot"
        file.write_bytes(tar({"MANIFEST.json": json.dumps({**manifest, "aliases": {}}).encode()}))
        done = _restore(file, target, "--replace")
        if sequence >= 2**63:
            assert done.returncode == 2, done
            assert f"ends at sequence {sequence}, past the highest" in done.stderr, done.stderr
            after = target.rglob("*")
            assert {p: p.read_bytes() for p in after if p.is_file() and p.name != "LOCK"} == before
            continue
        assert done.returncode == 0, done.stderr
        node.start()
        assert (
            node.request("PUT", f"{Q}/next", {"vectors": {"size": 2, "distance": "Dot"}})[0] == 200
        )
        node.kill()
        node.start()
        assert node.request("GET", "/stats")[1]["sequence"] == 2**63
        assert node.request("GET", f"{Q}/next")[0] == 200


def want_i(want: dict[str, dict[Any, Any]]) -> int:
    """Points of "one" with an integer at "i"."""
    return sum(1 for payload, _ in want["one"].values() if "i" in payload)


async def test_wait_false_answers_at_once_and_works_in_the_background(
    client: QdrantClient, server: ServerProcess
) -> None:
    make(client, "src", 3000, seed=9)
    make(client, "dst", 5, seed=10)
    assert client.create_snapshot("src", wait=False) is None  # 202, accepted
    deadline = time.monotonic() + 30
    while not client.list_snapshots("src"):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    (made,) = client.list_snapshots("src")
    location = f"{server.url}{Q}/src/snapshots/{made.name}"
    assert client.recover_snapshot("copy", location=location, wait=False) is None
    want = points_of(client, "src")
    while not client.collection_exists("copy") or client.count("copy").count < 3000:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert points_of(client, "copy") == want

    before = points_of(client, "dst")
    base = f"{server.url}{Q}/dst/snapshots"
    async with aiohttp.ClientSession() as session:
        status, body = await _upload(session, base + "/upload", b"not a snapshot", wait="false")
        assert (status, body["status"], body["result"]) == (202, "accepted", None)
        while "recovery of 'dst' failed" not in server.log():  # it fails in the background
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert points_of(client, "dst") == before
        for bad in ("maybe", "1"):
            status, body = await _put(session, f"{base}/recover?wait={bad}", {"location": location})
            assert status == 400 and "wait" in body["status"]["error"], body
        async with session.post(f"{server.url}{Q}/nope/snapshots?wait=false") as r:
            assert r.status == 404  # refused at once, waited for or not
    assert list((server.data_dir / "collection-snapshots").glob(".tmp-*")) == []


async def test_a_source_api_key_goes_to_the_source_origin_only(
    client: QdrantClient, server: ServerProcess
) -> None:
    """``recover_snapshot``'s ``api_key`` is sent to the location's origin, and on a
    redirect within it, but not to another origin a redirect leads to (aiohttp sent it
    on to wherever the source redirected)."""
    make(client, "src", 50)
    made = client.create_snapshot("src")
    assert made is not None
    status, snapshot = _get(f"{server.url}{Q}/src/snapshots/{made.name}")
    assert status == 200
    seen: list[tuple[str, str | None]] = []

    async def handle(request: aiohttp.web.Request) -> aiohttp.web.StreamResponse:
        seen.append((f"{request.host}{request.path}", request.headers.get("api-key")))
        if request.path == "/moved":  # to the same origin
            raise aiohttp.web.HTTPFound("/elsewhere")
        if request.path == "/elsewhere":  # to another origin (another host name)
            raise aiohttp.web.HTTPFound(f"http://localhost:{port}/file")
        return aiohttp.web.Response(body=snapshot)

    app = aiohttp.web.Application()
    app.router.add_get("/{tail:.*}", handle)
    async with serving(app) as port, aiohttp.ClientSession() as session:
        body = {"location": f"http://127.0.0.1:{port}/moved", "api_key": "source-secret"}
        status, answer = await _put(session, f"{server.url}{Q}/copy/snapshots/recover", body)
        assert status == 200, answer
        assert seen == [
            (f"127.0.0.1:{port}/moved", "source-secret"),
            (f"127.0.0.1:{port}/elsewhere", "source-secret"),
            (f"localhost:{port}/file", None),
        ]
    assert client.count("copy").count == 50


def _shared_bits(root: Path) -> dict[str, int]:
    """Every file and directory under ``root`` that its group or others may use."""
    return {
        str(p.relative_to(root)): p.stat().st_mode & 0o077
        for p in root.rglob("*")
        if p.stat().st_mode & 0o077
    }


def test_files_in_a_premade_data_directory_are_the_nodes_only(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    """A volume's directory keeps the mode the platform gave it (0755 here), but what the
    node writes into it (log, snapshots, graphs, its history) and what a restore writes
    is the node's user's only."""
    data, restored = tmp_path / "data", tmp_path / "restored"
    for folder in (data, restored):
        folder.mkdir(mode=0o755)
        folder.chmod(0o755)
    node = server_factory(data_dir=data).start()
    client = QdrantClient(url=node.url, prefix="qdrant", timeout=60, check_compatibility=False)
    try:
        make(client, "one", 300, seed=3)
        client.create_payload_index("one", "i", models.PayloadSchemaType.INTEGER)
        assert client.create_snapshot("one") is not None
        full = client.create_full_snapshot()
        assert full is not None
        status, raw = _get(f"{node.url}/qdrant/snapshots/{full.name}")
        assert status == 200
    finally:
        client.close()
    assert node.terminate() == 0  # (a snapshot on the way out)
    (tmp_path / "full.snapshot").write_bytes(raw)
    assert _restore(tmp_path / "full.snapshot", restored).returncode == 0
    for folder in (data, restored):
        assert len(list(folder.rglob("*"))) > 5
        assert _shared_bits(folder) == {}, folder
