"""Plain native searches answered on the fast path (``server/fastsearch.py``) get the
answer the pipeline gives, in the order of the connection's requests, and a stop
answers them in flight.

A request with a header outside the fast path's short list (here ``X-Path: slow``) goes
aiohttp's way: the same request both ways must be answered alike, byte for byte but
for the date and the request id. ``vectorizer_http_fast_path_requests_total`` tells
which way a request went.
"""

from __future__ import annotations

import signal
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import numpy as np
import orjson
import pytest
from qdrant_client import QdrantClient

from tests.integration.test_metrics import scrape
from tests.integration.test_tls_observability import scrape as tls_scrape
from tests.integration.test_tls_observability import tls_node
from tests.servers import ServerProcess

FAST = "vectorizer_http_fast_path_requests_total{}"
DIM = 4


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(data_dir=tmp_path_factory.mktemp("fast") / "data").start()
    try:
        body = {"name": "c", "dimension": DIM, "metric": "euclidean"}
        assert srv.request("POST", "/collections", body)[0] == 201
        rng = np.random.default_rng(3)
        pts = [
            {"id": i, "vector": v, "payload": {"n": i, "even": i % 2 == 0}}
            for i, v in enumerate(rng.normal(size=(300, DIM)).tolist())
        ]
        assert srv.request("POST", "/collections/c/vectors", {"vectors": pts})[0] == 200
        alias = {"create_alias": {"alias_name": "alias_c", "collection_name": "c"}}
        assert srv.request("POST", "/aliases", {"actions": [alias]})[0] == 200
        yield srv
    finally:
        srv.kill()


def search(name: str, body: bytes, *extra: str, rid: str | None = None) -> bytes:
    """A search request as clients send it (``extra``: more header lines)."""
    return post(f"/collections/{name}/search", body, *extra, rid=rid)


def query(name: str, body: bytes, *extra: str, rid: str | None = None) -> bytes:
    """A Qdrant ``query_points`` request."""
    return post(f"/qdrant/collections/{name}/points/query", body, *extra, rid=rid)


