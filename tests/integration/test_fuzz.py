"""Fuzz a real ``vectorizer serve`` over real sockets: bad input gets a clear error and
loses nothing.

One server (module scope), seeded with two sentinel collections (one per API) that no
strategy can name, takes in order: schema-driven cases that schemathesis generates from
the server's own ``/openapi.json``; non-schema garbage at every route of that document;
mutated Qdrant requests under ``/qdrant``. Every response must be a 2xx with a JSON body
or a 4xx with the API's structured error body, never a 5xx. Then the sentinels must be
byte-for-byte what they were and, after a SIGKILL and a restart on the same data
directory, every collection must come back with exactly the points it had: whatever the
server accepted is in its log. After that: the replication control routes (on a server of
their own), writes aimed at the sentinels that each carry a defect (refused whole, the
sentinels unchanged), over-long URLs, and the OpenAPI document itself.

Deterministic (``derandomize=True``, no example database) and bounded: the example
counts below keep the module well under a minute and a half on two cores.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import given
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok

from tests.fuzzing import (
    CONTENT_TYPES,
    DIM,
    FUZZ,
    FUZZ_IDS,
    MAX_BODY_BYTES,
    MIDDLE,
    RAW_BODIES,
    VALID_NATIVE,
    Api,
    Sent,
    check_response,
    encode,
    fuzz_settings,
    json_keys,
    json_leaves,
    json_values,
    mutated,
    not_utf8,
    path_values,
    qdrant_requests,
    quote,
    raw_bodies,
    run_collecting,
    weird_strings,
)
from tests.servers import ServerProcess

log = logging.getLogger(__name__)

# Examples per test (each is one request, plus reads where a test checks the sentinels).
SCHEMA_EXAMPLES_PER_OPERATION = 12
GARBAGE_EXAMPLES = 400
QDRANT_EXAMPLES = 2000
POISON_EXAMPLES = 150
REPLICATION_EXAMPLES = 60

SENTINEL = "zz_keep_native_7f3d91c4"  # names no strategy below can produce
QSENTINEL = "zz_keep_qdrant_7f3d91c4"
QFUZZ = "fz_qdrant"  # the Qdrant API's target (dot product); the native one is FUZZ

PATH_PARAM = re.compile(r"\{(\w+)\}")

# Operations the schema-driven and garbage fuzzers leave alone: a valid body for one of
# these legitimately changes the node's role (or, for follow, makes it dial whatever URL
# it names), and the stream is a WebSocket that stays open. They get their own test
# below, with bodies that are always invalid, on a server of their own.
UNSAFE_OPERATIONS = {
    ("POST", "/replication/promote"),
    ("POST", "/replication/follow"),
    ("POST", "/replication/fence"),
    ("GET", "/replication/stream"),
    # fetches the snapshot from whatever URL it is given; test_qdrant_snapshots.py sends
    # it bad locations on 127.0.0.1 (a fuzzer must not make the server call out)
    ("PUT", "/qdrant/collections/{name}/snapshots/recover"),
}

SEED_NATIVE: list[dict[str, Any]] = [
    {
        "id": 1,
        "vector": [0.5, -1.25, 3.0],
        "payload": {"lang": "en", "n": 1, "tags": ["a", "b"], "nested": {"x": 1.5}},
    },
    {
        "id": 2,
        "vector": [1e-3, 2.0, -7.5],
        "payload": {"lang": "d\u00e9", "s": "sn\u00f8w \u2603 \U0001f600", "big": 2**63 - 1},
    },
    {"id": 2**64 - 1, "vector": [3.0, 3.0, -3.0], "payload": {"neg": -(2**63), "f": -0.0}},
    {"id": "doc-\u03b1", "vector": [-1.0, 0.25, 9.0], "payload": {"empty": {}, "list": []}},
    {"id": "s-3", "vector": [0.1, 0.2, 0.3]},
]
SEED_QDRANT: list[dict[str, Any]] = [
    {"id": 7, "vector": [1.0, 2.0, 3.0], "payload": {"city": "Paris", "pop": 2102650}},
    {
        "id": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
        "vector": [-4.5, 0.0, 1e-5],
        "payload": {"city": "K\u00f8benhavn", "tags": [1, 2.5, None, True]},
    },
    {"id": 0, "vector": [0.0, 0.0, 0.0], "payload": {}},
    # (Euclid: near the longest vector a distance can take, validation.NORM_MAX ~6.5e18)
    {"id": 12345678901234, "vector": [1e-30, -1e18, 6e18], "payload": {"k": {"a": {"b": [[]]}}}},
]
SENTINEL_INT_IDS = [1, 2, 2**64 - 1]
SENTINEL_STR_IDS = ["doc-\u03b1", "s-3"]
QSENTINEL_IDS: list[int | str] = [7, "3fa85f64-5717-4562-b3fc-2c963f66afa6", 0, 12345678901234]


# ---- the server under test ---------------------------------------------------------------


@dataclass
class Fuzzed:
    """The module's server (restarted in place by the SIGKILL test) and its sentinels."""

    api: Api
    baseline: dict[str, Any]  # the sentinels as seeded


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    data = tmp_path_factory.mktemp("fuzz") / "data"
    srv = ServerProcess(data_dir=data, args=["--max-body-bytes", str(MAX_BODY_BYTES)]).start()
    api = Api(srv)
    try:
        api.json("POST", "/collections", {"name": SENTINEL, "dimension": 3})
        api.json("POST", f"/collections/{SENTINEL}/vectors", {"vectors": SEED_NATIVE})
        api.json(
            "PUT",
            f"/qdrant/collections/{QSENTINEL}",
            {"vectors": {"size": 3, "distance": "Euclid"}, "hnsw_config": {"m": 0}},
        )
        api.json("PUT", f"/qdrant/collections/{QSENTINEL}/points", {"points": SEED_QDRANT})
        ensure_targets(api)
        yield Fuzzed(api, sentinel_state(api))
    finally:
        srv.kill()


