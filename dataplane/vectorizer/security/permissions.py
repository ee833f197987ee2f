"""The route → permission table: the single place that says who may call what.

Every route the server registers must have an entry (a unit test walks the router), and
a route without one is refused at run time rather than left open. ``collection`` says
where the collection a call targets is named, for collection-scoped principals: in the
path (``{name}``), in a field of the JSON body, or nowhere (a node-wide call).
"""

from __future__ import annotations

from dataclasses import dataclass

from vectorizer.security.roles import Permission

P = Permission


@dataclass(frozen=True)
class Rule:
    permission: Permission
    path: bool = False  # the collection is the path's {name}
    body: str | None = None  # the collection is this field of the JSON body


def _path(p: Permission) -> Rule:
    return Rule(p, path=True)


def _node(p: Permission) -> Rule:
    return Rule(p)


_NATIVE: dict[tuple[str, str], Rule] = {
    ("GET", "/health"): _node(P.PUBLIC),
    ("GET", "/ready"): _node(P.PUBLIC),
    ("GET", "/metrics"): _node(P.METRICS),
    ("GET", "/stats"): _node(P.READ),
    ("GET", "/openapi.json"): _node(P.SELF),
    ("GET", "/collections"): _node(P.READ),
    ("POST", "/collections"): Rule(P.COLLECTIONS, body="name"),
    ("GET", "/collections/{name}"): _path(P.READ),
    ("DELETE", "/collections/{name}"): _path(P.COLLECTIONS),
    ("POST", "/collections/{name}/snapshot"): _path(P.COLLECTIONS),
    ("PUT", "/collections/{name}/payload_indexes/{key}"): _path(P.WRITE),
    ("DELETE", "/collections/{name}/payload_indexes/{key}"): _path(P.WRITE),
    ("POST", "/collections/{name}/vectors"): _path(P.WRITE),
    ("GET", "/collections/{name}/vectors"): _path(P.READ),
    ("POST", "/collections/{name}/vectors/delete"): _path(P.WRITE),
    ("GET", "/collections/{name}/vectors/{id}"): _path(P.READ),
    ("PUT", "/collections/{name}/vectors/{id}"): _path(P.WRITE),
    ("DELETE", "/collections/{name}/vectors/{id}"): _path(P.WRITE),
    ("POST", "/collections/{name}/count"): _path(P.READ),
    ("POST", "/collections/{name}/search"): _path(P.READ),
    ("POST", "/batch_search"): Rule(P.READ, body="collection"),
    ("GET", "/aliases"): _node(P.READ),
    ("POST", "/aliases"): _node(P.COLLECTIONS),
}

_AUTH: dict[tuple[str, str], Rule] = {
    ("GET", "/auth/whoami"): _node(P.SELF),
    ("GET", "/auth/keys"): _node(P.KEYS),
    ("POST", "/auth/keys"): _node(P.KEYS),
    ("GET", "/auth/keys/{key_id}"): _node(P.KEYS),
    ("POST", "/auth/keys/{key_id}/rotate"): _node(P.KEYS),
    ("DELETE", "/auth/keys/{key_id}"): _node(P.KEYS),
}

_REPLICATION: dict[tuple[str, str], Rule] = {
    ("GET", "/replication/status"): _node(P.REPLICATION_READ),
    ("GET", "/replication/stats"): _node(P.REPLICATION_READ),
    ("GET", "/replication/replicas"): _node(P.REPLICATION_READ),
    ("POST", "/replication/promote"): _node(P.REPLICATION_CONTROL),
    ("POST", "/replication/follow"): _node(P.REPLICATION_CONTROL),
    ("POST", "/replication/fence"): _node(P.REPLICATION_CONTROL),
    ("GET", "/replication/stream"): _node(P.REPLICATION_STREAM),
}

