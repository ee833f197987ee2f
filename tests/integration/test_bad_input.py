"""Hostile and malformed requests get a structured 4xx and change nothing."""

from __future__ import annotations

import socket
import struct
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.servers import ServerProcess


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("bad-input") / "data"
    srv = ServerProcess(data_dir=data, args=["--max-body-bytes", "200000"]).start()
    assert srv.request("POST", "/collections", {"name": "c", "dimension": 3})[0] == 201
    pts = [{"id": i, "vector": [i, 1, 2], "payload": {"i": i}} for i in range(5)]
    assert srv.request("POST", "/collections/c/vectors", {"vectors": pts})[0] == 200
    yield srv
    srv.kill()


def snapshot_state(srv: ServerProcess) -> Any:
    return (
        srv.request("GET", "/collections")[1],
        srv.request("GET", "/collections/c/vectors?with_vector=true&limit=100")[1],
        srv.request("GET", "/stats")[1]["sequence"],
    )


BAD: list[tuple[str, str, Any, int, str, str | None]] = [
    # method, path, body, status, code, field
    (
        "POST",
        "/collections/c/vectors",
        {"vectors": [{"id": 9, "vector": [1, 2]}]},
        422,
        "dimension_mismatch",
        "vectors[0]",
    ),
    (
        "POST",
        "/collections/c/vectors",
        {"vectors": [{"id": 9, "vector": [1, 2, 3]}, {"id": 10, "vector": [1]}]},
        422,
        "dimension_mismatch",
        "vectors[1]",
    ),
    (
        "POST",
        "/collections/c/vectors",
        b'{"vectors": [{"id": 9, "vector": [1, 2, NaN]}]}',
        400,
        "malformed_json",
        "body",
    ),
    (
        "POST",
        "/collections/c/vectors",
        b'{"vectors": [{"id": 9, "vector": [1, 2, Infinity]}]}',
        400,
        "malformed_json",
        "body",
    ),
    (
        "POST",
        "/collections/c/vectors",
        b'{"vectors": [{"id": 9, "vector": [1, 2, 1e999]}]}',
        422,
        "validation_error",
        "vectors[0].vector[2]",
    ),
    (
        "POST",
        "/collections/c/vectors",
        {"vectors": [{"id": 9, "vector": [1e39, 0, 0]}]},
        422,
        "validation_error",
        "vectors[0]",
    ),
    (
        "POST",
        "/collections/c/vectors",
        {"vectors": [{"id": 9, "vector": []}]},
        422,
        "validation_error",
        "vectors[0]",
    ),
    (
        "POST",
        "/collections/c/vectors",
        {"vectors": [{"id": 9, "vector": "abc"}]},
        422,
        "validation_error",
        "vectors[0].vector",
    ),
    (
        "POST",
        "/collections/c/vectors",
        {"vectors": [{"id": -1, "vector": [1, 2, 3]}]},
        422,
        "validation_error",
        "vectors[0].id",
    ),
    (
        "POST",
        "/collections/c/vectors",
        {"vectors": [{"id": "7", "vector": [1, 2, 3]}]},
        422,
        "validation_error",
        "vectors[0].id",
    ),
    (
        "POST",
        "/collections/c/vectors",
        {"vectors": [{"id": 1.5, "vector": [1, 2, 3]}]},
        422,
        "validation_error",
        "vectors[0].id",
    ),
    (
        "POST",
        "/collections/c/vectors",
        {"vectors": [{"id": 9, "vector": [1, 2, 3], "colour": 1}]},
        422,
        "validation_error",
        "vectors[0].colour",
    ),
    (
        "POST",
        "/collections/c/vectors",
        {"vectors": [{"id": 9, "vector": [1, 2, 3], "payload": [1]}]},
        422,
        "validation_error",
        "vectors[0].payload",
    ),
    ("POST", "/collections/c/vectors", {"vectors": []}, 422, "validation_error", "vectors"),
    ("POST", "/collections/c/vectors", {"points": []}, 422, "validation_error", "points"),
    ("POST", "/collections/c/vectors", b'{"vectors": [', 400, "malformed_json", "body"),
    ("POST", "/collections/c/vectors", b"", 400, "malformed_json", "body"),
    ("POST", "/collections/c/vectors", b"x" * 300_000, 413, "payload_too_large", "body"),
    (
        "POST",
        "/collections/nope/vectors",
        {"vectors": [{"id": 9, "vector": [1, 2, 3]}]},
        404,
        "collection_not_found",
        "collection",
    ),
    (
        "POST",
        "/collections/c/search",
        {"vector": [1, 2, 3], "limit": 10**9},
        422,
        "validation_error",
        "limit",
    ),
    (
        "POST",
        "/collections/c/search",
        {"vector": [1, 2, 3], "limit": 0},
        422,
        "validation_error",
        "limit",
    ),
    (
        "POST",
        "/collections/c/search",
        {"vector": [1, 2, 3], "limit": "10"},
        422,
        "validation_error",
        "limit",
    ),
    (
        "POST",
        "/collections/c/search",
        {"vector": [1, 2, 3], "ef": 0},
        422,
        "validation_error",
        "ef",
    ),
    ("POST", "/collections/c/search", {"vector": [1, 2]}, 422, "dimension_mismatch", "vector"),
    (
        "POST",
        "/collections/c/search",
        {"vector": [1, 2, 3], "filter": {"must": [{"key": "i"}]}},
        422,
        "validation_error",
        "filter.must[0]",
    ),
    (
        "POST",
        "/collections/c/search",
        {"vector": [1, 2, 3], "extra": True},
        422,
        "validation_error",
        "extra",
    ),
    ("POST", "/collections/c/search", [1, 2, 3], 422, "validation_error", "body"),
    (
        "POST",
        "/collections/c/search",
        {"vector": [1, 2, 3], "": 1},
        422,
        "validation_error",
        "body",
    ),
    (
        "POST",
        "/collections/c/search",
        {"vector": [1, 2, 3], "filter": {"must": [{"key": "k" * 1025, "match": {"value": 1}}]}},
        422,
        "validation_error",
        "filter.must[0].key",
    ),
    (
        "POST",
        "/collections",
        {"name": "../../etc", "dimension": 3},
        422,
        "validation_error",
        "name",
    ),
    (
        "POST",
        "/collections",
        {"name": "caf\u00e9", "dimension": 3},
        422,
        "validation_error",
        "name",
    ),
    ("POST", "/collections", {"name": "a\u202eb", "dimension": 3}, 422, "validation_error", "name"),
    ("POST", "/collections", {"name": "x" * 129, "dimension": 3}, 422, "validation_error", "name"),
    ("POST", "/collections", {"name": "ok", "dimension": 0}, 422, "validation_error", "dimension"),
    (
        "POST",
        "/collections",
        {"name": "ok", "dimension": 70000},
        422,
        "validation_error",
        "dimension",
    ),
    (
        "POST",
        "/collections",
        {"name": "ok", "dimension": 3, "metric": "manhattan"},
        422,
        "validation_error",
        "metric",
    ),
    (
        "POST",
        "/collections",
        {"name": "ok", "dimension": 3, "hnsw": {"m": 100000}},
        422,
        "validation_error",
        "hnsw.m",
    ),
    (
        "POST",
        "/collections",
        {"name": "ok", "dimension": 3, "hnsw": {"mm": 1}},
        422,
        "validation_error",
        "hnsw.mm",
    ),
    ("POST", "/collections", {"name": "c", "dimension": 3}, 409, "collection_exists", "name"),
    # JSON allows any integer; the log (like Qdrant) holds 64-bit ones
    (
        "POST",
        "/collections/c/vectors",
        b'{"vectors": [{"id": 9, "vector": [1, 2, 3]}, '
        b'{"id": 10, "vector": [1, 2, 3], "payload": {"n": 1180591620717411303424}}]}',
        422,
        "validation_error",
        "vectors[1].payload",
    ),
    (
        "PUT",
        "/collections/c/vectors/1",
        b'{"payload": {"n": [1, -1180591620717411303424]}}',
        422,
        "validation_error",
        "payload",
    ),
    ("GET", "/collections/..%2F..%2Fetc%2Fpasswd", None, 404, "collection_not_found", "collection"),
    ("GET", "/collections/c/vectors/99", None, 404, "vector_not_found", "id"),
    ("GET", "/collections/c/vectors?limit=abc", None, 422, "validation_error", "limit"),
    # Digits outside ASCII ("²", "٣") are not an integer either.
    ("GET", "/collections/c/vectors?limit=%C2%B2", None, 422, "validation_error", "limit"),
    ("GET", "/collections/c/vectors?limit=%D9%A3", None, 422, "validation_error", "limit"),
    ("PUT", "/collections/c/vectors/1", {"vector": [1, 2]}, 422, "dimension_mismatch", "vector"),
    ("PUT", "/collections/c/vectors/1", {}, 422, "validation_error", "vector"),
    ("PUT", "/collections/c/vectors/99", {"payload": {}}, 404, "vector_not_found", "id"),
    ("DELETE", "/collections/c/vectors/99", None, 404, "vector_not_found", "id"),
    ("POST", "/collections/c/vectors/delete", {}, 422, "validation_error", "ids"),
    # Bytes that are not UTF-8 inside JSON strings, decoded straight into request types.
    ("POST", "/collections", b'{"name": "\xff", "dimension": 3}', 400, "malformed_json", "body"),
    (
        "POST",
        "/collections/c/search",
        b'{"vector": [1, 2, 3], "filter": {"must": [{"key": "\xed\xa0\x80"}]}}',
        400,
        "malformed_json",
        "body",
    ),
    ("POST", "/batch_search", b'{"collection": "\xc3"}', 400, "malformed_json", "body"),
    # A number out of range deep in a free-form object: named up to the object
    (
        "POST",
        "/collections/c/search",
        b'{"vector": [1, 2, 3], "filter": {"must": [{"key": "a", "range": {"gt": 1e400}}]}}',
        422,
        "validation_error",
        "filter",
    ),
    # One invalid id refuses the whole delete (point 1 stays).
    ("POST", "/collections/c/vectors/delete", {"ids": [1, -1]}, 422, "validation_error", "ids[1]"),
    ("POST", "/collections/c/vectors/delete", {"ids": [2, "7"]}, 422, "validation_error", "ids[1]"),
    (
        "POST",
        "/collections/c/vectors/delete",
        b'{"ids": [18446744073709551616]}',
        422,
        "validation_error",
        "ids[0]",
    ),
    # A batch's size is bounded by its searches and results, not only by its bytes.
    (
        "POST",
        "/batch_search",
        {"collection": "c", "queries": [{"vector": [1, 2, 3], "limit": 1}] * 1001},
        422,
        "validation_error",
        "queries",
    ),
    (
        "POST",
        "/batch_search",
        {"collection": "c", "queries": [{"vector": [1, 2, 3], "limit": 9000, "offset": 1000}] * 11},
        422,
        "validation_error",
        "queries",
    ),
    ("DELETE", "/collections/nope", None, 404, "collection_not_found", "collection"),
    ("GET", "/no/such/route", None, 404, "route_not_found", None),
    ("PATCH", "/collections", None, 405, "method_not_allowed", None),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code", "field"),
    BAD,
    ids=[f"{i}-{b[4]}" for i, b in enumerate(BAD)],
)
def test_bad_request_is_structured_and_harmless(
    seeded: ServerProcess,
    method: str,
    path: str,
    body: Any,
    status: int,
    code: str,
    field: str | None,
) -> None:
    before = snapshot_state(seeded)
    got_status, got = seeded.request(method, path, body)
    assert got_status == status, got
    assert got["error"]["code"] == code
    assert got["error"]["field"] == field
    assert got["request_id"]
    assert "Traceback" not in got["error"]["message"]
    assert snapshot_state(seeded) == before


