"""Penetration-style tests against a real node with authentication on.

Every hostile request is refused with the right status and stable code, changes
nothing (same sequence, same collections, same keys), and leaves its line in the audit
log (found by the request id the test sent).
"""

from __future__ import annotations

import asyncio
import base64
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.servers import ServerProcess

ADMIN = "pen-test-admin-key-0123456789"
HS = "k" * 64
ISSUER = "https://issuer.test"


class Node:
    """The server under attack, with a viewer, an editor and a scoped editor key."""

    def __init__(self, srv: ServerProcess, root: Path) -> None:
        self.srv, self.root = srv, root
        self.keys: dict[str, str] = {}
        self.calls, self.source = 0, "127.0.0.1"  # (the address the last call came from)

    @property
    def audit_path(self) -> Path:
        return self.srv.data_dir / "audit" / "audit.jsonl"

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        as_: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, str]:
        rid = uuid.uuid4().hex
        hdrs = {"X-Request-ID": rid, **(headers or {})}
        if as_ is not None:
            hdrs["X-API-Key"] = ADMIN if as_ == "admin" else self.keys[as_]
        # From an address of its own: the audit log writes a few refusals a second per
        # source (the rest summarized), and this module refuses hundreds from one host.
        self.calls += 1
        self.source = f"127.0.{1 + self.calls // 250}.{1 + self.calls % 250}"
        status, got = self.srv.request(method, path, body, headers=hdrs, source=self.source)
        return status, got, rid

    def audit_line(self, request_id: str) -> dict[str, Any]:
        for _ in range(100):
            if self.audit_path.exists():
                # Complete lines only: the server may be mid-way through the last one.
                for line in self.audit_path.read_text().split("\n")[:-1]:
                    doc = orjson.loads(line)
                    if doc.get("request_id") == request_id:
                        return doc  # type: ignore[no-any-return]
            time.sleep(0.02)
        raise AssertionError(f"no audit line for request {request_id}")

    def state(self) -> Any:
        return (
            self.call("GET", "/collections", as_="admin")[1],
            self.call("GET", "/collections/c/vectors?with_vector=true", as_="admin")[1],
            self.call("GET", "/stats", as_="admin")[1]["sequence"],
            [k["id"] for k in self.call("GET", "/auth/keys", as_="admin")[1]["keys"]],
        )


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory, rsa_key: rsa.RSAPrivateKey) -> Iterator[Node]:
    root = tmp_path_factory.mktemp("pen")
    pub = root / "jwt.pub"
    pub.write_bytes(
        rsa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    (root / "admin.key").write_text(ADMIN + "\n")
    (root / "jwt.secret").write_text(HS)
    srv = ServerProcess(
        data_dir=root / "data",
        args=[
            "--auth-enabled",
            "true",
            "--jwt-hs256-secret-file",
            str(root / "jwt.secret"),
            "--jwt-public-key-file",
            str(pub),
            "--jwt-issuer",
            ISSUER,
            "--max-body-bytes",
            "200000",
            "--request-body-timeout-s",
            "1",
            "--rate-limit-rps",
            "1000",
        ],
        env={"VECTORIZER_AUTH_ADMIN_KEY_FILE": str(root / "admin.key")},
    ).start()
    n = Node(srv, root)
    try:
        assert n.call("POST", "/collections", {"name": "c", "dimension": 3}, as_="admin")[0] == 201
        assert (
            n.call("POST", "/collections", {"name": "other", "dimension": 3}, as_="admin")[0] == 201
        )
        pts = {"vectors": [{"id": i, "vector": [i, 1, 2]} for i in range(5)]}
        assert n.call("POST", "/collections/c/vectors", pts, as_="admin")[0] == 200
        for name, extra in (
            ("viewer", {"role": "viewer"}),
            ("editor", {"role": "editor"}),
            ("scoped", {"role": "editor", "collections": ["other"]}),
        ):
            status, got, _ = n.call("POST", "/auth/keys", {"name": name, **extra}, as_="admin")
            assert status == 201, got
            n.keys[name] = got["secret"]
        yield n
    finally:
        srv.kill()


def _jwt(key: Any = HS, alg: str = "HS256", **claims: Any) -> str:
    body = {"sub": "mallory", "role": "admin", "iss": ISSUER, "exp": time.time() + 300, **claims}
    return jwt.encode(body, key, algorithm=alg)


def _unsigned_jwt() -> str:
    def part(d: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(d)).rstrip(b"=").decode()

    claims = {"sub": "mallory", "role": "admin", "iss": ISSUER, "exp": time.time() + 300}
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


UPSERT = {"vectors": [{"id": 99, "vector": [9, 9, 9]}]}

# (label, method, path, body, as_, headers, status, code, event)
ATTACKS: list[tuple[str, str, str, Any, str | None, dict[str, str], int, str, str]] = [
    (
        "no credentials",
        "POST",
        "/collections/c/vectors",
        UPSERT,
        None,
        {},
        401,
        "unauthenticated",
        "authentication_failed",
    ),
    (
        "wrong key, key-shaped",
        "POST",
        "/collections/c/vectors",
        UPSERT,
        None,
        {"X-API-Key": "vz_0123456789ab_" + "x" * 43},
        401,
        "unauthenticated",
        "authentication_failed",
    ),
    (
        "wrong key, random",
        "DELETE",
        "/collections/c",
        None,
        None,
        {"X-API-Key": "admin"},
        401,
        "unauthenticated",
        "authentication_failed",
    ),
    (
        "empty bearer",
        "DELETE",
        "/collections/c",
        None,
        None,
        {"Authorization": "Bearer "},
        401,
        "unauthenticated",
        "authentication_failed",
    ),
    (
        "basic auth",
        "DELETE",
        "/collections/c",
        None,
        None,
        {"Authorization": "Basic YWRtaW46YWRtaW4="},
        401,
        "unauthenticated",
        "authentication_failed",
    ),
    (
        "expired jwt",
        "DELETE",
        "/collections/c",
        None,
        None,
        _bearer(_jwt(exp=time.time() - 120)),
        401,
        "unauthenticated",
        "authentication_failed",
    ),
    (
        "forged jwt",
        "DELETE",
        "/collections/c",
        None,
        None,
        _bearer(_jwt("f" * 64)),
        401,
        "unauthenticated",
        "authentication_failed",
    ),
    (
        "alg none jwt",
        "DELETE",
        "/collections/c",
        None,
        None,
        _bearer(_unsigned_jwt()),
        401,
        "unauthenticated",
        "authentication_failed",
    ),
    (
        "wrong issuer jwt",
        "DELETE",
        "/collections/c",
        None,
        None,
        _bearer(_jwt(iss="evil")),
        401,
        "unauthenticated",
        "authentication_failed",
    ),
    (
        "viewer writes",
        "POST",
        "/collections/c/vectors",
        UPSERT,
        "viewer",
        {},
        403,
        "forbidden",
        "authorization_denied",
    ),
    (
        "viewer deletes a point",
        "DELETE",
        "/collections/c/vectors/1",
        None,
        "viewer",
        {},
        403,
        "forbidden",
        "authorization_denied",
    ),
    (
        "viewer writes via qdrant",
        "PUT",
        "/qdrant/collections/c/points",
        {"points": [{"id": 7, "vector": [1, 1, 1]}]},
        "viewer",
        {},
        403,
        "forbidden",
        "authorization_denied",
    ),
    (
        "viewer creates a collection",
        "POST",
        "/collections",
        {"name": "v", "dimension": 3},
        "viewer",
        {},
        403,
        "forbidden",
        "authorization_denied",
    ),
    (
        "editor creates a key",
        "POST",
        "/auth/keys",
        {"name": "mine", "role": "admin"},
        "editor",
        {},
        403,
        "forbidden",
        "authorization_denied",
    ),
    (
        "editor rotates a key",
        "POST",
        "/auth/keys/0123456789ab/rotate",
        None,
        "editor",
        {},
        403,
        "forbidden",
        "authorization_denied",
    ),
    (
        "editor lists keys",
        "GET",
        "/auth/keys",
        None,
        "editor",
        {},
        403,
        "forbidden",
        "authorization_denied",
    ),
    (
        "editor drops a collection",
        "DELETE",
        "/collections/c",
        None,
        "editor",
        {},
        403,
        "forbidden",
        "authorization_denied",
    ),
    (
        "editor promotes",
        "POST",
        "/replication/promote",
        {"epoch": 99},
        "editor",
        {},
        403,
        "forbidden",
        "authorization_denied",
    ),
    (
        "editor fences",
        "POST",
        "/replication/fence",
        {},
        "editor",
        {},
        403,
        "forbidden",
        "authorization_denied",
    ),
    (
        "scoped key leaves its scope",
        "POST",
        "/collections/c/vectors",
        UPSERT,
        "scoped",
        {},
        403,
        "forbidden",
        "authorization_denied",
    ),
    (
        "scoped key batch-searches outside",
        "POST",
        "/batch_search",
        {"collection": "c", "queries": [{"vector": [1, 1, 1]}]},
        "scoped",
        {},
        403,
        "forbidden",
        "authorization_denied",
    ),
    (
        "hostile name, anonymous",
        "GET",
        "/collections/..%2F..%2Fetc%2Fpasswd",
        None,
        None,
        {},
        401,
        "unauthenticated",
        "authentication_failed",
    ),
    (
        "hostile name in path",
        "DELETE",
        "/collections/..%2F..%2Fetc%2Fpasswd%0A%22event%22%3A%22forged%E2%80%AE",
        None,
        "admin",
        {},
        404,
        "collection_not_found",
        "request",
    ),
    (
        "hostile name in body",
        "POST",
        "/collections",
        {"name": "../../etc", "dimension": 3},
        "admin",
        {},
        422,
        "validation_error",
        "request",
    ),
    (
        "hostile unicode name",
        "POST",
        "/collections",
        {"name": "a\u202eb\u0000", "dimension": 3},
        "admin",
        {},
        422,
        "validation_error",
        "request",
    ),
    (
        "hostile key name",
        "POST",
        "/auth/keys",
        {"name": "x\r\nX-Injected: 1", "role": "viewer"},
        "admin",
        {},
        422,
        "validation_error",
        "request",
    ),
    (
        "hostile key id",
        "DELETE",
        "/auth/keys/..%2F..%2Fkeys.json",
        None,
        "admin",
        {},
        404,
        "key_not_found",
        "request",
    ),
    (
        "role escalation on create",
        "POST",
        "/auth/keys",
        {"name": "x", "role": "superuser"},
        "admin",
        {},
        422,
        "validation_error",
        "request",
    ),
    (
        "oversized body",
        "POST",
        "/collections/c/vectors",
        b"x" * 300_000,
        "admin",
        {},
        413,
        "payload_too_large",
        "request",
    ),
    (
        "deeply nested json",
        "POST",
        "/collections/c/vectors",
        b'{"vectors": [{"id": 5, "vector": [1,2,3], "payload": {"a": '
        + b"[" * 200
        + b"]" * 200
        + b"}}]}",
        "admin",
        {},
        400,
        "json_too_deep",
        "request",
    ),
]


@pytest.mark.parametrize(
    ("label", "method", "path", "body", "as_", "headers", "status", "code", "event"),
    ATTACKS,
    ids=[a[0] for a in ATTACKS],
)
def test_attack_is_refused_harmless_and_audited(
    node: Node,
    label: str,
    method: str,
    path: str,
    body: Any,
    as_: str | None,
    headers: dict[str, str],
    status: int,
    code: str,
    event: str,
) -> None:
    before = node.state()
    got_status, got, rid = node.call(method, path, body, as_=as_, headers=headers)
    source = node.source
    assert got_status == status, got
    if path.startswith("/qdrant"):
        assert got["status"]["error"].startswith(code + ":")
    else:
        assert got["error"]["code"] == code and got["request_id"] == rid
    assert "Traceback" not in orjson.dumps(got).decode()
    assert node.state() == before
    line = node.audit_line(rid)
    assert line["event"] == event and line["status"] == status and line["code"] == code
    assert line["source"] == source and line["method"] == method
    if as_ is not None and as_ != "admin":
        assert line["principal"].startswith("key:") and line["role"] in ("viewer", "editor")
    text = node.audit_path.read_text()
    for secret in (ADMIN, HS, *node.keys.values()):
        assert secret not in text
    assert "[9, 9, 9]" not in text and "9,9,9" not in text  # never a vector


def test_rs256_public_key_as_hs256_secret_is_refused(node: Node) -> None:
    pem = (node.root / "jwt.pub").read_bytes()
    import hashlib
    import hmac

    def part(d: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(d)).rstrip(b"=").decode()

    claims = {"sub": "m", "role": "admin", "iss": ISSUER, "exp": time.time() + 60}
    signing = f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}"
    sig = base64.urlsafe_b64encode(hmac.new(pem, signing.encode(), hashlib.sha256).digest())
    status, got, rid = node.call(
        "DELETE", "/collections/c", headers=_bearer(signing + "." + sig.rstrip(b"=").decode())
    )
    assert status == 401 and node.audit_line(rid)["reason"] == "bad signature"