def ensure_targets(api: Api) -> None:
    """(Re)create the two collections the fuzzers aim at, with a few points each."""
    if api.send("GET", f"/collections/{FUZZ}").status == 404:
        api.json("POST", "/collections", {"name": FUZZ, "dimension": DIM})
    if api.send("GET", f"/collections/{QFUZZ}").status == 404:
        api.json(
            "PUT", f"/qdrant/collections/{QFUZZ}", {"vectors": {"size": DIM, "distance": "Dot"}}
        )
    points = [
        {
            "id": pid,
            "vector": [i + 1.0, -0.5, 0.25 * i, 2.0],
            "payload": {"i": i, "tag": f"t{i % 3}"},
        }
        for i, pid in enumerate(FUZZ_IDS)
    ]
    api.json("POST", f"/collections/{FUZZ}/vectors", {"vectors": points})
    api.json("PUT", f"/qdrant/collections/{QFUZZ}/points", {"points": points})


def sentinel_state(api: Api) -> dict[str, Any]:
    """The sentinels through both APIs: raw bytes where the body has no clock in it."""
    listing = "?limit=1000&with_vector=true&with_payload=true"
    scroll = {"limit": 1000, "with_payload": True, "with_vector": True}
    out: dict[str, Any] = {}
    for name in (SENTINEL, QSENTINEL):
        out[f"native list {name}"] = api.send(
            "GET", f"/collections/{name}/vectors{listing}"
        ).content
        out[f"native info {name}"] = api.send("GET", f"/collections/{name}").content
        out[f"qdrant scroll {name}"] = api.json(
            "POST", f"/qdrant/collections/{name}/points/scroll", scroll
        )["result"]
        out[f"qdrant info {name}"] = api.json("GET", f"/qdrant/collections/{name}")["result"]
    return out


def assert_sentinels_intact(fz: Fuzzed, after: str) -> None:
    now = sentinel_state(fz.api)
    for key, before in fz.baseline.items():
        assert now[key] == before, (
            f"{key} changed after {after}\nbefore: {before!r:.2000}\nnow:    {now[key]!r:.2000}"
        )


# ---- 1. schema-driven: schemathesis from the server's own OpenAPI document ---------------


