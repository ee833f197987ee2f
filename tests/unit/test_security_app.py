"""The security middlewares in the real app (aiohttp test client): 401/403/429, keys, audit."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import jwt
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from vectorizer.server.app import create_app, open_node
from vectorizer.settings import Settings

ADMIN = "bootstrap-admin-key-0123456789"
HS = "h" * 64
Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]


def settings(tmp_path: Path, **over: Any) -> Settings:
    base = Settings(
        data_dir=tmp_path / "data",
        auth_enabled=True,
        auth_admin_key=ADMIN,
        jwt_hs256_secret=HS,
        jwt_issuer="tests",
        snapshot_on_shutdown=False,
    )
    return replace(base, **over)


@pytest.fixture
def make_client(aiohttp_client: Any, tmp_path: Path) -> MakeClient:
    async def make(**over: Any) -> Client:
        app = create_app(settings(tmp_path, **over))

        async def start(app: web.Application) -> None:
            await open_node(app)

        app.on_startup.append(start)
        client: Client = await aiohttp_client(app)
        return client

    return make


def admin() -> dict[str, str]:
    return {"X-API-Key": ADMIN}


def key(secret: str) -> dict[str, str]:
    return {"X-API-Key": secret}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def token(role: str, **claims: Any) -> str:
    body = {"sub": "t", "role": role, "iss": "tests", "exp": time.time() + 60, **claims}
    return jwt.encode(body, HS, algorithm="HS256")


async def new_key(client: Client, role: str, **extra: Any) -> str:
    resp = await client.post(
        "/auth/keys", json={"name": role, "role": role, **extra}, headers=admin()
    )
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["secret"])


def audit_lines(tmp_path: Path) -> list[dict[str, Any]]:
    """The audit lines written so far (a last line still being written is not one yet)."""
    path = tmp_path / "data" / "audit" / "audit.jsonl"
    complete = path.read_text().split("\n")[:-1] if path.exists() else []
    return [orjson.loads(line) for line in complete]


async def wait_audit(tmp_path: Path, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    for _ in range(100):
        found = [line for line in audit_lines(tmp_path) if match(line)]
        if found:
            return found[-1]
        await asyncio.sleep(0.02)
    raise AssertionError(f"no such audit line in {audit_lines(tmp_path)}")


async def test_no_credentials_is_401_with_headers_and_nothing_about_the_node(
    make_client: MakeClient, tmp_path: Path
) -> None:
    client = await make_client()
    resp = await client.get("/collections")
    assert resp.status == 401
    body = await resp.json()
    assert body["error"]["code"] == "unauthenticated" and body["request_id"]
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert "X-Vectorizer-Role" not in resp.headers
    for name, value in {
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Cache-Control": "no-store",
        "Server": "vectorizer",
    }.items():
        assert resp.headers[name] == value
    assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
    assert "Strict-Transport-Security" not in resp.headers  # no TLS here
    line = await wait_audit(tmp_path, lambda x: x["event"] == "authentication_failed")
    assert line["route"] == "/collections" and line["reason"] == "no credentials"
    assert line["status"] == 401 and line["source"] == "127.0.0.1"


async def test_probes_and_metrics(make_client: MakeClient) -> None:
    client = await make_client()
    for path in ("/health", "/ready", "/metrics"):
        assert (await client.get(path)).status == 200, path
    private = await make_client(metrics_public=False)
    assert (await private.get("/metrics")).status == 401
    viewer = await new_key(private, "viewer")
    assert (await private.get("/metrics", headers=bearer(viewer))).status == 200  # key as bearer


async def test_unknown_routes_need_credentials_first(make_client: MakeClient) -> None:
    client = await make_client()
    assert (await client.get("/no/such/thing")).status == 401
    assert (await client.get("/no/such/thing", headers=admin())).status == 404
    assert (await client.patch("/collections", headers=admin())).status == 405


async def test_roles(make_client: MakeClient, tmp_path: Path) -> None:
    client = await make_client()
    assert (
        await client.post("/collections", json={"name": "c", "dimension": 2}, headers=admin())
    ).status == 201
    viewer, editor = await new_key(client, "viewer"), await new_key(client, "editor")
    point = {"vectors": [{"id": 1, "vector": [1.0, 0.0]}]}
    search = {"vector": [1.0, 0.0]}

    assert (
        await client.post("/collections/c/vectors", json=point, headers=key(viewer))
    ).status == 403
    assert (
        await client.post("/collections/c/search", json=search, headers=key(viewer))
    ).status == 200
    assert (
        await client.post("/collections/c/vectors", json=point, headers=key(editor))
    ).status == 200
    for headers in (key(viewer), key(editor)):
        for method, path, body in (
            ("POST", "/auth/keys", {"name": "x", "role": "admin"}),
            ("GET", "/auth/keys", None),
            ("POST", "/collections", {"name": "d", "dimension": 2}),
            ("DELETE", "/collections/c", None),
            ("POST", "/collections/c/snapshot", None),
            ("POST", "/replication/promote", {"epoch": 9}),
            ("POST", "/replication/fence", {}),
            ("GET", "/replication/stream", None),
            ("PUT", "/qdrant/collections/q", {"vectors": {"size": 2, "distance": "Cosine"}}),
        ):
            resp = await client.request(method, path, json=body, headers=headers)
            assert resp.status == 403, (method, path, await resp.text())
    keys = await (await client.get("/auth/keys", headers=admin())).json()
    assert keys["count"] == 2  # the escalation attempts created nothing
    assert [
        c["name"]
        for c in (await (await client.get("/collections", headers=admin())).json())["collections"]
    ] == ["c"]
    line = await wait_audit(
        tmp_path, lambda x: x["event"] == "authorization_denied" and x["route"] == "/auth/keys"
    )
    assert line["role"] in ("viewer", "editor") and line["principal"].startswith("key:")
    assert "secret" not in orjson.dumps(audit_lines(tmp_path)).decode()


async def test_qdrant_routes_answer_in_their_shape(make_client: MakeClient) -> None:
    client = await make_client()
    resp = await client.get("/qdrant/collections")
    assert resp.status == 401
    assert (await resp.json())["status"]["error"].startswith("unauthenticated")
    resp = await client.get(
        "/qdrant/collections", headers={"api-key": ADMIN}
    )  # qdrant-client's header
    assert resp.status == 200


async def test_scoped_keys(make_client: MakeClient) -> None:
    client = await make_client()
    for name in ("a", "b"):
        await client.post("/collections", json={"name": name, "dimension": 2}, headers=admin())
    scoped = key(await new_key(client, "editor", collections=["a"]))
    point = {"vectors": [{"id": 1, "vector": [1.0, 0.0]}]}
    assert (await client.post("/collections/a/vectors", json=point, headers=scoped)).status == 200
    assert (await client.post("/collections/b/vectors", json=point, headers=scoped)).status == 403
    assert (
        await client.get("/collections", headers=scoped)
    ).status == 403  # lists every collection
    batch = {"queries": [{"vector": [1.0, 0.0]}]}
    ok = await client.post("/batch_search", json={"collection": "a", **batch}, headers=scoped)
    assert ok.status == 200
    no = await client.post("/batch_search", json={"collection": "b", **batch}, headers=scoped)
    assert no.status == 403
    garbled = b'{"collection": "\xff"}'  # not UTF-8: no collection to check (not a 500)
    bad = await client.post("/batch_search", data=garbled, headers=scoped)
    assert bad.status == 403, await bad.text()  # as for any body naming no collection
    assert (await client.get("/auth/whoami", headers=scoped)).status == 200
    admin_a = key(await new_key(client, "admin", collections=["a"]))
    assert (
        await client.post("/collections", json={"name": "c", "dimension": 2}, headers=admin_a)
    ).status == 403
    assert (await client.get("/auth/keys", headers=admin_a)).status == 403


async def test_key_lifecycle(make_client: MakeClient, tmp_path: Path) -> None:
    client = await make_client()
    resp = await client.post("/auth/keys", json={"name": "svc", "role": "viewer"}, headers=admin())
    created = await resp.json()
    secret, key_id = created["secret"], created["key"]["id"]
    me = await (await client.get("/auth/whoami", headers=key(secret))).json()
    assert me["id"] == f"key:{key_id}" and me["role"] == "viewer" and "read" in me["permissions"]
    listed = await (await client.get("/auth/keys", headers=admin())).json()
    assert secret not in orjson.dumps(listed).decode() and "digest" not in listed["keys"][0]
    assert (await client.get(f"/auth/keys/{key_id}", headers=admin())).status == 200
    rotated = await (await client.post(f"/auth/keys/{key_id}/rotate", headers=admin())).json()
    assert (await client.get("/collections", headers=key(secret))).status == 401
    assert (await client.get("/collections", headers=key(rotated["secret"]))).status == 200
    assert (await client.delete(f"/auth/keys/{key_id}", headers=admin())).status == 200
    assert (await client.get("/collections", headers=key(rotated["secret"]))).status == 401
    missing = await client.delete(f"/auth/keys/{key_id}", headers=admin())
    assert missing.status == 404 and (await missing.json())["error"]["code"] == "key_not_found"
    line = await wait_audit(tmp_path, lambda x: x["route"] == "/auth/keys/{key_id}/rotate")
    assert line["target"] == key_id and line["principal"] == "bootstrap-admin"
    assert secret not in (tmp_path / "data" / "audit" / "audit.jsonl").read_text()


async def test_bearer_tokens(make_client: MakeClient, tmp_path: Path) -> None:
    client = await make_client()
    assert (await client.get("/collections", headers=bearer(token("viewer")))).status == 200
    expired = token("admin", exp=time.time() - 60)
    resp = await client.get("/collections", headers=bearer(expired))
    assert resp.status == 401 and "expired" in (await resp.json())["error"]["message"]
    forged = jwt.encode(
        {"sub": "x", "role": "admin", "iss": "tests", "exp": time.time() + 60},
        "f" * 64,
        algorithm="HS256",
    )
    assert (await client.get("/collections", headers=bearer(forged))).status == 401
    assert (
        await client.post(
            "/auth/keys", json={"name": "x", "role": "admin"}, headers=bearer(token("editor"))
        )
    ).status == 403
    line = await wait_audit(tmp_path, lambda x: x.get("reason") == "bad signature")
    assert line["event"] == "authentication_failed"


async def test_rate_limit(make_client: MakeClient, tmp_path: Path) -> None:
    client = await make_client(rate_limit_rps=1.0, rate_limit_burst=3)
    secret = await new_key(client, "viewer")  # (the node's limit)
    own = await new_key(client, "editor", rate_limit_rps=100)
    statuses = [(await client.get("/collections", headers=key(secret))).status for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    resp = await client.get("/collections", headers=key(secret))
    assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 1
    assert resp.headers["X-RateLimit-Limit"] == "1" and resp.headers["X-RateLimit-Remaining"] == "0"
    assert (await resp.json())["error"]["code"] == "rate_limited"
    assert (await client.get("/collections", headers=key(own))).status == 200  # its own bucket
    assert (await client.get("/health")).status == 200  # probes are never limited
    for _ in range(5):  # the operator's key is not held to the node's limit
        resp = await client.get("/collections", headers=admin())
        assert resp.status == 200 and "X-RateLimit-Limit" not in resp.headers
    line = await wait_audit(tmp_path, lambda x: x["event"] == "rate_limited")
    assert line["role"] == "viewer" and line["status"] == 429


async def test_hardening(make_client: MakeClient) -> None:
    client = await make_client(max_json_depth=8)
    await client.post("/collections", json={"name": "c", "dimension": 2}, headers=admin())
    deep = {"vectors": [{"id": 1, "vector": [1.0, 0.0], "payload": {"a": [[[[[[[[1]]]]]]]]}}]}
    resp = await client.post("/collections/c/vectors", json=deep, headers=admin())
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "json_too_deep"
    resp = await client.post("/collections/c/vectors", data=b"{[", headers=admin())
    assert resp.status == 400 and "Traceback" not in await resp.text()


async def test_a_route_missing_from_the_table_is_refused(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    app = create_app(settings(tmp_path))

    async def secret(request: web.Request) -> web.Response:
        return web.Response(text="should never be seen")

    app.router.add_get("/secret", secret)
    client = await aiohttp_client(app)
    resp = await client.get("/secret", headers=admin())
    assert resp.status == 403 and "no permission" in (await resp.json())["error"]["message"]


async def test_auth_off_changes_nothing_but_headers(make_client: MakeClient) -> None:
    client = await make_client(auth_enabled=False, auth_admin_key="")
    resp = await client.post("/collections", json={"name": "c", "dimension": 2})
    assert resp.status == 201 and resp.headers["X-Content-Type-Options"] == "nosniff"
    assert (
        "X-RateLimit-Limit" not in resp.headers and resp.headers["X-Vectorizer-Role"] == "primary"
    )
    me = await (await client.get("/auth/whoami")).json()
    assert me["id"] == "anonymous"