def test_valid_tokens_work(node: Node, rsa_key: rsa.RSAPrivateKey) -> None:
    status, me, _ = node.call("GET", "/auth/whoami", headers=_bearer(_jwt(role="viewer")))
    assert status == 200 and me["id"] == "jwt:mallory" and me["role"] == "viewer"
    status, me, _ = node.call(
        "GET", "/auth/whoami", headers=_bearer(_jwt(rsa_key, "RS256", role="editor"))
    )
    assert status == 200 and me["role"] == "editor"


async def test_replication_stream_without_credentials(node: Node) -> None:
    async with aiohttp.ClientSession() as s:
        for headers, status in (({}, 401), ({"X-API-Key": node.keys["editor"]}, 403)):
            rid = uuid.uuid4().hex
            with pytest.raises(aiohttp.WSServerHandshakeError) as err:
                await s.ws_connect(
                    node.srv.url + "/replication/stream", headers={"X-Request-ID": rid, **headers}
                )
            assert err.value.status == status
            line = await asyncio.to_thread(node.audit_line, rid)
            assert line["route"] == "/replication/stream" and line["status"] == status
    # an admin without an upgrade: told what the route is (it was "malformed_json")
    status, got, _ = await asyncio.to_thread(node.call, "GET", "/replication/stream", as_="admin")
    assert status == 400 and got["error"]["code"] == "malformed_request", got
    assert "WebSocket" in got["error"]["message"]