def test_openapi_operations_never_fail_unstructured(fuzzed: Fuzzed) -> None:
    api = fuzzed.api
    schema = schemathesis.openapi.from_url(api.srv.url + "/openapi.json")
    operations = []
    failures: list[str] = []
    for result in schema.get_all_operations():
        if isinstance(result, Ok):
            operations.append(result.ok())
        else:  # an operation schemathesis cannot read is a finding too
            failures.append(f"--- unreadable operation: {result.err()}")
    assert len(operations) >= 45, [op.label for op in operations]
    counted = {"cases": 0}
    for op in operations:
        if (op.method.upper(), op.path) in UNSAFE_OPERATIONS:
            continue
        ensure_targets(api)
        params = PATH_PARAM.findall(op.path)
        variants: list[dict[str, str] | None] = [None]
        if "name" in params:
            named = {"name": QFUZZ if op.path.startswith("/qdrant") else FUZZ}
            variants.append(named)
            if "id" in params:
                variants.append({**named, "id": "3"})
        strategy = st.one_of(
            [
                op.as_strategy(generation_mode=mode, path_parameters=fixed)
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
                for fixed in variants
            ]
        )

        @fuzz_settings(SCHEMA_EXAMPLES_PER_OPERATION)
        @given(case=strategy)
        def run(case: schemathesis.Case[Any]) -> None:
            api.mark()
            response = case.call(base_url=api.srv.url, session=api.session, timeout=30)
            counted["cases"] += 1
            sent = Sent(
                case.method,
                case.formatted_path,
                response.request.body
                if isinstance(response.request.body, bytes | None)
                else str(response.request.body).encode(),
                _text(response.request.headers.get("Content-Type")),
                response.status_code,
                {k.lower(): ", ".join(v) for k, v in response.headers.items()},
                response.content,
            )
            try:
                case.validate_response(response, checks=[not_a_server_error])
                check_response(sent)
            except Exception as exc:
                exc.add_note(f"reproduce: {case.as_curl_command()}")
                exc.add_note(f"server log:\n{api.server_errors()}")
                raise

        run_collecting(op.label, run, failures)
    log.info("schemathesis: %d cases over %d operations", counted["cases"], len(operations))
    assert not failures, "\n\n".join(failures)
    assert_sentinels_intact(fuzzed, "the schema-driven cases")
    assert counted["cases"] >= len(operations) * SCHEMA_EXAMPLES_PER_OPERATION // 2


def _text(value: str | bytes | None) -> str | None:
    return value.decode("latin-1") if isinstance(value, bytes) else value


# ---- 1b. garbage at every route of the document -------------------------------------------


def test_garbage_at_every_route_gets_a_structured_error(fuzzed: Fuzzed) -> None:
    api = fuzzed.api
    ensure_targets(api)
    document = api.json("GET", "/openapi.json")
    routes = sorted(
        (method.upper(), path)
        for path, ops in document["paths"].items()
        for method in ops
        if (method.upper(), path) not in UNSAFE_OPERATIONS
    )
    assert len(routes) >= 45, routes
    names = [FUZZ, QFUZZ, "no_such_collection"]
    path_ids = ["1", "3", "p-1", "-1", "0", "18446744073709551615", "18446744073709551616"]

    @st.composite
    def garbage_request(draw: st.DrawFn) -> tuple[str, str, bytes | None, str | None]:
        method, template = draw(st.sampled_from(routes))
        valid = VALID_NATIVE.get((method, template))
        if draw(st.integers(0, 9)) == MIDDLE:
            method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]))

        def fill(m: re.Match[str]) -> str:
            extra = names if m.group(1) == "name" else path_ids
            return quote(draw(path_values(extra)))

        path = PATH_PARAM.sub(fill, template)
        if draw(st.booleans()):
            query = draw(
                st.dictionaries(
                    st.sampled_from(["limit", "offset", "with_vector", "with_payload", "wait"]),
                    path_values(["1", "true", "false"]),
                    min_size=1,
                    max_size=3,
                )
            )
            path += "?" + "&".join(f"{k}={quote(v)}" for k, v in query.items())
        body_choices: list[st.SearchStrategy[bytes | None]] = [
            raw_bodies,
            json_values.map(encode),
            st.binary(max_size=64),
            st.none(),
        ]
        if valid is not None:
            body_choices += [mutated(valid).map(encode)] * 3
            body_choices += [st.builds(not_utf8, st.just(encode(valid)), st.integers(0, 30))] * 2
        body = draw(st.one_of(body_choices))
        return method, path, body, draw(st.sampled_from(CONTENT_TYPES))

    @fuzz_settings(GARBAGE_EXAMPLES)
    @given(req=garbage_request())
    def run(req: tuple[str, str, bytes | None, str | None]) -> None:
        api.checked(*req)

    before = api.sent
    failures: list[str] = []
    run_collecting("garbage", run, failures)
    log.info("garbage: %d requests", api.sent - before)
    assert not failures, "\n\n".join(failures)
    assert_sentinels_intact(fuzzed, "the garbage")
    assert api.sent - before >= GARBAGE_EXAMPLES


