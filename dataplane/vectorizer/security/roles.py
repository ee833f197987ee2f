"""Roles, permissions and the principal a request acts as.

A role is a fixed set of permissions (no inheritance rules at run time: the table below
is the whole truth). A principal may be scoped to some collections; then it may only use
routes that name one of them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Permission(enum.Enum):
    PUBLIC = "public"  # liveness, readiness: no credentials ever
    METRICS = "metrics"  # /metrics: public or read, by setting
    SELF = "self"  # who am I, the API description: any principal
    READ = "read"  # get, list, count, search
    WRITE = "write"  # upsert, update, delete points
    COLLECTIONS = "collections"  # create and delete collections, snapshots
    KEYS = "keys"  # manage API keys
    REPLICATION_READ = "replication_read"  # replication status and figures
    REPLICATION_CONTROL = "replication_control"  # promote, follow, fence
    REPLICATION_STREAM = "replication_stream"  # follow this node's log


class Role(enum.Enum):
    VIEWER = "viewer"
    EDITOR = "editor"
    ADMIN = "admin"
    REPLICATION = "replication"  # the identity replicas use towards their primary


_VIEWER = frozenset({Permission.METRICS, Permission.SELF, Permission.READ})
_EDITOR = _VIEWER | {Permission.WRITE}
_ADMIN = _EDITOR | {
    Permission.COLLECTIONS,
    Permission.KEYS,
    Permission.REPLICATION_READ,
    Permission.REPLICATION_CONTROL,
    Permission.REPLICATION_STREAM,
}
_REPLICATION = frozenset(
    {Permission.SELF, Permission.REPLICATION_READ, Permission.REPLICATION_STREAM}
)

GRANTS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: _VIEWER,
    Role.EDITOR: _EDITOR,
    Role.ADMIN: _ADMIN,
    Role.REPLICATION: _REPLICATION,
}

# Node-wide permissions a collection-scoped principal still has (they reveal no
# collection: not metrics, whose labels name every collection).
SCOPE_FREE = frozenset({Permission.SELF})


@dataclass(frozen=True)
class RateLimit:
    rps: float
    burst: int


@dataclass(frozen=True)
class Principal:
    """Who a request acts as. ``id`` is what the audit log and rate limiter key on."""

    id: str
    role: Role
    kind: str  # key, bootstrap, replication, jwt, certificate, anonymous
    collections: frozenset[str] | None = None  # None: every collection
    rate_limit: RateLimit | None = None  # None: the node's default

    def granted(self, permission: Permission) -> bool:
        """Whether the role carries the permission at all (scope aside)."""
        return permission is Permission.PUBLIC or permission in GRANTS[self.role]

    def allows(self, permission: Permission, collection: str | None) -> bool:
        if permission is Permission.PUBLIC:
            return True
        if not self.granted(permission):
            return False
        if self.collections is None or permission in SCOPE_FREE:
            return True
        return collection is not None and collection in self.collections

    def describe(self) -> dict[str, object]:
        return {
            "id": self.id,
            "kind": self.kind,
            "role": self.role.value,
            "collections": None if self.collections is None else sorted(self.collections),
            "permissions": sorted(p.value for p in GRANTS[self.role]),
        }


ANONYMOUS = Principal(id="anonymous", role=Role.ADMIN, kind="anonymous")  # auth is off