def test_a_missing_point_is_named_with_its_collection(seeded: ServerProcess) -> None:
    for method in ("GET", "DELETE"):
        status, got = seeded.request(method, "/collections/c/vectors/99")
        assert status == 404 and got["error"]["message"] == "no point with id 99 in 'c'", got


def test_a_batch_within_its_bounds_is_answered_and_one_too_large_is_refused(
    seeded: ServerProcess,
) -> None:
    native = {"collection": "c", "queries": [{"vector": [1, 2, 3], "limit": 5}] * 1000}
    status, body = seeded.request("POST", "/batch_search", native)
    assert status == 200 and body["succeeded"] == 1000, body
    # A search over max_search_limit fails on its own, and counts as that limit in the sum.
    one_bad = {"collection": "c", "queries": [{"vector": [1, 2, 3], "limit": 10**9}] * 2}
    status, body = seeded.request("POST", "/batch_search", one_bad)
    assert status == 200 and body["failed"] == 2, body
    # A limit and an offset may each reach max_search_limit: both count.
    deep = {"vector": [1, 2, 3], "limit": 10_000, "offset": 10_000}
    status, body = seeded.request(
        "POST", "/batch_search", {"collection": "c", "queries": [deep] * 5}
    )
    assert status == 200 and body["succeeded"] == 5, body
    status, body = seeded.request(
        "POST", "/batch_search", {"collection": "c", "queries": [deep] * 6}
    )
    assert status == 422 and "at most 100000 results" in body["error"]["message"], body
    for route, key, search in (
        ("search/batch", "searches", {"vector": [1, 2, 3], "limit": 5}),
        ("query/batch", "searches", {"query": [1, 2, 3], "limit": 5}),
    ):
        path = f"/qdrant/collections/c/points/{route}"
        status, body = seeded.request("POST", path, {key: [search] * 1000})
        assert status == 200 and len(body["result"]) == 1000, body
        status, body = seeded.request("POST", path, {key: [search] * 1001})
        assert status == 400, body  # (Qdrant's status for a request it refuses)
        assert "at most 1000 searches" in body["status"]["error"], body
        wide = {**search, "limit": 10_000}
        status, body = seeded.request("POST", path, {key: [wide] * 11})
        assert status == 400 and "at most 100000 results" in body["status"]["error"], body


