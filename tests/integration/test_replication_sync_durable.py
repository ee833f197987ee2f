"""A snapshot a replica receives in a full sync is on disk, every file and folder of it,
before it is installed: the replica then confirms records after it (sync writes count
those confirmations), and its log was wiped by the install. The files were written and
closed without an fsync, then renamed into place: a power loss could leave the replica
with a snapshot that does not load and a log starting after it.

A power loss cannot be made here; which files were fsynced is observed at ``os.fsync``
in the replica's process by a ``sitecustomize`` module (the edge of the world: the disk).
"""

from __future__ import annotations

from pathlib import Path

from tests.integration.test_replication import FAST, all_points, caught_up, eventually, seed
from tests.servers import ServerProcess, sitecustomize
from vectorizer.client import VectorizerClient
from vectorizer.engine.snapshot import INCOMING_PREFIX

OBSERVE = """
import os

_fsync, _record = os.fsync, os.environ["FSYNCED_PATHS_FILE"]


def fsync(fd):
    _fsync(fd)
    with open(_record, "a") as out:
        out.write(os.readlink(f"/proc/self/fd/{fd}") + "\\n")


os.fsync = fsync
"""


async def test_a_snapshot_received_in_a_full_sync_is_fsynced_before_it_is_installed(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    primary = server_factory(
        data_dir=tmp_path / "p",
        args=[*FAST, "--snapshots-retained", "1", "--wal-segment-bytes", "2048"],
    ).start()
    async with VectorizerClient(primary.url) as vp:
        await vp.create_collection("c", 8)
        await vp.create_collection("d", 8, index="exact")
        await seed(vp, 300)
        await seed(vp, 100, start=5000)
        await vp.snapshot("c")  # (the log starts after it: a replica needs a full sync)
        assert (await vp.stats())["wal"]["first_sequence"] > 1
        fsynced = tmp_path / "fsynced.txt"
        replica = server_factory(
            data_dir=tmp_path / "r",
            args=[*FAST, "--role", "replica", "--primary-url", primary.url],
            env={
                **sitecustomize(tmp_path / "observe", OBSERVE),
                "FSYNCED_PATHS_FILE": str(fsynced),
            },
        ).start()
        async with VectorizerClient(replica.url) as vr:
            await eventually(lambda: caught_up(vp, vr))
            assert (await vr.replication_stats())["full_syncs"] == 1
            assert await all_points(vr, "c") == await all_points(vp, "c")
    (installed,) = [p for p in (tmp_path / "r" / "snapshots").iterdir() if p.is_dir()]
    received = installed.parent / f"{INCOMING_PREFIX}{installed.name}"
    wanted = {received} | {received / p.relative_to(installed) for p in installed.rglob("*")}
    assert len(wanted) > 5, wanted
    synced = {Path(line) for line in fsynced.read_text().splitlines()}
    assert not wanted - synced, sorted(wanted - synced)