_Q = "/qdrant/collections/{name}"
_QDRANT: dict[tuple[str, str], Rule] = {
    ("GET", "/qdrant"): _node(P.SELF),
    ("GET", "/qdrant/"): _node(P.SELF),
    ("GET", "/qdrant/healthz"): _node(P.PUBLIC),
    ("GET", "/qdrant/livez"): _node(P.PUBLIC),
    ("GET", "/qdrant/readyz"): _node(P.PUBLIC),
    ("GET", "/qdrant/collections"): _node(P.READ),
    ("POST", "/qdrant/collections/aliases"): _node(P.COLLECTIONS),
    ("GET", "/qdrant/aliases"): _node(P.READ),
    ("GET", _Q + "/aliases"): _path(P.READ),
    ("PUT", _Q): _path(P.COLLECTIONS),
    ("GET", _Q): _path(P.READ),
    ("PATCH", _Q): _path(P.COLLECTIONS),
    ("DELETE", _Q): _path(P.COLLECTIONS),
    ("GET", _Q + "/exists"): _path(P.READ),
    ("PUT", _Q + "/vectors/{vector_name}"): _path(P.COLLECTIONS),
    ("DELETE", _Q + "/vectors/{vector_name}"): _path(P.COLLECTIONS),
    ("PUT", _Q + "/index"): _path(P.WRITE),
    ("DELETE", _Q + "/index/{field_name}"): _path(P.WRITE),
    ("PUT", _Q + "/points"): _path(P.WRITE),
    ("POST", _Q + "/points"): _path(P.READ),
    ("GET", _Q + "/points/{id}"): _path(P.READ),
    ("POST", _Q + "/points/delete"): _path(P.WRITE),
    ("POST", _Q + "/points/payload"): _path(P.WRITE),
    ("PUT", _Q + "/points/payload"): _path(P.WRITE),
    ("POST", _Q + "/points/payload/clear"): _path(P.WRITE),
    ("POST", _Q + "/points/payload/delete"): _path(P.WRITE),
    ("PUT", _Q + "/points/vectors"): _path(P.WRITE),
    ("POST", _Q + "/points/vectors/delete"): _path(P.WRITE),
    ("POST", _Q + "/points/batch"): _path(P.WRITE),
    ("POST", _Q + "/points/scroll"): _path(P.READ),
    ("POST", _Q + "/points/count"): _path(P.READ),
    ("POST", _Q + "/points/search"): _path(P.READ),
    ("POST", _Q + "/points/search/batch"): _path(P.READ),
    ("POST", _Q + "/points/search/groups"): _path(P.READ),
    ("POST", _Q + "/points/recommend"): _path(P.READ),
    ("POST", _Q + "/points/recommend/batch"): _path(P.READ),
    ("POST", _Q + "/points/recommend/groups"): _path(P.READ),
    ("POST", _Q + "/points/discover"): _path(P.READ),
    ("POST", _Q + "/points/discover/batch"): _path(P.READ),
    ("POST", _Q + "/points/query"): _path(P.READ),
    ("POST", _Q + "/points/query/batch"): _path(P.READ),
    ("POST", _Q + "/points/query/groups"): _path(P.READ),
    ("POST", _Q + "/facet"): _path(P.READ),
    ("POST", _Q + "/points/search/matrix/pairs"): _path(P.READ),
    ("POST", _Q + "/points/search/matrix/offsets"): _path(P.READ),
    # a snapshot file holds every point: reading one is reading the collection
    ("POST", _Q + "/snapshots"): _path(P.COLLECTIONS),
    ("GET", _Q + "/snapshots"): _path(P.READ),
    ("PUT", _Q + "/snapshots/recover"): _path(P.COLLECTIONS),
    ("POST", _Q + "/snapshots/upload"): _path(P.COLLECTIONS),
    ("GET", _Q + "/snapshots/{snapshot_name}"): _path(P.READ),
    ("DELETE", _Q + "/snapshots/{snapshot_name}"): _path(P.COLLECTIONS),
    # the whole node's: no collection-scoped credential may read one
    ("POST", "/qdrant/snapshots"): _node(P.COLLECTIONS),
    ("GET", "/qdrant/snapshots"): _node(P.READ),
    ("GET", "/qdrant/snapshots/{snapshot_name}"): _node(P.READ),
    ("DELETE", "/qdrant/snapshots/{snapshot_name}"): _node(P.COLLECTIONS),
}

RULES: dict[tuple[str, str], Rule] = {**_NATIVE, **_AUTH, **_REPLICATION, **_QDRANT}

# An unknown path (404) or method (405): any valid credential first, so that anonymous
# callers learn nothing about which routes exist.
UNMATCHED = _node(P.SELF)


def rule_for(method: str, template: str | None) -> Rule | None:
    """The rule of a route (HEAD follows GET); None for a route the table does not know."""
    if template is None:
        return UNMATCHED
    return RULES.get(("GET" if method == "HEAD" else method, template))