# ---- 2. the Qdrant-compatible API: mutated valid requests --------------------------------


def test_qdrant_mutations_get_qdrant_errors(fuzzed: Fuzzed) -> None:
    api = fuzzed.api
    ensure_targets(api)
    fresh = st.integers(0, 40).map(lambda n: f"fzq_{n}")
    names = st.one_of(
        st.sampled_from([QFUZZ] * 6 + [FUZZ, "no_such_collection"]),
        fresh,
        weird_strings,
    )

    @st.composite
    def qdrant_request(draw: st.DrawFn) -> tuple[str, str, bytes | None, str | None]:
        method, suffix, body = draw(qdrant_requests())
        destructive = (method == "DELETE" and suffix == "") or (method == "PUT" and suffix == "")
        name = draw(fresh | weird_strings) if destructive else draw(names)
        if body is not None and draw(st.booleans()):
            body = draw(mutated(body))
        raw = None if body is None else encode(body)
        if draw(st.integers(0, 19)) == MIDDLE:
            raw = draw(raw_bodies)
        ctype = (
            "application/json"
            if draw(st.integers(0, 9)) != MIDDLE
            else draw(st.sampled_from(CONTENT_TYPES))
        )
        return method, f"/qdrant/collections/{quote(name)}{suffix}", raw, ctype

    writes = ("/points", "/points/delete", "/points/payload", "/points/payload/clear")
    accepted = {"writes": 0}

    @fuzz_settings(QDRANT_EXAMPLES)
    @given(req=qdrant_request())
    def run(req: tuple[str, str, bytes | None, str | None]) -> None:
        sent = api.checked(*req)
        write = req[0] in ("PUT", "DELETE") or req[1].endswith(writes[1:])
        accepted["writes"] += sent.status < 300 and write

    before = api.sent
    failures: list[str] = []
    run_collecting("qdrant", run, failures)
    log.info("qdrant: %d requests, %d writes accepted", api.sent - before, accepted["writes"])
    assert not failures, "\n\n".join(failures)
    assert api.sent - before >= QDRANT_EXAMPLES
    # Some mutations are still valid writes; how many varies between runs (32 in a clean
    # clone's full suite, over 50 in the module alone). The restart test replays them.
    assert accepted["writes"] > 0
    assert_sentinels_intact(fuzzed, "the Qdrant mutations")


# ---- 3. nothing lost, and everything accepted replays after SIGKILL ----------------------


def all_collections(api: Api) -> dict[str, tuple[dict[str, Any], list[Any]]]:
    """Every collection: its description (less ``capacity``) and all its points."""
    out = {}
    for info in api.json("GET", "/collections")["collections"]:
        name = info["name"]
        described = {k: v for k, v in info.items() if k != "capacity"}
        points: list[Any] = []
        offset: Any = None
        while True:
            page = f"/collections/{name}/vectors?limit=10000&with_vector=true&with_payload=true"
            if offset is not None:
                page += f"&offset={quote(str(offset))}"
            got = api.json("GET", page)
            points += got["vectors"]
            offset = got["next_offset"]
            if offset is None:
                break
        out[name] = (described, points)
    return out


