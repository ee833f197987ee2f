"""Tell clients how fresh this node's data is (replicas may lag their primary)."""

from __future__ import annotations

from aiohttp import web

from vectorizer.replication.manager import ReplicationManager


def add_staleness_headers(response: web.StreamResponse, manager: ReplicationManager) -> None:
    response.headers.update(staleness_headers(manager))


def staleness_headers(manager: ReplicationManager) -> list[tuple[str, str]]:
    """The node's role and sequence, and a replica's lag: none of them until the node
    has loaded its replication state (``manager.started``). Before, its role is the
    settings' placeholder (a restarted replica said ``primary``) and its sequence counts
    up through the replay of its log; /metrics leaves them out as well."""
    if not manager.started:
        return []
    headers = [
        ("X-Vectorizer-Role", str(manager.state.role)),  # a StrEnum: its value, as text
        ("X-Vectorizer-Sequence", str(manager.store.sequence)),
    ]
    ops, ms = manager.lag()
    if ops is not None and ms is not None:
        headers.append(("X-Vectorizer-Lag-Operations", str(ops)))
        headers.append(("X-Vectorizer-Lag-Ms", f"{ms:.0f}"))
    return headers