def post(path: str, body: bytes, *extra: str, rid: str | None = None) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        "Host: 127.0.0.1",
        "Content-Type: application/json",
        "User-Agent: test",
        f"Content-Length: {len(body)}",
        *([f"X-Request-ID: {rid}"] if rid else []),
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def read_answer(sock: socket.socket, buf: bytearray) -> tuple[str, list[tuple[str, str]], bytes]:
    """One answer from ``sock`` (``buf``: bytes read before): status line, headers, body."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed mid-answer: {bytes(buf)!r}"
        buf += chunk
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = [(k, v) for k, _, v in (line.partition(": ") for line in lines[1:])]
    length = int({k.lower(): v for k, v in headers}["content-length"])
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "the connection closed mid-body"
        rest += chunk
    buf[:] = rest[length:]
    return lines[0], headers, rest[:length]


def connect(srv: ServerProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    tls = srv.ssl_context()
    return sock if tls is None else tls.wrap_socket(sock, server_hostname="localhost")


def exchange(srv: ServerProcess, *writes: bytes, answers: int) -> list[Any]:
    """``writes`` sent in turn on one connection; ``answers`` answers read back."""
    with connect(srv) as sock:
        for data in writes:
            sock.sendall(data)
            time.sleep(0.02)  # (each write its own segment)
        buf = bytearray()
        return [read_answer(sock, buf) for _ in range(answers)]


def comparable(answer: Any) -> tuple[str, list[tuple[str, str]], Any]:
    status, headers, body = answer
    kept = [(k, v) for k, v in headers if k not in ("Date", "X-Request-ID")]
    doc = orjson.loads(body)
    if isinstance(doc, dict):
        doc.pop("request_id", None)
        if doc.pop("time", None) is not None:  # (Qdrant's envelope: how long it took,
            kept = [(k, v) for k, v in kept if k != "Content-Length"]  # its digits too)
    return status, kept, doc


# (body, whether the fast path answers it: the others are the pipeline's)
BODIES: list[tuple[str, dict[str, Any] | bytes, bool]] = [
    ("c", {"vector": [0.1, 0.2, 0.3, 0.4], "limit": 5}, True),
    ("c", {"vector": [0.1, 0.2, 0.3, 0.4], "limit": 3, "offset": 2, "with_payload": False}, True),
    ("c", {"vector": [1, 0, 0, 0], "limit": 4, "ef": 200, "exact": True}, True),
    ("c", {"vector": [1, 0, 0, 0], "limit": 10, "threshold": 1.5}, True),
    (
        "c",
        {"vector": [1, 0, 0, 0], "filter": {"must": [{"key": "even", "match": {"value": True}}]}},
        True,
    ),
    ("alias_c", {"vector": [0, 1, 0, 0], "limit": 2}, True),
    ("c", {"vector": [0, 1, 0, 0], "limit": 2, "with_vector": True}, False),
    ("c", {"vector": [0, 1, 0], "limit": 2}, False),
    ("c", {"vector": [0, 1, 0, "x"]}, False),
    ("c", {"vector": [0, 1, 0, 0], "limit": 0}, False),
    ("c", {"vector": [0, 1, 0, 0], "limit": 10**9}, False),
    ("c", {"vector": [0, 1, 0, 0], "colour": "red"}, False),
    (
        "c",
        {"vector": [0, 1, 0, 0], "filter": {"must": [{"key": "a[", "match": {"value": 1}}]}},
        False,
    ),
    ("c", b'{"vector": [0, 1, 0, 0], ', False),
    ("c", b"[" * 200 + b"]" * 200, False),
    ("nope", {"vector": [0, 1, 0, 0]}, False),
]


V = [0.1, 0.2, 0.3, 0.4]
# Qdrant query_points bodies (name, body, whether the fast path answers it)
QUERIES: list[tuple[str, dict[str, Any] | bytes, bool]] = [
    ("c", {"query": V, "limit": 5}, True),
    ("c", {"query": V, "limit": 3, "offset": 2, "with_payload": True}, True),
    ("c", {"query": V, "with_payload": ["n"], "score_threshold": 1.2}, True),
    ("c", {"query": V, "with_payload": {"exclude": ["even"]}, "with_vector": False}, True),
    ("c", {"query": {"nearest": V}, "limit": 4, "params": {"hnsw_ef": 200, "exact": True}}, True),
    ("alias_c", {"query": [0, 1, 0, 0], "limit": 2}, True),
    ("c", {"query": V, "filter": {"must": [{"key": "even", "match": {"value": True}}]}}, False),
    ("c", {"query": V, "with_vector": True}, False),
    ("c", {"prefetch": [{"query": V, "limit": 20}], "query": V, "limit": 3}, False),
    ("c", {"query": 7, "limit": 3}, False),
    ("c", {"limit": 3}, False),
    ("c", {"query": [0, 1, 0], "limit": 2}, False),
    ("c", {"query": V, "limit": 0}, False),
    ("c", {"query": V, "using": "nope"}, False),
    ("c", {"query": V, "colour": "red"}, False),
    ("c", {"query": V, "shard_key": "a"}, False),
    ("c", b'{"query": [0, 1, 0, 0], ', False),
    ("nope", {"query": V}, False),
]


CASES = [(search, *case) for case in BODIES] + [(query, *case) for case in QUERIES]


@pytest.mark.parametrize(
    ("ask", "name", "body", "fast"),
    CASES,
    ids=[f"{c[0].__name__}-{i}" for i, c in enumerate(CASES)],
)
def test_a_request_is_answered_as_the_pipeline_answers_it(
    node: ServerProcess,
    ask: Callable[..., bytes],
    name: str,
    body: dict[str, Any] | bytes,
    fast: bool,
) -> None:
    """A native search or a Qdrant query, fast and pipeline alike (``X-Path: slow``)."""
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    before = scrape(node)[FAST]
    [quick] = exchange(node, ask(name, raw), answers=1)
    assert scrape(node)[FAST] - before == (1 if fast else 0)
    [slow] = exchange(node, ask(name, raw, "X-Path: slow"), answers=1)
    assert comparable(quick) == comparable(slow)
    assert scrape(node)[FAST] - before == (1 if fast else 0)


def test_a_body_written_after_its_head_is_answered_on_the_fast_path(node: ServerProcess) -> None:
    raw = orjson.dumps({"vector": [0.3, 0.1, 0.2, 0.9], "limit": 4})
    head, _, body = search("c", raw).partition(b"\r\n\r\n")
    before = scrape(node)[FAST]
    [quick] = exchange(node, head + b"\r\n\r\n", body, answers=1)  # (20 ms apart)
    assert scrape(node)[FAST] - before == 1
    [slow] = exchange(node, search("c", raw, "X-Path: slow"), answers=1)
    assert comparable(quick) == comparable(slow)


def test_qdrant_clients_queries_take_the_fast_path(node: ServerProcess) -> None:
    """qdrant-client (httpx) writes a request's head and its body apart: the head waits
    for its body (``protocol.PARK_S``), so its queries are answered on the fast path
    (without the wait, about half were: those whose body came in the same read; a
    plain httpx client's, 4 in 50). What it reads back is the pipeline's answer."""
    client = QdrantClient(url=node.url, prefix="qdrant", timeout=30, check_compatibility=False)
    before = scrape(node)[FAST]
    try:
        for i in range(20):
            vector = [0.1 * i, 1.0, -0.5, 0.2 * (i % 3)]
            found = client.query_points("c", query=vector, limit=4, offset=i % 3).points
            asked = {"query": vector, "limit": 4, "offset": i % 3, "with_payload": True}
            [slow] = exchange(node, query("c", orjson.dumps(asked), "X-Path: slow"), answers=1)
            expected = orjson.loads(slow[2])["result"]["points"]
            assert [(p.id, p.score, p.payload) for p in found] == [
                (p["id"], p["score"], p["payload"]) for p in expected
            ]
    finally:
        client.close()
    # (a client stalled past PARK_S between its two writes goes aiohttp's way: let a
    # loaded machine have two)
    assert scrape(node)[FAST] - before >= 18


def test_the_client_request_id_and_the_metrics_are_the_pipelines(node: ServerProcess) -> None:
    body = orjson.dumps({"vector": [0.5, 0.5, 0.5, 0.5], "limit": 3})
    route = (
        "vectorizer_http_requests_total{method=POST,route=/collections/{name}/search,status=200}"
    )
    before = scrape(node)
    [answer] = exchange(node, search("c", body, rid="my-id.1"), answers=1)
    assert ("X-Request-ID", "my-id.1") in answer[1]
    [odd] = exchange(node, search("c", body, rid="not sane!"), answers=1)
    given = dict(odd[1])["X-Request-ID"]
    assert given != "not sane!" and len(given) == 32
    after = scrape(node)
    assert after[FAST] - before[FAST] == 2
    assert after[route] - before[route] == 2
    assert (
        after["vectorizer_search_requests_total{}"] - before["vectorizer_search_requests_total{}"]
        == 2
    )


def test_answers_come_in_the_order_of_the_requests(node: ServerProcess) -> None:
    """Requests sent together (pipelined) or cut anywhere are answered in order: a fast
    one before a queued one, a held-back one after the fast one before it."""
    body = orjson.dumps({"vector": [0.1, 0.2, 0.3, 0.4], "limit": 2})
    health = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Request-ID: h\r\n\r\n"
    slow = search("c", body, "X-Path: slow", rid="s")
    requests = [search("c", body, rid="f1"), health, search("c", body, rid="f2"), slow]
    requests.append(search("c", body, rid="f3"))
    ids = ["f1", "h", "f2", "s", "f3"]
    data = b"".join(requests)
    cuts = [None, 10, len(requests[0]) - 5, len(requests[0]), len(requests[0]) + 3]
    cuts += [len(data) - len(requests[-1]) + 30]
    before = scrape(node)[FAST]
    for cut in cuts:
        writes = [data] if cut is None else [data[:cut], data[cut:]]
        answers = exchange(node, *writes, answers=len(requests))
        assert [dict(a[1])["X-Request-ID"] for a in answers] == ids, cut
        assert all(a[0] == "HTTP/1.1 200 OK" for a in answers)
        results = [orjson.loads(a[2])["results"] for a in answers if a is not answers[1]]
        assert all(r == results[0] for r in results), cut
    # (the first search of each connection at least went the fast way)
    assert scrape(node)[FAST] - before >= len(cuts)


@pytest.mark.parametrize(
    "body", [b'{"vector": [0.1, 0.2, 0.3, 0.4]}', b'{"vec'], ids=["valid", "bad_json"]
)
def test_a_search_then_bytes_that_are_not_http_are_answered_in_order(
    node: ServerProcess, body: bytes
) -> None:
    """The search's answer, then the 400 for the bytes after it (the connection's
    last). Reading the body may make aiohttp feed its failed parser again from within:
    that second 400 came before the search's answer, or instead of it."""
    garbage = b"xyz\r\n\r\n"
    for _ in range(20):  # (some of them led a batch: the answer a loop turn later)
        [quick, bad] = exchange(node, search("c", body, rid="first") + garbage, answers=2)
        [slow, slow_bad] = exchange(
            node, search("c", body, "X-Path: slow", rid="first") + garbage, answers=2
        )
        assert comparable(quick) == comparable(slow)
        assert dict(quick[1])["X-Request-ID"] == "first"
        assert bad[0] == slow_bad[0] and b"malformed_request" in bad[2]