def test_nothing_lost_and_accepted_writes_survive_sigkill(fuzzed: Fuzzed) -> None:
    api = fuzzed.api
    assert_sentinels_intact(fuzzed, "all the fuzzing")
    before = all_collections(api)
    assert {SENTINEL, QSENTINEL, FUZZ, QFUZZ} <= set(before)
    keys_before = api.json("GET", "/auth/keys")

    assert api.srv.kill() != 0  # SIGKILL: no shutdown snapshot, only the log
    try:
        api.srv.start()
    except (RuntimeError, TimeoutError) as exc:
        pytest.fail(f"the server did not come back on its data directory: {exc}")
    api.session = requests.Session()

    now = sentinel_state(api)
    for key, was in fuzzed.baseline.items():
        if isinstance(was, bytes):
            assert json.loads(now[key]) == json.loads(was), f"{key} after restart"
        else:
            assert now[key] == was, f"{key} after restart"
    after = all_collections(api)
    assert sorted(after) == sorted(before), "collections appeared or vanished in the restart"
    for name, (described, points) in before.items():
        assert after[name][0] == described, f"{name}: {after[name][0]} != {described}"
        assert len(after[name][1]) == len(points), f"{name}: point count changed"
        assert after[name][1] == points, f"{name}: points changed in the restart"
    assert api.json("GET", "/auth/keys") == keys_before
    log.info(
        "restart: %d collections, %d points", len(after), sum(len(p) for _, p in after.values())
    )


# ---- the replication control routes, apart: only ever invalid bodies ----------------------


def parses_to_object(raw: bytes) -> bool:
    """Whether ``raw`` could read as a JSON object (or is empty): a valid fence body."""
    if not raw.strip():
        return True
    try:
        return isinstance(json.loads(raw), dict)
    except (ValueError, RecursionError):
        return False


def invalid_epochs(allow_none: bool) -> st.SearchStrategy[Any]:
    bad = st.one_of(
        st.integers(max_value=-1),
        st.sampled_from([-1, 2**64, 10**30, 1.0, 1.5, 1e308, -0.0, True, False, "2", "", [2], {}]),
        st.floats(),
        st.text(max_size=5),
    )
    return (bad | st.none()) if allow_none else bad


@st.composite
def replication_garbage(draw: st.DrawFn) -> tuple[str, str, bytes | None, str | None]:
    route = draw(st.sampled_from(["promote", "follow", "fence"]))
    shape = draw(st.sampled_from(["raw", "not an object", "fields"]))
    if shape == "raw":
        safe = [i for i, raw in enumerate(RAW_BODIES) if not parses_to_object(raw)]
        body = RAW_BODIES[draw(st.sampled_from(safe))]
    elif shape == "not an object":
        body = encode(draw(st.one_of(st.lists(json_leaves, max_size=3), json_leaves)))
    else:
        fields: dict[str, Any] = draw(st.dictionaries(json_keys, json_leaves, max_size=2))
        if route == "follow":
            not_a_url = st.one_of(
                json_leaves.filter(lambda v: not isinstance(v, str)),
                st.text(max_size=20).filter(lambda s: not s.startswith(("http://", "https://"))),
                st.sampled_from(["ftp://127.0.0.1", "HTTP://127.0.0.1", "//127.0.0.1", "file:///"]),
            )
            fields["primary_url"] = draw(not_a_url)
            fields["epoch"] = draw(st.integers(0, 5) | invalid_epochs(True))
        else:  # promote must name an epoch; fence with none (or the current one) is valid
            fields["epoch"] = draw(invalid_epochs(allow_none=route == "promote"))
        body = encode(fields)
    return "POST", f"/replication/{route}", body, draw(st.sampled_from(CONTENT_TYPES))


def test_replication_control_refuses_garbage_and_keeps_its_role(tmp_path: Path) -> None:
    srv = ServerProcess(data_dir=tmp_path / "data").start()
    api = Api(srv)
    try:
        status = api.json("GET", "/replication/status")
        role, epoch = status["role"], status["epoch"]
        assert role == "primary"

        @fuzz_settings(REPLICATION_EXAMPLES)
        @given(req=replication_garbage())
        def run(req: tuple[str, str, bytes | None, str | None]) -> None:
            sent = api.send(*req)
            check_response(sent, expect_error=True)
            now = api.json("GET", "/replication/status")
            assert (now["role"], now["epoch"]) == (role, epoch), f"{now}\n{sent.reproduction()}"

        failures: list[str] = []
        run_collecting("replication", run, failures)
        assert not failures, "\n\n".join(failures)
        api.json("POST", "/collections", {"name": "still_writable", "dimension": 2})
        srv.kill()
        srv.start()
        status = api.json("GET", "/replication/status")
        assert (status["role"], status["epoch"]) == (role, epoch)
        assert api.json("GET", "/collections/still_writable")["collection"]["dimension"] == 2
    finally:
        srv.kill()


