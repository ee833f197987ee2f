"""A write that waits for replicas (``--sync-replicas``) counts only what is on their
disks: a replica confirms a record once its own ``--wal-fsync`` policy has fsynced it
(``always``: right away; an interval: at that interval's fsync; ``never``: not at all).
Replicas confirmed what they had logged whatever their policy, so with ``never`` or an
interval a write was acknowledged as confirmed durable by a replica whose log had not
been fsynced.

Which files were fsynced is observed at ``os.fsync`` in the replica's process by a
``sitecustomize`` module (the edge of the world: the disk).
"""

from __future__ import annotations

from pathlib import Path

from tests.integration.test_replication import FAST, eventually
from tests.integration.test_replication_sync_durable import OBSERVE
from tests.servers import ServerProcess, sitecustomize
from vectorizer.client import Point, VectorizerClient
from vectorizer.errors import ReplicationTimeout


async def _connected(vp: VectorizerClient) -> bool:
    return [r["status"] for r in await vp.replicas()] == ["Connected"]


def _log_fsyncs(record: Path) -> int:
    if not record.exists():
        return 0
    return sum(1 for line in record.read_text().splitlines() if "/wal/" in line)


async def test_a_write_is_confirmed_by_a_replica_once_its_interval_fsync_covers_it(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    primary = server_factory(data_dir=tmp_path / "p", args=[*FAST, "--sync-replicas", "1"]).start()
    fsynced = tmp_path / "fsynced.txt"
    server_factory(
        data_dir=tmp_path / "r",
        args=[*FAST, "--role", "replica", "--primary-url", primary.url, "--wal-fsync", "300"],
        env={**sitecustomize(tmp_path / "observe", OBSERVE), "FSYNCED_PATHS_FILE": str(fsynced)},
    ).start()
    async with VectorizerClient(primary.url) as vp:
        await eventually(lambda: _connected(vp))
        await vp.create_collection("c", 4)
        for i in range(5):
            before = _log_fsyncs(fsynced)
            await vp.upsert("c", [Point(i, [1.0, 0.0, 0.0, float(i)])])  # (confirmed)
            assert _log_fsyncs(fsynced) > before, i  # (the replica's log fsynced between)


async def test_a_replica_that_never_fsyncs_confirms_no_write(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    args = [*FAST, "--sync-replicas", "1", "--sync-timeout-ms", "1000"]
    primary = server_factory(data_dir=tmp_path / "p", args=args).start()
    replica = server_factory(
        data_dir=tmp_path / "r",
        args=[*FAST, "--role", "replica", "--primary-url", primary.url, "--wal-fsync", "never"],
    ).start()
    async with VectorizerClient(primary.url) as vp, VectorizerClient(replica.url) as vr:
        await eventually(lambda: _connected(vp))
        try:
            await vp.create_collection("c", 4)
        except ReplicationTimeout as exc:
            assert "only 0 of 1" in str(exc), exc
        else:
            raise AssertionError("a write confirmed by a replica that never fsyncs")

        async def held() -> bool:  # (it holds the write all the same)
            return "c" in [c["name"] for c in await vr.list_collections()]

        await eventually(held)