def test_clients_that_pipeline_searches_and_reset_leave_no_tracebacks(
    tmp_path: Path,
) -> None:
    """An answer written to a connection the client reset: the requests held behind it
    are not handed to aiohttp (which would take them after the connection is gone)."""
    srv = ServerProcess(data_dir=tmp_path / "data").start()
    try:
        assert srv.request("POST", "/collections", {"name": "c", "dimension": 2})[0] == 201
        pts = [{"id": i, "vector": [float(i), 1.0]} for i in range(5)]
        assert srv.request("POST", "/collections/c/vectors", {"vectors": pts})[0] == 200
        request = search("c", orjson.dumps({"vector": [1.0, 1.0]}))
        for _ in range(200):
            with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as sock:
                sock.sendall(request * 10)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        time.sleep(1)
        [answer] = exchange(srv, request, answers=1)
        assert answer[0] == "HTTP/1.1 200 OK"
        assert srv.terminate() == 0
        assert "Traceback" not in srv.log() and "exception" not in srv.log(), srv.log()
    finally:
        srv.kill()


def test_a_search_sent_in_pieces_is_answered(node: ServerProcess) -> None:
    """A body that arrives after its head (another segment) is aiohttp's to read."""
    body = orjson.dumps({"vector": [0.1, 0.2, 0.3, 0.4], "limit": 2})
    request = search("c", body, rid="p")
    [whole] = exchange(node, request, answers=1)
    for cut in (len(request) - len(body), len(request) - 3, 20):
        [answer] = exchange(node, request[:cut], request[cut:], answers=1)
        assert comparable(answer) == comparable(whole), cut


