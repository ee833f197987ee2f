"""With authentication on, the fast path (``server/fastsearch.py``) knows who is asking,
and whether it may search the collection its path names, before it reads the body or
looks the collection up: a caller the pipeline would refuse (401, 403) costs no more on
the fast path than there, and learns nothing from it, not even whether the collection
exists.

The fast path read the body first (``fastroutes``: the JSON decoded, the collection
looked up, the query checked, the filter compiled) and only then asked who the caller
was: an anonymous caller, or a key scoped to other collections, told an existing
collection from a missing one by how long its 401/403 took (about 2 ms against 1 ms
with a 47 KB body), and an anonymous search with a 53 KB filter cost the event loop
9-13 ms against 0.4 ms on the pipeline. The answers were the pipeline's all along (the
request was handed to it), so what the fast path did before the refusal is observed in
the server's process instead, by a ``sitecustomize`` module that wraps each fast route's
``ask`` (the reading of the body) and writes the collection's name to a file per call:
a refused request must not leave a line. Refused requests must also be answered as the
pipeline answers them (``X-Path: slow`` sends the same request aiohttp's way, where
admission comes before the view) and alike for an existing and a missing collection;
and each request still costs its caller one token of its rate, whichever way it goes.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import orjson
import pytest

from tests.integration.test_fast_search import (
    audit_lines,
    comparable,
    exchange,
    post,
    read_answer,
    without_timing,
)
from tests.integration.test_metrics import scrape
from tests.servers import ServerProcess, sitecustomize

ADMIN = "refuse-first-admin-key-0123456789"
HS = "r" * 48
FAST = "vectorizer_http_fast_path_requests_total{}"
DIM = 4
V = [0.1, 0.2, 0.3, 0.4]
SLOW = "X-Path: slow"  # (a header off the fast path's list: aiohttp's way)

# In the server: each fast route's ``ask`` (what reads a request's body) wrapped to
# write the name it was asked about to ``FAST_ASKED_FILE`` first. Set before
# ``fastsearch`` imports the routes (a ``sitecustomize`` runs before the server's code).
SPY = """
import dataclasses
import os

from vectorizer.server import fastroutes


def _spied(ask):
    def asked(store, settings, name, body):
        with open(os.environ["FAST_ASKED_FILE"], "a") as f:
            f.write(name + "\\n")
        return ask(store, settings, name, body)

    return asked