# ---- 4. malformed writes aimed at the sentinels change nothing ---------------------------

BAD_IDS: list[Any] = [-1, 2**64, 10**30, "", "123", "x" * 257, 1.5, True, None, [1], {"id": 1}]
BAD_VECTORS: list[Any] = [
    [1.0, 2.0],
    [1.0, 2.0, 3.0, 4.0],
    [],
    "abc",
    None,
    [1.0, "2", 3.0],
    [1.0, None, 3.0],
    [[1.0, 2.0, 3.0]],
    [1e39, 0.0, 0.0],
    [float("nan"), 1.0, 1.0],
    [float("inf"), 1.0, 1.0],
    {"": [1.0, 2.0]},
    {"text": "hello"},
    {"indices": [0], "values": [1.0]},
]
DEEP: Any = 1
for _ in range(70):
    DEEP = [DEEP]
BAD_PAYLOADS: list[Any] = [
    [1],
    "x",
    5,
    True,
    {"n": 2**64},
    {"n": -(2**64)},
    {"n": [1, 10**30]},
    {"s": "\ud800"},
    {"deep": DEEP},  # the body nests past max_json_depth (64)
]
BAD_FILTERS: list[Any] = [
    {"must": [{"key": "lang"}]},
    {"must": [{"key": "lang", "match": {"value": "en"}}, {"key": "x"}]},
    {"should": [{"key": "city", "match": {}}]},
    {"must": "x"},
    {"nope": []},
    {"must": [{"key": "lang", "match": {"value": "en"}}], "bogus": 1},
    {"must": [{"has_id": [1, -1]}]},
    {"must": [{"key": "pop", "range": {"gt": "a"}}]},
    {"must": [{"key": "", "match": {"value": 1}}]},
    {"min_should": 5},
    [],
    "lang",
]


@st.composite
def poisoned_point(draw: st.DrawFn, ids_: list[Any], dim: int) -> dict[str, Any]:
    good = {
        "id": draw(st.sampled_from(ids_) | st.integers(100, 200)),
        "vector": draw(st.lists(st.floats(0.5, 9.5), min_size=dim, max_size=dim)),
        "payload": {"was": "overwritten"},
    }
    how = draw(st.sampled_from(["id", "vector", "payload", "extra", "no_id", "no_vector"]))
    if how in ("id", "vector", "payload"):
        pool = {"id": BAD_IDS, "vector": BAD_VECTORS, "payload": BAD_PAYLOADS}[how]
        good[how] = draw(st.sampled_from(pool))
    elif how == "extra":
        good[draw(st.sampled_from(["colour", "ID", "vectors", ""]))] = 1
    else:
        del good[how[3:]]
    return good


@st.composite
def with_poison(
    draw: st.DrawFn, good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]
) -> list[Any]:
    items = draw(st.lists(good, max_size=3))
    items.insert(draw(st.integers(0, len(items))), draw(bad))
    return items