def test_a_keep_alive_connection_takes_many_fast_searches(node: ServerProcess) -> None:
    bodies = [orjson.dumps({"vector": [i, 1.0, 0.0, 0.0], "limit": 1}) for i in range(200)]
    before = scrape(node)[FAST]
    with socket.create_connection(("127.0.0.1", node.port), timeout=30) as sock:
        buf = bytearray()
        for i, body in enumerate(bodies):
            sock.sendall(search("c", body, rid=f"k{i}"))
            status, headers, _ = read_answer(sock, buf)
            assert status == "HTTP/1.1 200 OK" and dict(headers)["X-Request-ID"] == f"k{i}"
    assert scrape(node)[FAST] - before == len(bodies)


def test_a_request_aiohttp_answered_leaves_the_connection_on_the_fast_path(
    node: ServerProcess,
) -> None:
    """A client that asks again as soon as it has its answer is often quicker than
    aiohttp's task is back to waiting: its searches must not all go aiohttp's way then."""
    upsert = post("/collections/c/vectors", b'{"vectors": [{"id": 9000, "vector": [1, 1, 1, 1]}]}')
    missing = search("nowhere", b'{"vector": [1, 1, 1, 1]}')
    body = orjson.dumps({"vector": [0.1, 0.2, 0.3, 0.4], "limit": 2})
    for first in (upsert, missing, search("c", body, "X-Path: slow")):
        before = scrape(node)[FAST]
        with connect(node) as sock:
            buf = bytearray()
            sock.sendall(first)
            read_answer(sock, buf)
            for i in range(50):
                sock.sendall(search("c", body, rid=f"s{i}"))
                status, headers, _ = read_answer(sock, buf)
                assert status == "HTTP/1.1 200 OK" and dict(headers)["X-Request-ID"] == f"s{i}"
        assert scrape(node)[FAST] - before == 50, first[:40]


def test_a_tls_node_answers_on_the_fast_path_as_the_pipeline_does(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    srv = tls_node(server_factory, tmp_path)
    assert srv.request("POST", "/collections", {"name": "c", "dimension": 2})[0] == 201
    pts = [{"id": i, "vector": [float(i), 1.0]} for i in range(5)]
    assert srv.request("POST", "/collections/c/vectors", {"vectors": pts})[0] == 200
    body = orjson.dumps({"vector": [2.0, 1.0], "limit": 2})
    fast = ("vectorizer_http_fast_path_requests_total", ())
    before = tls_scrape(srv)[fast]
    [quick] = exchange(srv, search("c", body), answers=1)
    assert tls_scrape(srv)[fast] - before == 1
    [slow] = exchange(srv, search("c", body, "X-Path: slow"), answers=1)
    assert comparable(quick) == comparable(slow)
    assert ("Strict-Transport-Security", "max-age=31536000") in quick[1]


ADMIN = "fast-path-admin-key-0123456789"
HS = "h" * 48
Keys = dict[str, str]


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Keys]]:
    """A node with authentication and its audit log on (as the operator runs them), the
    collections c and d, and keys: a viewer, one scoped to c, one scoped to c with a
    burst of three (and a rate too slow to refill within a test)."""
    root = tmp_path_factory.mktemp("guarded")
    (root / "jwt.secret").write_text(HS)
    srv = ServerProcess(
        data_dir=root / "data",
        args=["--auth-enabled", "true", "--auth-admin-key", ADMIN]
        + ["--jwt-hs256-secret-file", str(root / "jwt.secret"), "--rate-limit-rps", "1000"],
    )
    srv.api_key = ADMIN
    srv.start()
    try:
        for name in ("c", "d"):
            assert srv.request("POST", "/collections", {"name": name, "dimension": 2})[0] == 201
            pts = [{"id": i, "vector": [float(i), 1.0], "payload": {"i": i}} for i in range(20)]
            assert srv.request("POST", f"/collections/{name}/vectors", {"vectors": pts})[0] == 200
        keys = {}
        for name, extra in (
            ("viewer", {}),
            ("scoped", {"collections": ["c"]}),
            ("slow", {"collections": ["c"], "rate_limit_rps": 0.001, "rate_limit_burst": 3}),
        ):
            status, made = srv.request(
                "POST", "/auth/keys", {"name": name, "role": "viewer", **extra}
            )
            assert status == 201, made
            keys[name] = made["secret"]
        yield srv, keys
    finally:
        srv.kill()