fastroutes.ROUTES = tuple(
    dataclasses.replace(route, ask=_spied(route.ask)) for route in fastroutes.ROUTES
)
"""


class Node:
    def __init__(self, srv: ServerProcess, asked: Path, keys: dict[str, str]) -> None:
        self.srv, self.asked_file, self.keys = srv, asked, keys

    def asked(self) -> list[str]:
        """The names the fast path read a body for, so far."""
        return self.asked_file.read_text().split() if self.asked_file.exists() else []


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """Auth on (the audit log with it), the collection ``payroll`` (and its alias
    ``pay``), no collection ``nosuch``, and keys scoped to ``mine`` or to ``payroll``."""
    root = tmp_path_factory.mktemp("refuse-first")
    (root / "jwt.secret").write_text(HS)
    asked = root / "asked.txt"
    env = sitecustomize(root / "spy", SPY)
    srv = ServerProcess(
        data_dir=root / "data",
        args=["--auth-enabled", "true", "--auth-admin-key", ADMIN]
        + ["--jwt-hs256-secret-file", str(root / "jwt.secret"), "--rate-limit-rps", "1000"],
        env={**env, "FAST_ASKED_FILE": str(asked)},
    )
    srv.api_key = ADMIN
    srv.start()
    try:
        for name in ("payroll", "mine"):
            assert srv.request("POST", "/collections", {"name": name, "dimension": DIM})[0] == 201
            pts = [{"id": i, "vector": [float(i), 1.0, 0.0, 0.5]} for i in range(20)]
            assert srv.request("POST", f"/collections/{name}/vectors", {"vectors": pts})[0] == 200
        alias = {"create_alias": {"alias_name": "pay", "collection_name": "payroll"}}
        assert srv.request("POST", "/aliases", {"actions": [alias]})[0] == 200
        keys = {}
        for name, extra in (
            ("tenant", {"collections": ["mine"]}),
            ("payroll", {"collections": ["payroll", "ghost"]}),
            (
                "counted",  # (a rate too slow to refill within the test)
                {
                    "collections": ["payroll", "ghost"],
                    "rate_limit_rps": 0.001,
                    "rate_limit_burst": 100,
                },
            ),
        ):
            status, made = srv.request(
                "POST", "/auth/keys", {"name": name, "role": "viewer", **extra}
            )
            assert status == 201, made
            keys[name] = made["secret"]
        yield Node(srv, asked, keys)
    finally:
        srv.kill()


def hs256(**claims: Any) -> str:
    return jwt.encode({"sub": "app", "exp": time.time() + 300, **claims}, HS, algorithm="HS256")


def native(name: str, body: bytes, *extra: str, rid: str | None = None) -> bytes:
    return post(f"/collections/{name}/search", body, *extra, rid=rid)


def qdrant(name: str, body: bytes, *extra: str, rid: str | None = None) -> bytes:
    return post(f"/qdrant/collections/{name}/points/query", body, *extra, rid=rid)


ROUTES: dict[str, tuple[Callable[..., bytes], str]] = {
    "native": (native, "vector"),
    "qdrant": (qdrant, "query"),
}

# A filter of many conditions: the costliest body to read (about 50 KB).
CONDITIONS = [{"key": f"k{i}", "match": {"text": "hello world foo bar"}} for i in range(900)]

# (what each body is to a caller let in: the fast path's to answer, or a 400 or 422)
BODIES: dict[str, Callable[[str], bytes]] = {
    "valid": lambda field: orjson.dumps({field: V, "limit": 3}),
    "wrong-dimension": lambda field: orjson.dumps({field: V[:3], "limit": 3}),
    "bad-json": lambda field: f'{{"{field}": [0.1, 0.2, '.encode(),
    "big-filter": lambda field: orjson.dumps({field: V, "filter": {"should": CONDITIONS}}),
}

# (the credential's header line, and the status the pipeline refuses it with)
CALLERS: dict[str, tuple[Callable[[dict[str, str]], str], int]] = {
    "no-credentials": (lambda keys: "Accept: */*", 401),
    "wrong-key": (lambda keys: "X-API-Key: vz_nope_0123456789abcdef", 401),
    "expired-jwt": (lambda keys: f"Authorization: Bearer {hs256(role='viewer', exp=1)}", 401),
    "other-scope-key": (lambda keys: f"X-API-Key: {keys['tenant']}", 403),
    "other-scope-qdrant-key": (lambda keys: f"api-key: {keys['tenant']}", 403),
    "other-scope-jwt": (
        lambda keys: f"Authorization: Bearer {hs256(role='viewer', collections=['mine'])}",
        403,
    ),
}

CASES = [(r, c, b) for r in ROUTES for c in CALLERS for b in BODIES]


def unnamed(answer: Any, name: str) -> Any:
    """``comparable``, with the collection's name (a 403's message names it) blanked."""
    status, headers, doc = comparable(answer)
    text = orjson.dumps(doc).decode().replace(repr(name), "'{name}'")
    return status, [(k, v) for k, v in headers if k != "Content-Length"], orjson.loads(text)


@pytest.mark.parametrize("route", ROUTES)
def test_a_refused_request_is_audited_as_the_pipeline_audits_it(node: Node, route: str) -> None:
    """(First, and from an address of its own: refusals are throttled in the audit log,
    by source and all together.)"""
    srv = node.srv
    ask, field = ROUTES[route]
    raw = BODIES["big-filter"](field)
    for who, header in (("anon", "Accept: */*"), ("tenant", f"X-API-Key: {node.keys['tenant']}")):
        rids = []
        for name in ("payroll", "nosuch"):
            for slow in (False, True):
                rid = f"audit-{route}-{who}-{name}-{'slow' if slow else 'fast'}"
                rids.append(rid)
                extra = (header, SLOW) if slow else (header,)
                with socket.create_connection(
                    ("127.0.0.1", srv.port), timeout=30, source_address=("127.0.0.77", 0)
                ) as sock:
                    sock.sendall(ask(name, raw, *extra, rid=rid))
                    read_answer(sock, bytearray())
        lines = audit_lines(srv.data_dir / "audit" / "audit.jsonl", *rids)
        fast_payroll, slow_payroll, fast_nosuch, slow_nosuch = map(without_timing, lines)
        assert fast_payroll["event"] == (
            "authentication_failed" if who == "anon" else "authorization_denied"
        )
        assert fast_payroll == slow_payroll and fast_nosuch == slow_nosuch
        assert {**fast_nosuch, "collection": "payroll"} == fast_payroll


@pytest.mark.parametrize(("route", "caller", "body"), CASES, ids=["-".join(c) for c in CASES])
def test_a_refused_caller_is_refused_before_its_body_is_read(
    node: Node, route: str, caller: str, body: str
) -> None:
    """For an existing collection, its alias and a missing one: the same refusal on the
    fast path as on the pipeline, the same whether the collection exists or not, a
    401/403 whatever the body (never the 400, 422 or 404 the body or the name would get),
    and no body read on the fast path on the way to it."""
    srv = node.srv
    ask, field = ROUTES[route]
    credential, status = CALLERS[caller]
    header = credential(node.keys)
    raw = BODIES[body](field)
    before, fast_before = node.asked(), scrape(srv)[FAST]
    answers: dict[tuple[str, bool], Any] = {}
    for name in ("payroll", "pay", "nosuch"):
        for slow in (False, True):
            extra = (header, SLOW) if slow else (header,)
            [answers[name, slow]] = exchange(srv, ask(name, raw, *extra), answers=1)
    first = answers["payroll", False]
    assert first[0].split(" ")[1] == str(status), first
    code = {401: "unauthenticated", 403: "forbidden"}[status]
    assert code in first[2].decode(), first
    for (name, _), answer in answers.items():
        assert comparable(answer) == comparable(answers[name, True]), name  # as the pipeline
        assert unnamed(answer, name) == unnamed(first, "payroll"), name  # whether or not it is
    assert scrape(srv)[FAST] == fast_before
    assert node.asked() == before, "the fast path read the body of a refused request"


@pytest.mark.parametrize("route", ROUTES)
def test_an_admitted_caller_still_has_its_body_read_on_the_fast_path(
    node: Node, route: str
) -> None:
    """The other side (and that the spy sees what the fast path reads): a caller let in
    is answered there, its body read once; a missing collection in its scope is a 404,
    found by reading the body (then answered by the pipeline)."""
    srv = node.srv
    ask, field = ROUTES[route]
    key = f"X-API-Key: {node.keys['payroll']}"
    raw = BODIES["valid"](field)
    before, fast_before = node.asked(), scrape(srv)[FAST]
    [ok] = exchange(srv, ask("payroll", raw, key), answers=1)
    [aliased] = exchange(srv, ask("pay", raw, key), answers=1)
    [missing] = exchange(srv, ask("ghost", raw, key), answers=1)
    assert [a[0].split(" ")[1] for a in (ok, aliased, missing)] == ["200", "200", "404"]
    assert node.asked()[len(before) :] == ["payroll", "pay", "ghost"]
    assert scrape(srv)[FAST] - fast_before == 2
    [slow] = exchange(srv, ask("ghost", raw, key, SLOW), answers=1)
    assert comparable(missing) == comparable(slow)


def test_each_request_costs_its_caller_one_token_whichever_way_it_goes(node: Node) -> None:
    """Answered on the fast path, or left to the pipeline after the fast path let the
    caller in (a shape it leaves to it, a body the view refuses, a collection missing
    from the caller's scope's), or refused for its scope: one token each, never two."""
    srv = node.srv
    key = f"X-API-Key: {node.keys['counted']}"
    big = BODIES["big-filter"]
    requests = [
        ("200", native("payroll", BODIES["valid"]("vector"), key)),  # fast
        ("200", qdrant("payroll", BODIES["valid"]("query"), key)),  # fast
        ("200", native("payroll", orjson.dumps({"vector": V, "with_vector": True}), key)),
        ("200", qdrant("payroll", big("query"), key)),  # (a filter: the pipeline's)
        ("422", native("payroll", BODIES["wrong-dimension"]("vector"), key)),
        ("400", qdrant("payroll", BODIES["bad-json"]("query"), key)),
        ("404", native("ghost", BODIES["valid"]("vector"), key)),
        ("404", qdrant("ghost", BODIES["valid"]("query"), key)),
        ("403", native("mine", BODIES["valid"]("vector"), key)),
        ("403", qdrant("nosuch", big("query"), key)),
        ("200", native("payroll", big("vector"), key)),  # fast (filtered)
    ]
    before = scrape(srv)[FAST]
    answers = exchange(srv, *(r for _, r in requests), answers=len(requests))
    assert [a[0].split(" ")[1] for a in answers] == [s for s, _ in requests]
    remaining = [int(dict(a[1])["X-RateLimit-Remaining"]) for a in answers]
    assert remaining == list(range(99, 99 - len(requests), -1)), remaining
    assert scrape(srv)[FAST] - before == 3