@st.composite
def poisoned_write(draw: st.DrawFn) -> tuple[str, str, bytes]:
    """A write to a sentinel that must be refused whole: it carries at least one defect."""
    n_ids: list[Any] = [*SENTINEL_INT_IDS, *SENTINEL_STR_IDS]
    q_ids: list[Any] = list(QSENTINEL_IDS)
    good_vec = st.lists(st.floats(0.5, 9.5), min_size=3, max_size=3)
    kind = draw(
        st.sampled_from(
            [
                "native upsert",
                "native update",
                "native delete ids",
                "native delete filter",
                "native delete both",
                "native delete one",
                "qdrant upsert",
                "qdrant batch",
                "qdrant payload",
                "qdrant delete",
                "qdrant clear",
            ]
        )
    )
    native = f"/collections/{SENTINEL}"
    qdrant = f"/qdrant/collections/{QSENTINEL}"
    body: Any
    if kind == "native upsert":
        good = st.builds(
            lambda i, v: {"id": i, "vector": v, "payload": {"was": "overwritten"}},
            st.sampled_from(n_ids),
            good_vec,
        )
        bad = poisoned_point(n_ids, 3)
        return "POST", f"{native}/vectors", encode({"vectors": draw(with_poison(good, bad))})
    if kind == "native update":
        pid = draw(st.sampled_from(n_ids))
        body = draw(
            st.one_of(
                st.builds(lambda v: {"vector": v}, st.sampled_from(BAD_VECTORS)),
                st.builds(lambda p: {"payload": p}, st.sampled_from(BAD_PAYLOADS)),
                st.builds(
                    lambda v, p: {"vector": v, "payload": p},
                    good_vec,
                    st.sampled_from(BAD_PAYLOADS),
                ),
                st.builds(
                    lambda v: {"vector": v, "payload": {"was": "overwritten"}},
                    st.sampled_from(BAD_VECTORS),
                ),
                st.builds(lambda v: {"vector": v, "colour": 1}, good_vec),
                st.just({}),
                st.just({"vector": None, "payload": None}),
            )
        )
        return "PUT", f"{native}/vectors/{quote(str(pid))}", encode(body)
    if kind == "native delete ids":
        ids_ = draw(with_poison(st.sampled_from(n_ids), st.sampled_from(BAD_IDS)))
        return "POST", f"{native}/vectors/delete", encode({"ids": ids_})
    if kind == "native delete filter":
        return (
            "POST",
            f"{native}/vectors/delete",
            encode({"filter": draw(st.sampled_from(BAD_FILTERS))}),
        )
    if kind == "native delete both":
        body = {"ids": draw(st.lists(st.sampled_from(n_ids), max_size=2)), "filter": {}}
        return "POST", f"{native}/vectors/delete", encode(body)
    if kind == "native delete one":
        pid = draw(st.sampled_from(["18446744073709551616", "99999999999999999999", "x" * 257]))
        return "DELETE", f"{native}/vectors/{quote(pid)}", b""
    if kind == "qdrant upsert":
        good = st.builds(lambda i, v: {"id": i, "vector": v}, st.sampled_from(q_ids), good_vec)
        body = {"points": draw(with_poison(good, poisoned_point(q_ids, 3)))}
        if draw(st.booleans()):
            body = {"points": draw(st.lists(good, min_size=1, max_size=3))}
            body.update(
                draw(
                    st.sampled_from(
                        [
                            {"shard_key": "s"},
                            {"update_filter": {"must": [{"key": "i", "range": {"gt": "x"}}]}},
                            {"update_mode": 5},
                            {"batch": {"ids": [7], "vectors": [[1.0, 1.0, 1.0]]}},
                            {"unknown": True},
                        ]
                    )
                )
            )
        return "PUT", f"{qdrant}/points", encode(body)
    if kind == "qdrant batch":
        n = draw(st.integers(1, 3))
        batch: dict[str, Any] = {
            "ids": draw(st.lists(st.sampled_from(q_ids), min_size=n, max_size=n)),
            "vectors": draw(st.lists(good_vec, min_size=n, max_size=n)),
            "payloads": [{"was": "overwritten"}] * n,
        }
        field = draw(st.sampled_from(["ids", "vectors", "payloads", "length"]))
        if field == "length":
            batch[draw(st.sampled_from(["ids", "vectors", "payloads"]))].append(batch["ids"][0])
        else:
            pool = {"ids": BAD_IDS, "vectors": BAD_VECTORS, "payloads": BAD_PAYLOADS}[field]
            batch[field][draw(st.integers(0, n - 1))] = draw(st.sampled_from(pool))
        return "PUT", f"{qdrant}/points", encode({"batch": batch})
    if kind == "qdrant payload":
        method = draw(st.sampled_from(["POST", "PUT"]))
        good_points = st.lists(st.sampled_from(q_ids), min_size=1, max_size=3)
        body = draw(
            st.one_of(
                st.builds(
                    lambda p: {"payload": {"was": "overwritten"}, "points": p},
                    with_poison(st.sampled_from(q_ids), st.sampled_from([*BAD_IDS, 424242])),
                ),
                st.builds(
                    lambda p, b: {"payload": b, "points": p},
                    good_points,
                    st.sampled_from(BAD_PAYLOADS),
                ),
                st.builds(lambda b: {"payload": b, "filter": {}}, st.sampled_from(BAD_PAYLOADS)),
                st.builds(
                    lambda f: {"payload": {"was": "overwritten"}, "filter": f},
                    st.sampled_from(BAD_FILTERS),
                ),
                st.just({"payload": {"was": "overwritten"}}),
                st.builds(
                    lambda p: {"payload": {"was": "overwritten"}, "points": p, "key": "city"},
                    good_points,
                ),
                st.builds(
                    lambda p: {"payload": {"was": "overwritten"}, "points": p, "shard_key": 1},
                    good_points,
                ),
            )
        )
        return method, f"{qdrant}/points/payload", encode(body)
    suffix = "/points/delete" if kind == "qdrant delete" else "/points/payload/clear"
    body = draw(
        st.one_of(
            st.builds(
                lambda p: {"points": p},
                with_poison(st.sampled_from(q_ids), st.sampled_from(BAD_IDS)),
            ),
            st.builds(lambda f: {"filter": f}, st.sampled_from(BAD_FILTERS)),
            st.just({}),
            st.builds(
                lambda p: {"points": p, "shard_key": "s"},
                st.lists(st.sampled_from(q_ids), max_size=2),
            ),
        )
    )
    if kind == "qdrant clear" and draw(st.booleans()):
        body = {"points": [*q_ids[:2], 424242]}  # a point that does not exist
    return "POST", f"{qdrant}{suffix}", encode(body)