def audit_lines(path: Path, *request_ids: str) -> list[dict[str, Any]]:
    """The audit lines of ``request_ids`` in the log at ``path`` (each must have exactly
    one), in that order."""
    found: dict[str, list[dict[str, Any]]] = {}
    for _ in range(200):
        # Complete lines only: the server may be mid-way through the last one.
        lines = path.read_text().split("\n")[:-1] if path.exists() else []
        found = {}
        for doc in map(orjson.loads, lines):
            found.setdefault(doc.get("request_id"), []).append(doc)
        if all(rid in found for rid in request_ids):
            break
        time.sleep(0.02)
    assert all(len(found.get(rid, ())) == 1 for rid in request_ids), found
    return [found[rid][0] for rid in request_ids]


def without_timing(line: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in line.items() if k not in ("time", "request_id", "duration_ms")}


def rate_blind(answer: Any) -> Any:
    """``comparable`` without the values that change from one call to the next."""
    status, headers, doc = comparable(answer)
    moving = ("X-RateLimit-Remaining", "X-RateLimit-Reset")
    return status, [(k, "" if k in moving else v) for k, v in headers], doc


def hs256(**claims: Any) -> str:
    return jwt.encode({"sub": "app", "exp": time.time() + 300, **claims}, HS, algorithm="HS256")


CREDENTIALS: list[tuple[str, Any]] = [
    ("admin", lambda keys: f"X-API-Key: {ADMIN}"),
    ("viewer", lambda keys: f"X-API-Key: {keys['viewer']}"),
    ("qdrant-header", lambda keys: f"api-key: {keys['scoped']}"),
    ("bearer-key", lambda keys: f"Authorization: Bearer {keys['viewer']}"),
    ("jwt", lambda keys: f"Authorization: Bearer {hs256(role='viewer', collections=['c'])}"),
]


@pytest.mark.parametrize(("who", "credential"), CREDENTIALS, ids=[c[0] for c in CREDENTIALS])
def test_an_admitted_search_is_answered_and_audited_as_the_pipeline_does(
    guarded: tuple[ServerProcess, Keys], who: str, credential: Any
) -> None:
    srv, keys = guarded
    body = orjson.dumps({"vector": [3.0, 1.0], "limit": 3})
    header = credential(keys)
    before = scrape(srv)[FAST]
    [quick] = exchange(srv, search("c", body, header, rid=f"{who}-fast"), answers=1)
    assert scrape(srv)[FAST] - before == 1
    [slow] = exchange(srv, search("c", body, header, "X-Path: slow", rid=f"{who}-slow"), answers=1)
    assert scrape(srv)[FAST] - before == 1
    assert quick[0] == "HTTP/1.1 200 OK"
    assert rate_blind(quick) == rate_blind(slow)
    # The bootstrap admin key is not held to the node's rate; the other credentials are.
    limit = dict(quick[1]).get("X-RateLimit-Limit")
    assert limit == (None if who == "admin" else "1000")
    fast_line, slow_line = audit_lines(
        srv.data_dir / "audit" / "audit.jsonl", f"{who}-fast", f"{who}-slow"
    )
    assert fast_line["event"] == "request" and fast_line["collection"] == "c"
    assert without_timing(fast_line) == without_timing(slow_line)


REFUSED: list[tuple[str, str, Any, str]] = [
    ("no-credentials", "c", lambda keys: "Accept: */*", "401"),
    ("wrong-key", "c", lambda keys: "X-API-Key: vz_nope_0123456789abcdef", "401"),
    (
        "expired-jwt",
        "c",
        lambda keys: f"Authorization: Bearer {hs256(role='viewer', exp=1)}",
        "401",
    ),
    ("out-of-scope", "d", lambda keys: f"X-API-Key: {keys['scoped']}", "403"),
    (
        "jwt-out-of-scope",
        "d",
        lambda keys: f"Authorization: Bearer {hs256(role='viewer', collections=['c'])}",
        "403",
    ),
]


