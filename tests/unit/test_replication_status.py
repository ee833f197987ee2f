"""The status a primary gives a replica receiving a full sync: ``Syncing`` while the
transfer moves (the replica beats, or more of it is sent), ``Disconnected`` once it has
not for ``disconnect_timeout_ms``. Silence alone used to make it Disconnected: a replica
says nothing until its snapshot is installed (older ones, not even beats)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from vectorizer.engine.store import Store
from vectorizer.replication.primary import PrimaryHub, ReplicaInfo, Thresholds


@pytest.fixture
def hub(tmp_path: Path) -> PrimaryHub:
    return PrimaryHub(
        Store(tmp_path),
        Thresholds(heartbeat_s=0.5, lagging_ms=1000, disconnect_s=5.0),
        node=lambda: (1, ()),
        step_down=lambda epoch: None,
        is_primary=lambda: True,
    )


def _replica(heard_s_ago: float, sent_s_ago: float, syncing: bool) -> ReplicaInfo:
    now = time.monotonic()
    info = ReplicaInfo(node_id="r", address="", syncing=syncing)
    info.last_heard, info.last_sent = now - heard_s_ago, now - sent_s_ago
    return info


def test_a_replica_in_a_full_sync_is_syncing_while_the_transfer_moves(hub: PrimaryHub) -> None:
    cases = [  # (heard from it, sent to it: seconds ago; syncing) -> status
        ((60, 1, True), "Syncing"),  # (an older replica: silent, but the transfer moves)
        ((1, 60, True), "Syncing"),  # (it beats while the snapshot comes in, or installs it)
        ((60, 6, True), "Disconnected"),  # (stalled: neither, for longer than the timeout)
        # Out of a sync only what the replica says counts: small messages (heartbeats,
        # records) go into the socket's buffers long after it stopped reading.
        ((60, 0, False), "Disconnected"),
    ]
    for (heard_s_ago, sent_s_ago, syncing), status in cases:
        info = _replica(heard_s_ago, sent_s_ago, syncing)
        hub.replicas = {"r": info}
        assert (hub.status(info), hub.connected_count()) == (status, status != "Disconnected")
    info.connected = False  # (no link: whatever it did before)
    info.syncing = True
    assert hub.status(info) == "Disconnected"