def _raw_request(port: int, head: bytes, trickle: bytes, every_s: float) -> tuple[bytes, float]:
    """Send ``head``, then ``trickle`` a byte at a time; return what came back and when."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head)
        s.setblocking(False)
        answer = b""
        for b in trickle:
            try:
                s.sendall(bytes([b]))
            except OSError:
                break
            time.sleep(every_s)
            try:
                chunk = s.recv(65536)
            except BlockingIOError:
                continue
            except ConnectionResetError:  # closed while we were still sending
                return answer, time.monotonic() - started
            if not chunk:
                return answer, time.monotonic() - started
            answer += chunk
        s.setblocking(True)
        s.settimeout(5)
        try:
            while chunk := s.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
        except (TimeoutError, OSError):
            return answer, -1.0  # the server did not close the connection
        return answer, time.monotonic() - started


@pytest.mark.parametrize(
    "header",
    [
        b"X-API-Key: \xe9",
        b"api-key: vz_\xe9",
        b"Authorization: Bearer \xe9",
        b"Authorization: Bearer \xe9.\xe9.\xe9",
    ],
)
@pytest.mark.parametrize("path", [b"/collections", b"/qdrant/collections"])
def test_credentials_that_are_not_utf8_are_refused_not_failed(
    node: Node, header: bytes, path: bytes
) -> None:
    head = b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n" + header + b"\r\nConnection: close\r\n\r\n"
    answer, _ = _raw_request(node.srv.port, head, b"", 0)
    status_line, _, body = answer.partition(b"\r\n")
    assert status_line.split()[1] == b"401", answer
    assert b"unauthenticated" in body and b"Traceback" not in body
    assert "Traceback" not in node.srv.log()


def test_slow_body_is_cut_off(node: Node) -> None:
    before = node.state()
    body = orjson.dumps(UPSERT)
    rid = uuid.uuid4().hex
    head = (
        f"POST /collections/c/vectors HTTP/1.1\r\nHost: x\r\nX-API-Key: {ADMIN}\r\n"
        f"Content-Type: application/json\r\nX-Request-ID: {rid}\r\n"
        f"Content-Length: {len(body) + 1000}\r\n\r\n"
    ).encode()
    answer, took = _raw_request(node.srv.port, head, body * 10, 0.2)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert 0 < took < 5, "the connection was not closed after the 408"
    doc = orjson.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert doc["error"]["code"] == "request_timeout"
    assert node.state() == before
    assert node.audit_line(rid)["status"] == 408


def test_slow_body_without_credentials_is_refused_before_reading(node: Node) -> None:
    head = (
        b"POST /collections/c/vectors HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
    )
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", node.srv.port), timeout=5) as s:
        s.sendall(head + b'{"vectors"')
        answer = s.recv(65536)
    assert answer.startswith(b"HTTP/1.1 401") and time.monotonic() - started < 1


def test_security_headers_on_real_responses(node: Node) -> None:
    import urllib.request

    # (an application's key: the bootstrap admin key is not held to the node's limit)
    headers = {"X-API-Key": node.keys["viewer"]}
    req = urllib.request.Request(node.srv.url + "/collections", headers=headers)
    with urllib.request.urlopen(req) as r:
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["X-Frame-Options"] == "DENY"
        assert r.headers["Cache-Control"] == "no-store"
        assert r.headers["Server"] == "vectorizer"
        assert int(r.headers["X-RateLimit-Remaining"]) >= 0
        assert r.headers["X-RateLimit-Limit"] == "1000"


def test_probes_answer_strangers_without_the_nodes_state(node: Node) -> None:
    """/ready and /health answer without a credential (probes carry none) and, with auth
    on, without the node's sequence (or why it failed): the body told strangers what
    the headers hide. Callers with a credential read it at /stats."""
    for who in (None, "viewer"):
        assert node.call("GET", "/ready", as_=who)[:2] == (200, {"status": "ready"})
    assert node.call("GET", "/health")[1]["status"] == "healthy"
    assert isinstance(node.call("GET", "/stats", as_="viewer")[1]["sequence"], int)


def test_an_alias_is_allowed_what_its_collection_is(node: Node) -> None:
    def aliases(*pairs: tuple[str, str | None]) -> dict[str, Any]:
        return {
            "actions": [
                {"create_alias": {"alias_name": a, "collection_name": c}}
                if c
                else {"delete_alias": {"alias_name": a}}
                for a, c in pairs
            ]
        }

    add = aliases(("to_other", "other"), ("to_c", "c"))
    assert node.call("POST", "/qdrant/collections/aliases", add, as_="scoped")[0] == 403
    assert node.call("POST", "/qdrant/collections/aliases", add, as_="admin")[0] == 200
    try:
        query = {"vector": [1, 1, 1], "limit": 1}
        assert node.call("POST", "/collections/to_other/search", query, as_="scoped")[0] == 200
        status, got, _ = node.call("POST", "/collections/to_c/search", query, as_="scoped")
        assert status == 403 and got["error"]["code"] == "forbidden", got
        qdrant = {"query": [1, 1, 1], "limit": 1}
        path = "/qdrant/collections/{}/points/query"
        assert node.call("POST", path.format("to_other"), qdrant, as_="scoped")[0] == 200
        assert node.call("POST", path.format("to_c"), qdrant, as_="scoped")[0] == 403
        batch = {"collection": "to_c", "queries": [query]}
        assert node.call("POST", "/batch_search", batch, as_="scoped")[0] == 403
        assert node.call("GET", "/qdrant/aliases", as_="scoped")[0] == 403  # names every collection
        # A scope may name an alias: whatever collection it names now.
        status, key, _ = node.call(
            "POST",
            "/auth/keys",
            {"name": "by-alias", "role": "viewer", "collections": ["to_c"]},
            as_="admin",
        )
        assert status == 201, key
        node.keys["by-alias"] = key["secret"]
        assert node.call("POST", "/collections/to_c/search", query, as_="by-alias")[0] == 200
        assert node.call("POST", "/collections/c/search", query, as_="by-alias")[0] == 403
        assert node.call("POST", "/collections/to_other/search", query, as_="by-alias")[0] == 403
    finally:
        gone = aliases(("to_other", None), ("to_c", None))
        assert node.call("POST", "/qdrant/collections/aliases", gone, as_="admin")[0] == 200


def test_a_group_lookup_needs_the_looked_up_collection_too(node: Node) -> None:
    path = "/qdrant/collections/other/points/query/groups"
    body = {"query": [1, 1, 1], "group_by": "doc", "with_lookup": "c"}
    status, got, _ = node.call("POST", path, body, as_="scoped")  # may read other, not c
    assert status == 403, got
    assert "'c'" in str(got)
    assert node.call("POST", path, {**body, "with_lookup": "other"}, as_="scoped")[0] == 200
    assert node.call("POST", path, body, as_="admin")[0] == 200


def test_lookup_from_needs_the_looked_up_collection_too(node: Node) -> None:
    path = "/qdrant/collections/other/points/query"
    body = {"query": {"recommend": {"positive": [1]}}, "lookup_from": {"collection": "c"}}
    status, got, rid = node.call("POST", path, body, as_="scoped")  # may read other, not c
    assert status == 403, got
    assert "'c'" in str(got)
    assert node.audit_line(rid)["collection"] == "c"  # the one refused (it said "other")
    nested = {"prefetch": [{**body, "limit": 3}], "query": {"fusion": "rrf"}}
    assert node.call("POST", path, nested, as_="scoped")[0] == 403


def test_collection_snapshots_need_their_permissions_and_a_fetch_carries_its_key(
    node: Node,
) -> None:
    snapshots = "/qdrant/collections/c/snapshots"
    for who in ("viewer", "editor", "scoped"):  # making files needs `collections`
        assert node.call("POST", snapshots, as_=who)[0] == 403, who
    count = "/qdrant/collections/{}/points/count"
    points = node.call("POST", count.format("c"), {}, as_="admin")[1]["result"]["count"]
    status, got, _ = node.call("POST", snapshots, as_="admin")
    assert status == 200, got
    made = got["result"]["name"]
    assert node.call("GET", snapshots, as_="viewer")[0] == 200  # listing is reading
    assert node.call("GET", snapshots, as_="scoped")[0] == 403  # not its collection
    assert node.call("GET", f"{snapshots}/{made}", as_="scoped")[0] == 403
    assert node.call("DELETE", f"{snapshots}/{made}", as_="editor")[0] == 403
    recover = "/qdrant/collections/restored/snapshots/recover"
    location = {"location": f"{node.srv.url}{snapshots}/{made}"}
    assert node.call("PUT", recover, location, as_="editor")[0] == 403
    status, got, _ = node.call("PUT", recover, location, as_="admin")  # the fetch has no key
    assert status == 400 and "401" in got["status"]["error"], got
    status, got, _ = node.call("PUT", recover, {**location, "api_key": ADMIN}, as_="admin")
    assert status == 200, got
    try:
        status, got, _ = node.call("POST", count.format("restored"), {}, as_="viewer")
        assert status == 200 and got["result"]["count"] == points, got
    finally:
        assert node.call("DELETE", "/qdrant/collections/restored", as_="admin")[0] == 200
        assert node.call("DELETE", f"{snapshots}/{made}", as_="admin")[0] == 200


def test_a_scoped_admin_recovers_only_from_its_own_collections_snapshot_files(
    node: Node,
) -> None:
    """A file:// recovery puts the file's data in the recovered collection: the caller
    must be allowed to read the collection the file is a snapshot of."""
    status, got, _ = node.call(
        "POST", "/auth/keys", {"name": "sa", "role": "admin", "collections": ["other"]}, as_="admin"
    )
    assert status == 201, got
    node.keys["scoped-admin"] = got["secret"]
    made = {}
    for name in ("c", "other"):
        status, got, _ = node.call("POST", f"/qdrant/collections/{name}/snapshots", as_="admin")
        assert status == 200, got
        made[name] = node.srv.data_dir / "collection-snapshots" / name / got["result"]["name"]
        assert made[name].is_file()
    before = node.state()
    recover = "/qdrant/collections/other/snapshots/recover"
    try:
        for location in (made["c"], made["c"].with_name("no-such.snapshot")):
            status, got, rid = node.call(
                "PUT", recover, {"location": f"file://{location}"}, as_="scoped-admin"
            )
            assert status == 403, got  # (the same whether the file exists or not)
            assert str(node.srv.data_dir) not in got["status"]["error"]
            assert node.audit_line(rid)["reason"] == "outside the credential's collection scope"
        assert node.state() == before
        status, got, _ = node.call(
            "PUT", recover, {"location": f"file://{made['other']}"}, as_="scoped-admin"
        )
        assert status == 200, got
    finally:
        for name, path in made.items():
            node.call("DELETE", f"/qdrant/collections/{name}/snapshots/{path.name}", as_="admin")


def test_full_snapshots_are_node_wide(node: Node) -> None:
    for who in ("viewer", "editor", "scoped"):
        assert node.call("POST", "/qdrant/snapshots", as_=who)[0] == 403, who
    status, got, _ = node.call("POST", "/qdrant/snapshots", as_="admin")
    assert status == 200, got
    made = got["result"]["name"]
    try:
        assert node.call("GET", "/qdrant/snapshots", as_="viewer")[0] == 200
        assert (
            node.call("GET", "/qdrant/snapshots", as_="scoped")[0] == 403
        )  # holds every collection
        assert node.call("GET", f"/qdrant/snapshots/{made}", as_="scoped")[0] == 403
        assert node.call("DELETE", f"/qdrant/snapshots/{made}", as_="editor")[0] == 403
    finally:
        assert node.call("DELETE", f"/qdrant/snapshots/{made}", as_="admin")[0] == 200