@pytest.mark.parametrize(
    ("who", "name", "credential", "status"), REFUSED, ids=[r[0] for r in REFUSED]
)
def test_a_refused_search_is_the_pipelines_to_refuse(
    guarded: tuple[ServerProcess, Keys], who: str, name: str, credential: Any, status: str
) -> None:
    srv, keys = guarded
    body = orjson.dumps({"vector": [3.0, 1.0]})
    before = scrape(srv)[FAST]
    header = credential(keys)
    [first] = exchange(srv, search(name, body, header, rid=f"{who}-1"), answers=1)
    [second] = exchange(srv, search(name, body, header, "X-Path: slow", rid=f"{who}-2"), answers=1)
    assert first[0].startswith(f"HTTP/1.1 {status} ")
    assert rate_blind(first) == rate_blind(second)
    assert scrape(srv)[FAST] == before
    one, two = audit_lines(srv.data_dir / "audit" / "audit.jsonl", f"{who}-1", f"{who}-2")
    assert one["status"] == int(status) and without_timing(one) == without_timing(two)


def test_a_refused_search_costs_the_caller_one_token(
    guarded: tuple[ServerProcess, Keys],
) -> None:
    """The fast path's admission takes the rate's token last: a search refused for its
    scope, or for the rate, is the pipeline's and costs one token, not two."""
    srv, keys = guarded
    body = orjson.dumps({"vector": [3.0, 1.0]})
    key = f"X-API-Key: {keys['slow']}"
    before = scrape(srv)[FAST]
    answers = exchange(
        srv,
        search("d", body, key, rid="slow-1"),  # outside its scope: 403 (a token)
        search("c", body, key, rid="slow-2"),
        search("c", body, key, rid="slow-3"),
        search("c", body, key, rid="slow-4"),  # the burst of three is spent: 429
        answers=4,
    )
    assert [a[0].split(" ")[1] for a in answers] == ["403", "200", "200", "429"]
    assert [dict(a[1])["X-RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert "Retry-After" in dict(answers[3][1])
    assert scrape(srv)[FAST] - before == 2
    events = [
        line["event"]
        for line in audit_lines(
            srv.data_dir / "audit" / "audit.jsonl", *(f"slow-{i}" for i in range(1, 5))
        )
    ]
    assert events == ["authorization_denied", "request", "request", "rate_limited"]


def test_an_audit_log_without_authentication_gets_the_fast_paths_lines(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    srv = ServerProcess(data_dir=tmp_path / "data", args=["--audit-log-path", str(audit)]).start()
    try:
        assert srv.request("POST", "/collections", {"name": "c", "dimension": 2})[0] == 201
        body = orjson.dumps({"vector": [1.0, 0.0]})
        [quick] = exchange(srv, search("c", body, rid="anon-fast"), answers=1)
        [slow] = exchange(srv, search("c", body, "X-Path: slow", rid="anon-slow"), answers=1)
        assert comparable(quick) == comparable(slow)
        assert scrape(srv)[FAST] == 1
        fast_line, slow_line = audit_lines(audit, "anon-fast", "anon-slow")
        assert fast_line["principal"] == "anonymous"
        assert without_timing(fast_line) == without_timing(slow_line)
    finally:
        srv.kill()


@pytest.mark.parametrize("extra", [(), ("X-Path: slow",)], ids=["fast", "pipeline"])
def test_a_stop_while_a_head_waits_for_its_body_answers_it(
    tmp_path: Path, extra: tuple[str, ...]
) -> None:
    """SIGTERM between a search's head and its body (the head waits for it on the fast
    path, ``protocol.PARK_S``): the body is read on and the search answered."""
    srv = ServerProcess(data_dir=tmp_path / "data").start()
    try:
        assert srv.request("POST", "/collections", {"name": "c", "dimension": DIM})[0] == 201
        vectors = [{"id": i, "vector": [i, 1, 0, 0]} for i in range(10)]
        assert srv.request("POST", "/collections/c/vectors", {"vectors": vectors})[0] == 200
        body = orjson.dumps({"vector": [3, 1, 0, 0], "limit": 1})
        head, _, _ = search("c", body, *extra).partition(b"\r\n\r\n")
        with connect(srv) as sock:
            buf = bytearray()
            sock.sendall(search("c", body, *extra))  # (the connection's task then waits)
            assert read_answer(sock, buf)[0] == "HTTP/1.1 200 OK"
            time.sleep(0.2)
            sock.sendall(head + b"\r\n\r\n")
            time.sleep(0.01)
            assert srv.proc is not None
            srv.proc.send_signal(signal.SIGTERM)
            time.sleep(0.04)  # (within the wait for the body)
            sock.sendall(body)
            status_line, _, raw = read_answer(sock, buf)
        assert status_line == "HTTP/1.1 200 OK", raw
        assert orjson.loads(raw)["results"][0]["id"] == 3
        assert srv.proc.wait(30) == 0
    finally:
        srv.kill()


@pytest.mark.parametrize("extra", [(), ("X-Path: slow",)], ids=["fast", "pipeline"])
def test_a_stop_answers_the_searches_in_flight(tmp_path: Path, extra: tuple[str, ...]) -> None:
    """A search waiting for a large batch's link when SIGTERM comes is answered."""
    srv = ServerProcess(data_dir=tmp_path / "data").start()
    try:
        body = {"name": "big", "dimension": 64, "metric": "euclidean"}
        assert srv.request("POST", "/collections", body)[0] == 201
        rng = np.random.default_rng(5)
        vectors = (rng.normal(size=(40_000, 8)) @ rng.normal(size=(8, 64))).astype(np.float32)
        pts = [{"id": i, "vector": v} for i, v in enumerate(vectors.tolist())]
        assert srv.request("POST", "/collections/big/vectors", {"vectors": pts})[0] == 200
        status, answer = srv.request("GET", "/qdrant/collections/big")
        assert answer["result"]["status"] == "yellow"  # (still being linked)
        query = orjson.dumps({"vector": vectors[7].tolist(), "limit": 1})
        got: list[Any] = []
        with socket.create_connection(("127.0.0.1", srv.port), timeout=60) as sock:
            sock.sendall(search("big", query, *extra))
            time.sleep(0.2)  # (taken and waiting for the link)
            stopper = threading.Thread(target=lambda: got.append(srv.terminate(60)))
            stopper.start()
            status_line, _, raw = read_answer(sock, bytearray())
            stopper.join()
        assert status_line == "HTTP/1.1 200 OK", raw
        assert orjson.loads(raw)["results"][0]["id"] == 7
        assert got == [0]
    finally:
        srv.kill()


def hang_up(srv: ServerProcess, request: bytes) -> None:
    """``request`` sent but the last bytes of its body; then the connection closed (within
    the fast path's wait for a body, ``protocol.PARK_S``)."""
    with connect(srv) as sock:
        sock.sendall(request[:-3])
        time.sleep(0.03)


def settled(read: Callable[[], float], want: float) -> float:
    """``read()`` once it is ``want`` (what a closed connection left is recorded as the
    server sees the close), or after 5 s."""
    deadline = time.monotonic() + 5
    while (got := read()) != want and time.monotonic() < deadline:
        time.sleep(0.02)
    return got


@pytest.mark.parametrize("extra", [(), ("X-Path: slow",)], ids=["fast", "pipeline"])
def test_a_search_whose_client_hangs_up_before_its_body_is_counted(
    node: ServerProcess, extra: tuple[str, ...]
) -> None:
    """A client gone mid-body: a 499 in the request metrics, on either path (the fast
    path forgot a request whose body it waited for)."""
    closed = (
        "vectorizer_http_requests_total{method=POST,route=/collections/{name}/search,status=499}"
    )
    errors = "vectorizer_api_errors_total{code=malformed_request}"
    before = scrape(node)
    body = orjson.dumps({"vector": [0.5] * DIM, "limit": 2})
    hang_up(node, search("c", body, *extra))
    assert settled(lambda: scrape(node).get(closed, 0), before.get(closed, 0) + 1) == (
        before.get(closed, 0) + 1
    )
    after = scrape(node)
    assert after.get(errors, 0) == before.get(errors, 0) + 1
    assert after[FAST] == before[FAST]  # (not answered there)


HUNG_UP: list[tuple[str, str, Any, int]] = [
    ("hung-admitted", "c", lambda keys: f"X-API-Key: {ADMIN}", 499),
    ("hung-unknown", "c", lambda keys: "X-API-Key: not-a-key-of-this-node-0123456", 401),
    ("hung-scope", "d", lambda keys: f"X-API-Key: {keys['scoped']}", 403),
]


@pytest.mark.parametrize(
    ("who", "name", "credential", "status"), HUNG_UP, ids=[h[0] for h in HUNG_UP]
)
def test_a_search_whose_client_hangs_up_is_audited_as_the_pipeline_does(
    guarded: tuple[ServerProcess, Keys], who: str, name: str, credential: Any, status: int
) -> None:
    """Its audit line is the pipeline's: a 499 for a caller let in (the fast path wrote
    none), the refusal for one refused (the pipeline's at once: not waited for)."""
    srv, keys = guarded
    body = orjson.dumps({"vector": [3.0, 1.0], "limit": 2})
    header = credential(keys)
    hang_up(srv, search(name, body, header, rid=f"{who}-1"))
    hang_up(srv, search(name, body, header, "X-Path: slow", rid=f"{who}-2"))
    one, two = audit_lines(srv.data_dir / "audit" / "audit.jsonl", f"{who}-1", f"{who}-2")
    assert one["status"] == status and without_timing(one) == without_timing(two)


def test_a_search_over_its_rate_whose_client_hangs_up_is_audited_429(
    guarded: tuple[ServerProcess, Keys],
) -> None:
    srv, _ = guarded
    body = orjson.dumps({"vector": [3.0, 1.0], "limit": 2})
    for path in ("fast", "slow"):
        made = {"name": f"one-{path}", "role": "viewer", "rate_limit_rps": 0.001}
        status, key = srv.request("POST", "/auth/keys", {**made, "rate_limit_burst": 1})
        assert status == 201, key
        header = f"X-API-Key: {key['secret']}"
        extra = ("X-Path: slow",) if path == "slow" else ()
        [spent] = exchange(srv, search("c", body, header, *extra), answers=1)
        assert spent[0] == "HTTP/1.1 200 OK"
        hang_up(srv, search("c", body, header, *extra, rid=f"over-{path}"))
    one, two = audit_lines(srv.data_dir / "audit" / "audit.jsonl", "over-fast", "over-slow")
    assert one["status"] == 429 and one["event"] == "rate_limited"
    assert without_timing(one) | {"principal": ""} == without_timing(two) | {"principal": ""}


def half_closed(srv: ServerProcess, *requests: bytes) -> list[Any]:
    """``requests`` sent in one write, then the client's side shut (a half-close, as ``nc
    -N`` does); every answer read until the server closes."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as sock:
        sock.sendall(b"".join(requests))
        sock.shutdown(socket.SHUT_WR)
        buf, answers = bytearray(), []
        while True:
            if not buf:
                chunk = sock.recv(65536)
                if not chunk:
                    return answers  # (closed by the server after its last answer)
                buf += chunk
            answers.append(read_answer(sock, buf))


@pytest.mark.parametrize("extra", [(), ("X-Path: slow",)], ids=["fast", "pipeline"])
def test_a_client_that_half_closes_gets_its_answers_then_the_close(
    node: ServerProcess, extra: tuple[str, ...]
) -> None:
    """Requests sent whole before a half-close are answered, in order, on either path
    (the pipeline answered none, the fast path most), then the server closes."""
    body = orjson.dumps({"vector": [0.5] * DIM, "limit": 2})
    get = b"GET /collections/c HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    for _ in range(5):
        [one] = half_closed(node, search("c", body, *extra, rid="half-1"))
        assert one[0] == "HTTP/1.1 200 OK" and dict(one[1])["X-Request-ID"] == "half-1"
        assert len(orjson.loads(one[2])["results"]) == 2
        answers = half_closed(node, search("c", body, *extra, rid="half-2"), get)
        assert [a[0] for a in answers] == ["HTTP/1.1 200 OK"] * 2
        assert "results" in orjson.loads(answers[0][2]) and "collection" in orjson.loads(
            answers[1][2]
        )


@pytest.mark.parametrize("lead", ["none", "fast", "slow"])
@pytest.mark.parametrize("count", [31, 34, 40, 70])
def test_many_pipelined_requests_then_bytes_that_are_not_http_are_all_answered(
    node: ServerProcess, lead: str, count: int
) -> None:
    """More requests pipelined before bytes that are not HTTP than aiohttp queues (32):
    each is answered, in order, then the 400. The parser kept those past the 32nd
    unparsed, then parsed them with the bad bytes in one call, which dropped them: from
    the 34th on they went unanswered, the 400 in the 34th's place."""
    body = orjson.dumps({"vector": [0.5] * DIM, "limit": 2})
    first = {
        "none": [],
        "fast": [search("c", body, rid="lead")],
        "slow": [search("c", body, "X-Path: slow", rid="lead")],
    }[lead]
    gets = [f"GET /ready HTTP/1.1\r\nHost: x\r\nX-Request-ID: r{i}\r\n\r\n" for i in range(count)]
    sent = b"".join([*first, *(g.encode() for g in gets), b"\x00\x01NOT HTTP\r\n\r\n"])
    answers = exchange(node, sent, answers=len(first) + count + 1)
    ids = [dict(a[1]).get("X-Request-ID") for a in answers[:-1]]
    assert ids == ["lead"] * len(first) + [f"r{i}" for i in range(count)]
    assert all(a[0] == "HTTP/1.1 200 OK" for a in answers[:-1])
    assert answers[-1][0].split(" ")[1] == "400" and b"malformed_request" in answers[-1][2]