def test_malformed_writes_to_sentinels_change_nothing(fuzzed: Fuzzed) -> None:
    api = fuzzed.api
    assert_sentinels_intact(fuzzed, "the fuzzers and the restart before this test")

    @fuzz_settings(POISON_EXAMPLES)
    @given(req=poisoned_write())
    def run(req: tuple[str, str, bytes]) -> None:
        sent = api.send(*req)
        try:
            check_response(sent, expect_error=True)
            assert_sentinels_intact(fuzzed, "this request")
        except AssertionError as exc:
            exc.add_note(f"{sent.reproduction()}\nserver log:\n{api.server_errors()}")
            raise

    failures: list[str] = []
    run_collecting("poisoned writes", run, failures)
    assert not failures, "\n\n".join(failures)


# ---- over-long URLs ------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/collections/" + "n" * 9000,
        "/collections/" + FUZZ + "/vectors?offset=" + "1" * 9000,
        "/qdrant/collections/" + "n" * 9000 + "/points/scroll",
    ],
    ids=["native-path", "native-query", "qdrant-path"],
)
def test_overlong_urls_get_structured_errors(fuzzed: Fuzzed, path: str) -> None:
    """A name or query past aiohttp's 8190-byte request line is bad input like any other."""
    fuzzed.api.checked("POST" if path.endswith("scroll") else "GET", path, expect_error=True)


# ---- the document the schema-driven fuzzer reads ------------------------------------------


def test_openapi_document_describes_every_request_body(fuzzed: Fuzzed) -> None:
    """Every ``$ref`` resolves and every operation that reads a body documents it:
    otherwise schemathesis (and any generated client) silently sends no body at all."""
    from vectorizer.qdrant.routes import REQUEST_BODIES as QDRANT_BODIES
    from vectorizer.server.openapi import REQUEST_BODIES as NATIVE_BODIES

    document = fuzzed.api.json("GET", "/openapi.json")
    components = document["components"]["schemas"]
    text = json.dumps(document)
    refs = sorted(set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', text)))
    dangling = [ref for ref in refs if ref not in components]
    missing = []
    for method, path in sorted({*NATIVE_BODIES, *QDRANT_BODIES}):
        op = document["paths"].get(path, {}).get(method.lower())
        if op is None or "requestBody" not in op:
            missing.append(f"{method} {path}")
    assert not dangling and not missing, (
        f"dangling $refs: {dangling}\noperations without a requestBody: {missing}"
    )
