"""The route → permission table and the role grants: complete, and strict where it matters."""

from __future__ import annotations

from pathlib import Path

import pytest

from vectorizer.security.permissions import RULES, UNMATCHED, rule_for
from vectorizer.security.roles import GRANTS, Permission, Principal, Role
from vectorizer.server.app import create_app
from vectorizer.settings import Settings

P = Permission


def registered_routes(tmp_path: Path) -> set[tuple[str, str]]:
    app = create_app(Settings(data_dir=tmp_path / "data"))
    out = set()
    for route in app.router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        out.add((route.method, route.resource.canonical))
    return out


def test_every_registered_route_has_a_permission(tmp_path: Path) -> None:
    routes = registered_routes(tmp_path)
    missing = sorted(r for r in routes if rule_for(*r) is None)
    assert not missing, f"routes without an entry in security/permissions.py: {missing}"
    stale = sorted(set(RULES) - routes)
    assert not stale, f"permission entries for routes that do not exist: {stale}"


def test_head_follows_get_and_unknown_routes_need_a_credential() -> None:
    assert rule_for("HEAD", "/collections") == rule_for("GET", "/collections")
    assert rule_for("GET", None) == UNMATCHED and UNMATCHED.permission is P.SELF
    assert rule_for("PATCH", "/collections") is None


def test_only_probes_are_public(tmp_path: Path) -> None:
    public = {r for r, rule in RULES.items() if rule.permission is P.PUBLIC}
    assert public == {
        ("GET", "/health"),
        ("GET", "/ready"),
        ("GET", "/qdrant/healthz"),  # (Qdrant's probes, public in Qdrant too)
        ("GET", "/qdrant/livez"),
        ("GET", "/qdrant/readyz"),
    }
    assert RULES[("GET", "/metrics")].permission is P.METRICS


@pytest.mark.parametrize(
    ("route", "permission"),
    [
        (("POST", "/collections/{name}/vectors"), P.WRITE),
        (("PUT", "/qdrant/collections/{name}/points"), P.WRITE),
        (("POST", "/qdrant/collections/{name}/points/payload/clear"), P.WRITE),
        (("POST", "/qdrant/collections/{name}/points/search"), P.READ),
        (("POST", "/qdrant/collections/{name}/points/scroll"), P.READ),
        (("POST", "/collections/{name}/search"), P.READ),
        (("POST", "/collections"), P.COLLECTIONS),
        (("PUT", "/qdrant/collections/{name}"), P.COLLECTIONS),
        (("DELETE", "/qdrant/collections/{name}"), P.COLLECTIONS),
        (("POST", "/collections/{name}/snapshot"), P.COLLECTIONS),
        (("POST", "/auth/keys"), P.KEYS),
        (("POST", "/replication/promote"), P.REPLICATION_CONTROL),
        (("GET", "/replication/stream"), P.REPLICATION_STREAM),
    ],
)
def test_table_entries(route: tuple[str, str], permission: Permission) -> None:
    rule = rule_for(*route)
    assert rule is not None and rule.permission is permission


def test_collection_is_located_for_scoped_callers() -> None:
    for (_, path), rule in RULES.items():
        if "{name}" in path:
            assert rule.path, path
    assert RULES[("POST", "/batch_search")].body == "collection"
    assert RULES[("POST", "/collections")].body == "name"


def test_roles_are_strictly_nested() -> None:
    viewer, editor, admin = (GRANTS[r] for r in (Role.VIEWER, Role.EDITOR, Role.ADMIN))
    assert viewer < editor < admin
    assert P.WRITE not in viewer and P.WRITE in editor
    assert not ({P.KEYS, P.COLLECTIONS, P.REPLICATION_CONTROL} & editor)
    replication = GRANTS[Role.REPLICATION]
    assert replication == {P.SELF, P.REPLICATION_READ, P.REPLICATION_STREAM}


def test_scoped_principals() -> None:
    p = Principal("key:x", Role.EDITOR, "key", collections=frozenset({"a"}))
    assert p.allows(P.WRITE, "a") and p.allows(P.READ, "a")
    assert not p.allows(P.WRITE, "b") and not p.allows(P.READ, None)
    assert p.allows(P.SELF, None)
    assert not p.allows(P.METRICS, None)  # the metrics' labels name every collection
    assert not p.allows(P.COLLECTIONS, "a")  # an editor, scope or not
    admin = Principal("key:y", Role.ADMIN, "key", collections=frozenset({"a"}))
    assert admin.allows(P.COLLECTIONS, "a") and not admin.allows(P.KEYS, None)
