"""``vectorizer restore`` refuses a full snapshot file whose manifest names what no node
writes (a collection called ``../../x`` or ``5``, a file outside its folder, a device),
at once, with one line and exit status 2, leaving no data directory behind; a node
started from a genuine one serves as before."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from tests.servers import ServerProcess
from tests.tarballs import tar


def _restore(file: Path, data_dir: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "vectorizer", "restore", str(file), "--data-dir"]
    return subprocess.run([*command, str(data_dir)], capture_output=True, text=True, timeout=60)


def _members(raw: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(raw)) as archive:
        return {m.name: archive.extractfile(m).read() for m in archive}  # type: ignore[union-attr]


def _crafted(good: dict[str, bytes], change: Callable[[dict[str, Any]], None]) -> bytes:
    manifest = orjson.loads(good["MANIFEST.json"])
    change(manifest)
    return tar({**good, "MANIFEST.json": orjson.dumps(manifest)})


def test_restore_refuses_names_no_node_writes(
    server: ServerProcess, server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    assert server.request("POST", "/collections", {"name": "c", "dimension": 4})[0] < 300
    points = [{"id": i, "vector": [i, 1, 0, 0]} for i in range(20)]
    assert server.request("PUT", "/qdrant/collections/c/points", {"points": points})[0] == 200
    status, made = server.request("POST", "/qdrant/snapshots")
    assert status == 200, made
    with urllib.request.urlopen(f"{server.url}/qdrant/snapshots/{made['result']['name']}") as r:
        good = _members(r.read())

    def name(value: Any) -> Callable[[dict[str, Any]], None]:
        return lambda m: m["collections"][0].__setitem__("name", value)

    def file(path: str) -> Callable[[dict[str, Any]], None]:
        return lambda m: m["collections"][0]["files"].__setitem__(path, "0" * 64)

    cases = {
        "a name with a path": name("../../ESCAPED"),
        "a name that is a number": name(5),
        "the name '..'": name(".."),
        "a device outside": file("../" * 20 + "dev/zero"),
        "a file elsewhere": file("/etc/hostname"),
        "an alias with a path": lambda m: m.__setitem__("aliases", {"../a": "c"}),
    }
    for what, change in cases.items():
        bad = tmp_path / "bad.snapshot"
        bad.write_bytes(_crafted(good, change))
        target = tmp_path / "restored"
        done = _restore(bad, target)
        assert done.returncode == 2, (what, done)
        assert done.stderr.startswith("vectorizer: ") and done.stderr.count("\n") == 1, done
        assert not target.exists(), what
    assert not (tmp_path / "ESCAPED").exists()

    ok = tmp_path / "ok.snapshot"
    ok.write_bytes(tar(good))
    assert _restore(ok, tmp_path / "restored").returncode == 0
    node = server_factory(data_dir=tmp_path / "restored").start()
    status, listed = node.request("GET", "/collections")
    assert status == 200 and "c" in str(listed), listed
    assert node.terminate() == 0