@pytest.mark.parametrize(
    ("method", "path", "status", "needle"),
    [
        ("GET", "/no/such/route", 404, "no route GET /no/such/route"),
        ("PATCH", "/collections", 405, "PATCH /collections is not allowed (this path answers"),
        ("GET", "/qdrant/cluster", 404, "GET /qdrant/cluster is not part of the Qdrant API"),
        ("POST", "/qdrant/collections/c/points/groups", 405, "is not part of the Qdrant API"),
    ],
)
def test_unknown_routes_say_what_was_asked(
    seeded: ServerProcess, method: str, path: str, status: int, needle: str
) -> None:
    got_status, got = seeded.request(method, path, {})
    assert got_status == status
    message = got["status"]["error"] if path.startswith("/qdrant") else got["error"]["message"]
    assert needle in message, message


def test_request_id_is_echoed(seeded: ServerProcess) -> None:
    import urllib.request

    req = urllib.request.Request(seeded.url + "/health", headers={"X-Request-ID": "abc-123"})
    with urllib.request.urlopen(req) as r:
        assert r.headers["X-Request-ID"] == "abc-123"


def raw_exchange(srv: ServerProcess, data: bytes) -> tuple[int, dict[str, str], Any]:
    """Send ``data`` as is on a fresh connection; the answer's status, headers and JSON."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):  # the server closes the connection after it
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, orjson.loads(body)


@pytest.mark.parametrize(
    ("data", "qdrant"),
    [
        (b"GET /collections/" + b"n" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", False),
        (b"GET /collections/c/vectors?x=" + b"1" * 9000 + b" HTTP/1.1\r\n\r\n", False),
        (b"POST /qdrant/collections/" + b"n" * 9000 + b"/points/scroll HTTP/1.1\r\n\r\n", True),
        (b"GET /health HTTP/1.1\r\nX-Big: " + b"h" * 9000 + b"\r\n\r\n", False),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64 + b"\r\n\r\n", False),
        (b"GET /health HTTP/1.1\r\nBad Header\r\n\r\n", False),
    ],
    ids=["long-path", "long-query", "long-qdrant-path", "long-header", "tls-hello", "no-colon"],
)
def test_unparsable_http_gets_a_structured_error(
    seeded: ServerProcess, data: bytes, qdrant: bool
) -> None:
    before = snapshot_state(seeded)
    status, headers, body = raw_exchange(seeded, data)
    assert status == 400 and headers["content-type"].startswith("application/json")
    assert headers["x-content-type-options"] == "nosniff" and headers["x-request-id"]
    if qdrant:
        assert body["status"]["error"].startswith("malformed_request: ")
    else:
        assert body["error"]["code"] == "malformed_request", body
        assert body["request_id"] == headers["x-request-id"]
        assert len(body["error"]["message"]) < 300  # not the whole line echoed back
    assert snapshot_state(seeded) == before
    assert '"ERROR"' not in seeded.log()  # the client's mistake, not the server's
    with urllib.request.urlopen(seeded.url + "/metrics") as r:
        metrics = r.read().decode()
    assert 'vectorizer_api_errors_total{code="malformed_request"}' in metrics


@pytest.mark.parametrize(
    "header",
    [b"X-API-Key: vz_abc_SECRET-TOKEN-123\x01", b"Authorization: Bearer SECRET-TOKEN-123\x7f"],
)
def test_a_credential_in_an_unparsable_header_is_neither_logged_nor_echoed(
    seeded: ServerProcess, header: bytes
) -> None:
    """aiohttp's reason for a header it cannot parse quotes the header: its first line
    only is told (the log line also carries the request id the answer names)."""
    status, headers, body = raw_exchange(
        seeded, b"GET /collections HTTP/1.1\r\n" + header + b"\r\n\r\n"
    )
    assert status == 400 and body["error"]["code"] == "malformed_request", body
    assert "SECRET-TOKEN" not in orjson.dumps(body).decode()
    time.sleep(0.2)
    assert "SECRET-TOKEN" not in seeded.log()
    line = next(
        orjson.loads(ln) for ln in seeded.log().splitlines() if headers["x-request-id"] in ln
    )
    assert line["request_id"] == headers["x-request-id"] and "unparsable" in line["message"]


@pytest.mark.parametrize("path", ["/collections/c/vectors", "/qdrant/collections/c/points"])
@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_body_not_in_its_content_encoding_is_a_malformed_request(
    seeded: ServerProcess, path: str, encoding: str
) -> None:
    before = snapshot_state(seeded)
    body = orjson.dumps({"vectors": [{"id": 1, "vector": [9, 9, 9]}]})
    method = "PUT" if path.startswith("/qdrant") else "POST"
    status, got = seeded.request(method, path, body, headers={"Content-Encoding": encoding})
    assert status == 400, got
    if path.startswith("/qdrant"):
        assert got["status"]["error"].startswith("malformed_request: "), got
    else:
        assert got["error"]["code"] == "malformed_request" and got["error"]["field"] == "body"
    assert snapshot_state(seeded) == before
    time.sleep(0.3)  # (aiohttp read on past the answer, and logged what it met at ERROR)
    assert "unhandled error" not in seeded.log() and '"ERROR"' not in seeded.log()


def _exchange_on(sock: socket.socket) -> tuple[int, bytes]:
    """One answer read from ``sock``: its status and body (by Content-Length)."""
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(65536)
    head, _, rest = answer.partition(b"\r\n\r\n")
    status, length = _status_and_length(head)
    while len(rest) < length:
        rest += sock.recv(65536)
    return status, rest[:length]


def _status_and_length(head: bytes) -> tuple[int, int]:
    """An answer's status and Content-Length (0 when it has none), from its head."""
    lines = head.decode("latin-1").split("\r\n")
    length = next(
        (
            int(v)
            for k, v in (ln.split(": ", 1) for ln in lines[1:])
            if k.lower() == "content-length"
        ),
        0,
    )
    return int(lines[0].split()[1]), length


@pytest.mark.parametrize("path", ["/collections/c/count", "/qdrant/collections/c/points/count"])
def test_expect_headers_get_the_structured_answers(seeded: ServerProcess, path: str) -> None:
    """An expectation other than 100-continue is ignored (aiohttp answered a plain-text
    417 before any middleware); 100-continue gets ``100 Continue``, unless the body
    announced is over the limit: then the 413 is the answer and the body is not sent."""
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    status, headers, body = raw_exchange(
        seeded,
        f"{head}Expect: 200-ok\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}".encode(),
    )
    assert status == 200 and headers["x-request-id"], body
    assert (body.get("count") or body["result"]["count"]) == 5
    status, headers, body = raw_exchange(
        seeded, f"{head}Expect: 100-continue\r\nContent-Length: 900000000\r\n\r\n".encode()
    )
    assert status == 413 and headers["content-type"].startswith("application/json"), body
    # The body will not be read, and the client has not sent it: the connection cannot
    # carry a next request (it would be taken for the body) and is said to close.
    assert headers["connection"] == "close"
    with socket.create_connection(("127.0.0.1", seeded.port), timeout=10) as sock:
        sock.sendall(f"{head}Expect: 100-continue\r\nContent-Length: 2\r\n\r\n".encode())
        assert sock.recv(64) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"{}")
        status, raw = _exchange_on(sock)
        assert status == 200 and b"5" in raw, raw


def test_an_unauthenticated_call_is_refused_before_its_body_is_asked_for(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    """``100 Continue`` goes out when the body is wanted, after admission: a caller
    without a credential gets its 401 at once (and the connection closes, the body never
    sent), one with a credential the 100 and then its answer."""
    admin = "expect-test-admin-key-0123456789"
    srv = server_factory(
        data_dir=tmp_path / "data", args=["--auth-enabled", "true", "--auth-admin-key", admin]
    ).start()
    srv.api_key = admin
    assert srv.request("POST", "/collections", {"name": "c", "dimension": 3})[0] == 201
    head = (
        "POST /collections/c/count HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Expect: 100-continue\r\nContent-Length: 2\r\n"
    )
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
        sock.sendall(f"{head}\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):  # (closed after the answer: nothing more to wait)
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 401 "), answer[:100]
    assert b"\r\nConnection: close\r\n" in answer.partition(b"\r\n\r\n")[0] + b"\r\n"
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
        sock.sendall(f"{head}X-API-Key: {admin}\r\n\r\n".encode())
        assert sock.recv(64) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"{}")
        status, raw = _exchange_on(sock)
        assert status == 200 and orjson.loads(raw)["count"] == 0, raw


def _answers(data: bytes) -> list[tuple[int, bytes]]:
    """The answers in ``data``, in order: each one's status and body."""
    out = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        status, length = _status_and_length(head)
        out.append((status, rest[:length]))
        data = rest[length:]
    return out


@pytest.mark.parametrize("split", [None, 1], ids=["one-segment", "head-end-across-segments"])
def test_requests_before_bytes_that_are_not_http_are_answered_first(
    seeded: ServerProcess, split: int | None
) -> None:
    """Valid requests, then bytes that are not HTTP, in one TCP segment: the requests are
    executed and answered, in order, then the error; before, only the 400 was sent (a
    client took it for its first request) and the write was lost. With ``split`` the
    first request's head ends in the second segment, after ``split`` of its bytes."""
    assert seeded.request("POST", "/collections", {"name": "piped", "dimension": 3})[0] == 201
    try:
        body = orjson.dumps({"vectors": [{"id": 42, "vector": [4, 2, 0]}]})
        upsert = (
            b"POST /collections/piped/vectors HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
        )
        count = b"POST /collections/piped/count HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
        rest = body + count + b"\x00\x01NOT HTTP\r\n\r\n"
        with socket.create_connection(("127.0.0.1", seeded.port), timeout=10) as sock:
            if split is None:
                sock.sendall(upsert + rest)
            else:
                sock.sendall(upsert[:-split])
                time.sleep(0.3)  # (received apart)
                sock.sendall(upsert[-split:] + rest)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        got = _answers(answer)
        assert [status for status, _ in got] == [200, 200, 400], got
        assert orjson.loads(got[0][1])["upserted"] == 1
        assert orjson.loads(got[1][1])["count"] == 1
        assert orjson.loads(got[2][1])["error"]["code"] == "malformed_request"
        assert seeded.request("GET", "/collections/piped/vectors/42")[0] == 200
    finally:
        assert seeded.request("DELETE", "/collections/piped")[0] == 200


@pytest.mark.parametrize("split", [False, True], ids=["one-segment", "body-apart"])
def test_a_chunked_body_that_is_not_http_fails_its_request_at_once(
    seeded: ServerProcess, split: bool
) -> None:
    """A chunk size that is not hex: the request whose body it cuts short is answered
    400 ``malformed_request`` at once (it waited for the rest of its body, which the
    parser would never give, and was answered a false 408 after 30 s), and changes
    nothing."""
    before = snapshot_state(seeded)
    head = (
        b"POST /collections/c/vectors HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: application/json\r\n\r\n"
    )
    body = b"zz\r\n{}\r\n0\r\n\r\n"
    with socket.create_connection(("127.0.0.1", seeded.port), timeout=10) as sock:
        if split:
            sock.sendall(head)
            time.sleep(0.2)  # (received apart)
            sock.sendall(body)
        else:
            sock.sendall(head + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status, raw = _answers(answer)[0]
    error = orjson.loads(raw)["error"]
    assert status == 400 and error["code"] == "malformed_request", raw
    assert "chunk size" in error["message"] and "zz" not in error["message"]
    assert snapshot_state(seeded) == before


@pytest.mark.parametrize("metric", ["dot", "euclidean"])
def test_vectors_whose_scores_would_overflow_are_refused(
    seeded: ServerProcess, metric: str
) -> None:
    """Finite float32 components, but too long a vector: its scores would be infinite
    (answered as null, and ranked anyhow)."""
    name = f"long-{metric}"
    assert (
        seeded.request("POST", "/collections", {"name": name, "dimension": 2, "metric": metric})[0]
        == 201
    )
    good = [{"id": 1, "vector": [1.0, 1.0]}, {"id": 2, "vector": [6e18, -1e18]}]
    assert seeded.request("POST", f"/collections/{name}/vectors", {"vectors": good})[0] == 200
    bad = [{"id": 3, "vector": [2.0, 2.0]}, {"id": 4, "vector": [3e38, -3e38]}]
    status, got = seeded.request("POST", f"/collections/{name}/vectors", {"vectors": bad})
    assert (status, got["error"]["code"], got["error"]["field"]) == (
        422,
        "validation_error",
        "vectors[1]",
    ), got
    status, got = seeded.request("POST", f"/collections/{name}/search", {"vector": [3e38, 1.0]})
    assert (status, got["error"]["field"]) == (422, "vector"), got
    status, got = seeded.request("POST", f"/collections/{name}/search", {"vector": [6e18, 1e18]})
    assert (
        status == 200 and [h["id"] for h in got["results"]] == [2, 1] if metric == "dot" else [1, 2]
    )
    assert all(isinstance(h["score"], float) for h in got["results"]), got
    assert seeded.request("GET", f"/collections/{name}")[1]["collection"]["vector_count"] == 2
    assert seeded.request("DELETE", f"/collections/{name}")[0] == 200


@pytest.mark.parametrize("reset", [False, True], ids=["closed", "reset"])
def test_a_client_hanging_up_mid_body_changes_nothing_and_is_no_server_error(
    seeded: ServerProcess, reset: bool
) -> None:
    before = snapshot_state(seeded)
    with socket.create_connection(("127.0.0.1", seeded.port), timeout=10) as sock:
        sock.sendall(
            b"POST /collections/c/vectors HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n"
            + b'{"vectors": [{"id": 77, "vector": [1, 2, 3]}'
        )
        time.sleep(0.05)
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    deadline = time.monotonic() + 5
    while "the client closed the connection" not in seeded.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "the client closed the connection" in seeded.log()
    assert "unhandled error" not in seeded.log()
    assert snapshot_state(seeded) == before


def test_an_invalid_limit_is_a_validation_error_even_with_vectors(seeded: ServerProcess) -> None:
    # Checked before the answer's size is: a 422 on limit, not a 507.
    body = {"vector": [1, 2, 3], "limit": 10**9, "with_vector": True}
    status, got = seeded.request("POST", "/collections/c/search", body)
    assert status == 422 and got["error"]["field"] == "limit", got
    batch = {"collection": "c", "queries": [body, {"vector": [1, 2, 3], "with_vector": True}]}
    status, got = seeded.request("POST", "/batch_search", batch)
    assert status == 200 and [r["status"] for r in got["results"]] == ["error", "ok"], got


@pytest.mark.parametrize("steps", [260, 1200])
def test_a_payload_key_too_deep_to_store_is_refused_before_it_is_logged(
    seeded: ServerProcess, steps: int
) -> None:
    """A set_payload key nests the payload by its steps, whatever the body's depth: 260
    steps were stored, and then every snapshot of the node failed (orjson writes at most
    254 levels), and every read that showed the point; 1,200 failed while applied, after
    the record was logged (``storage_failed``: no writes until a restart)."""
    before = snapshot_state(seeded)
    key = ".".join(["a"] * steps)
    body = {"payload": {"z": 1}, "points": [1], "key": key}
    status, got = seeded.request("POST", "/qdrant/collections/c/points/payload?wait=true", body)
    assert status == 400 and "nests at most 200" in got["status"]["error"], got
    assert snapshot_state(seeded) == before
    assert seeded.request("POST", "/collections/c/snapshot")[0] == 201
    deep_enough = {"payload": {"z": 1}, "points": [1], "key": ".".join(["k"] * 150)}
    path = "/qdrant/collections/c/points/payload?wait=true"
    assert seeded.request("POST", path, deep_enough)[0] == 200
    assert seeded.request("GET", "/qdrant/collections/c/points/1")[0] == 200
    assert seeded.request("POST", "/collections/c/snapshot")[0] == 201
    assert seeded.request("GET", "/health")[0] == 200
    assert seeded.request("PUT", "/collections/c/vectors/1", {"payload": {"i": 1}})[0] == 200
