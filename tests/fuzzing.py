"""Building blocks for fuzzing a real server (tests/integration/test_fuzz.py): an HTTP
session that keeps every request for its reproduction, the checks every response must
pass, Hypothesis settings, and strategies for hostile values, bodies and requests.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import re
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import requests
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st

from tests.servers import ServerProcess
from vectorizer.server.openapi import PLAIN_TEXT

log = logging.getLogger(__name__)

DIM = 4  # the dimension of the collections the fuzzers aim at
FUZZ = "fz_native"  # the native API's target (cosine)
FUZZ_IDS: list[int | str] = [1, 2, 3, 4, 5, 6, "p-1", "00000000-0000-0000-0000-00000000000a"]
MAX_BODY_BYTES = 1_000_000  # the server's --max-body-bytes

SNAKE_CASE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
# what a leaked Python traceback starts with (a message may echo the word "Traceback"
# from a name the client sent)
TRACEBACK = "Traceback (most recent call last)"
# Hypothesis draws the ends of a range far more often than the rest: a branch meant to
# be taken one time in n (``draw(st.integers(0, n - 1)) == MIDDLE``) compares against a
# middle value, not an end
MIDDLE = 5


# ---- talking to the server ------------------------------------------------------------


@dataclass
class Sent:
    """One request as sent and what came back (for checks and reproductions)."""

    method: str
    path: str
    body: bytes | None
    content_type: str | None
    status: int
    headers: dict[str, str]  # lower-case names
    content: bytes

    def reproduction(self) -> str:
        body = (
            "" if self.body is None else f"\n  body ({len(self.body)} bytes): {self.body[:600]!r}"
        )
        path = (
            self.path if len(self.path) < 300 else f"{self.path[:300]}... ({len(self.path)} chars)"
        )
        return (
            f"  {self.method} {path}  Content-Type: {self.content_type}{body}\n"
            f"  -> {self.status} {self.content[:600]!r}"
        )


class Api:
    """A keep-alive HTTP session to one server; every request is counted."""

    def __init__(self, srv: ServerProcess) -> None:
        self.srv = srv
        self.session = requests.Session()
        self.sent = 0
        self.log_mark = 0  # the server log's size before the latest request

    def mark(self) -> None:
        path = self.srv.log_path
        self.log_mark = path.stat().st_size if path is not None and path.exists() else 0

    def send(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str | None = "application/json",
    ) -> Sent:
        self.mark()
        resp = self.session.request(
            method,
            self.srv.url + path,
            data=body,
            headers={} if content_type is None else {"Content-Type": content_type},
            timeout=30,
            allow_redirects=False,
        )
        self.sent += 1
        headers = {k.lower(): v for k, v in resp.headers.items()}
        return Sent(method, path, body, content_type, resp.status_code, headers, resp.content)

    def checked(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str | None = "application/json",
        *,
        expect_error: bool = False,
    ) -> Sent:
        """``send``, then ``check_response``; a failure carries the server's error lines."""
        sent = self.send(method, path, body, content_type)
        try:
            check_response(sent, expect_error)
        except AssertionError as exc:
            exc.add_note(f"server log:\n{self.server_errors()}")
            raise
        return sent

    def json(self, method: str, path: str, value: Any = None) -> Any:
        sent = self.send(method, path, None if value is None else encode(value))
        assert 200 <= sent.status < 300, sent.reproduction()
        return json.loads(sent.content)

    def server_errors(self) -> str:
        """Error lines the server logged since the latest request."""
        path = self.srv.log_path
        if path is None or not path.exists():
            return ""
        with open(path, "rb") as f:
            f.seek(self.log_mark)
            text = f.read().decode(errors="replace")
        lines = [line for line in text.splitlines() if '"ERROR"' in line or '"CRITICAL"' in line]
        return "\n".join(line[:1500] for line in lines[-5:])


def encode(value: Any) -> bytes:
    """JSON the way a careless client writes it: lone surrogates escaped, NaN allowed."""
    return json.dumps(value, ensure_ascii=True, allow_nan=True).encode()


def quote(segment: str) -> str:
    return urllib.parse.quote(segment.encode("utf-8", "surrogatepass"), safe="")


# ---- what every response must look like --------------------------------------------------


def check_response(sent: Sent, expect_error: bool = False) -> None:
    """No 5xx; errors in the API's structured shape; success bodies are JSON."""
    where = sent.reproduction()
    assert sent.status < 500, f"server error\n{where}"
    assert 200 <= sent.status < 300 or 400 <= sent.status < 500, f"unexpected status\n{where}"
    if expect_error:
        assert sent.status >= 400, f"a malformed request was accepted\n{where}"
    if sent.status < 300 and sent.path.split("?")[0] in PLAIN_TEXT:  # metrics, probes
        ctype = sent.headers.get("content-type", "")
        assert ctype.startswith("text/plain"), f"a plain text answer\n{where}"
        return
    ctype = sent.headers.get("content-type", "")
    assert ctype.startswith("application/json"), f"Content-Type {ctype!r}\n{where}"
    try:
        body = json.loads(sent.content)
    except ValueError:
        raise AssertionError(f"the body is not JSON\n{where}") from None
    qdrant = sent.path.startswith("/qdrant")
    if sent.status >= 400:
        (check_qdrant_error if qdrant else check_native_error)(body, where)
    elif qdrant and sent.path.split("?")[0] not in ("/qdrant", "/qdrant/"):
        # (202: work left to run in the background, ``wait=false``, as the document says)
        status = "accepted" if sent.status == 202 else "ok"
        assert isinstance(body, dict) and body.get("status") == status, where
        assert "result" in body and isinstance(body.get("time"), float), where


def check_native_error(body: Any, where: str) -> None:
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), f"error shape\n{where}"
    assert set(body) == {"error", "request_id"}, f"error keys {sorted(body)}\n{where}"
    assert isinstance(body["request_id"], str) and body["request_id"], where
    err = body["error"]
    assert set(err) - {"details"} == {"code", "message", "field"}, f"error keys\n{where}"
    assert isinstance(err["code"], str) and SNAKE_CASE.fullmatch(err["code"]), where
    assert isinstance(err["message"], str) and err["message"], where
    assert TRACEBACK not in err["message"], where
    assert err["field"] is None or isinstance(err["field"], str), where


def check_qdrant_error(body: Any, where: str) -> None:
    assert isinstance(body, dict) and set(body) == {"status", "time"}, f"error shape\n{where}"
    assert isinstance(body["status"], dict) and set(body["status"]) == {"error"}, where
    assert isinstance(body["status"]["error"], str) and body["status"]["error"], where
    assert TRACEBACK not in body["status"]["error"], where
    assert isinstance(body["time"], float), where


def fuzz_settings(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        print_blob=False,
    )


def run_collecting(label: str, test: Callable[[], None], failures: list[str]) -> None:
    """Run one Hypothesis test; keep its (shrunk) failures and go on with the next."""
    try:
        test()
    except Exception as exc:  # failing examples, each reported with its reproduction
        found = list(exc.exceptions) if isinstance(exc, BaseExceptionGroup) else [exc]
        for one in found:
            notes = "\n".join(getattr(one, "__notes__", []))
            failures.append(f"--- {label}\n{type(one).__name__}: {one}\n{notes}")


# ---- garbage: values, bodies, paths -------------------------------------------------------

WEIRD_STRINGS = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\ud800",
    "\udfff",
    "x\udc00y",
    "\U0001f600",
    "\u202eevil",
    "\ufeffbom",
    "caf\u00e9",
    "\u0663",  # an Arabic-Indic digit
    "../../etc/passwd",
    "%00",
    "%2F",
    "a/b",
    "a.b",
    "a[]",
    "null",
    "true",
    "1e308",
    "-1",
    "0",
    "18446744073709551616",
    "99999999999999999999999999",
    "0x10",
    "\n",
    "\t\r",
    "x" * 257,
    "y" * 2000,  # longer URLs are test_overlong_urls_get_structured_errors' business
    "$ref",
    "__proto__",
]
EXTREME_NUMBERS: list[Any] = [
    0,
    1,
    -1,
    -0.0,
    0.5,
    2**31,
    2**53 + 1,
    2**63 - 1,
    2**63,
    2**64 - 1,
    2**64,
    -(2**63) - 1,
    -(2**64),
    10**30,
    10**400,
    1e308,
    -1e308,
    5e-324,
    3.5e38,
    float("nan"),
    float("inf"),
    float("-inf"),
]
RAW_BODIES = [
    b"",
    b" ",
    b"null",
    b"true",
    b"0",
    b"[]",
    b"{}",
    b'""',
    b"{",
    b'{"a":1',
    b'{"a":1,}',
    b'{"a":1}{"b":2}',
    b'{"a":1,"a":2}',
    b"not json",
    b"\xff\xfe\x00\x00",
    b"\xef\xbb\xbf{}",
    b"\x00",
    b'{"a": NaN}',
    b'{"a": Infinity}',
    b'{"a": -Infinity}',
    b'{"a": 1e999}',
    b'{"a": -1e999}',
    b'{"a": 18446744073709551616}',
    b'{"a": 1180591620717411303424}',
    b'{"a": "\\ud800"}',
    b'{"a": "\xff"}',  # not UTF-8
    b'{"\xed\xa0\x80": 1}',  # a surrogate, UTF-8 encoded
    b'{"\\u0000": "\\u0000"}',
    b"'single'",
    b"<xml/>",
    b"a=1&b=2",
    b"[" * 64 + b"]" * 64,
    b"[" * 65 + b"]" * 65,
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 5000 + b"1" + b"}" * 5000,
    b'{"vectors": ' + b"[" * 70 + b"]" * 70 + b"}",
    b"x" * (MAX_BODY_BYTES + 1),
]


def not_utf8(raw: bytes, where: int) -> bytes:
    """``raw`` with a byte that is never UTF-8 put inside one of its strings."""
    quotes = [i for i, byte in enumerate(raw) if byte == ord('"')]
    if not quotes:
        return raw + b"\xff"
    at = quotes[where % len(quotes)] + 1
    return raw[:at] + b"\xff" + raw[at:]


CONTENT_TYPES = [
    "application/json",
    "application/json",
    "application/json; charset=utf-16",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=zz",
    "application/octet-stream",
    "*/*",
    "",
    None,
]

# By index, so that no strategy's repr spells out the long strings.
weird_strings = st.integers(0, len(WEIRD_STRINGS) - 1).map(lambda i: WEIRD_STRINGS[i])
raw_bodies = st.integers(0, len(RAW_BODIES) - 1).map(lambda i: RAW_BODIES[i])
extreme_numbers = st.sampled_from(EXTREME_NUMBERS)
json_keys = st.one_of(weird_strings, st.text(max_size=12))
json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    extreme_numbers,
    st.integers(),
    st.floats(),
    weird_strings,
    st.text(max_size=16),
)
json_values = st.recursive(
    json_leaves,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(json_keys, kids, max_size=4),
    max_leaves=12,
)


def path_values(extra: list[str]) -> st.SearchStrategy[str]:
    """Values for a path parameter: real names and ids now and then, mostly garbage."""
    return st.one_of(
        st.sampled_from(extra) if extra else st.nothing(),
        weird_strings,
        st.text(min_size=1, max_size=20),
        st.integers(min_value=-(2**70), max_value=2**70).map(str),
        extreme_numbers.map(repr),
    )


def _all_paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _all_paths(child, (*prefix, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _all_paths(child, (*prefix, i))


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        value = value[step]
    return value


def _set(root: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    _get(root, path[:-1])[path[-1]] = new
    return root


@st.composite
def mutated(draw: st.DrawFn, valid: Any) -> Any:
    """``valid`` with one to three edits: a value replaced, dropped, retyped, nested..."""
    value = copy.deepcopy(valid)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(_all_paths(value))))
        target = _get(value, path)
        edit = draw(
            st.sampled_from(
                ["replace", "extreme", "weird", "drop", "add", "wrap", "nest", "stringify"]
            )
        )
        if edit == "replace":
            value = _set(value, path, draw(json_values))
        elif edit == "extreme":
            value = _set(value, path, draw(extreme_numbers))
        elif edit == "weird":
            value = _set(value, path, draw(weird_strings))
        elif edit == "drop" and path:
            parent = _get(value, path[:-1])
            del parent[path[-1]]
        elif edit == "add" and isinstance(target, dict):
            target[draw(json_keys)] = draw(json_values)
        elif edit == "add" and isinstance(target, list):
            target.extend(draw(st.lists(json_values, min_size=1, max_size=3)))
        elif edit == "wrap":
            value = _set(value, path, draw(st.sampled_from([[target], {"value": target}])))
        elif edit == "nest":
            depth = draw(st.sampled_from([2, 30, 62, 63, 64, 65, 200]))
            nested = target
            for _ in range(depth):
                nested = [nested]
            value = _set(value, path, nested)
        elif edit == "stringify":
            value = _set(value, path, json.dumps(target))
    return value


# ---- valid requests, to mutate -----------------------------------------------------------

VALID_NATIVE: dict[tuple[str, str], Any] = {
    ("POST", "/collections"): {"name": "fz_made", "dimension": DIM, "metric": "dot"},
    ("POST", "/collections/{name}/vectors"): {
        "vectors": [{"id": 1, "vector": [1.0, 2.0, 3.0, 4.0], "payload": {"a": 1}}]
    },
    ("PUT", "/collections/{name}/vectors/{id}"): {"vector": [1.0, 0.0, 0.0, 1.0], "payload": {}},
    ("POST", "/collections/{name}/vectors/delete"): {"ids": [5, "p-1"]},
    ("POST", "/collections/{name}/count"): {
        "filter": {"must": [{"key": "tag", "match": {"value": "t1"}}]}
    },
    ("POST", "/collections/{name}/search"): {
        "vector": [1.0, 2.0, 3.0, 4.0],
        "limit": 3,
        "filter": {"should": [{"key": "i", "range": {"gte": 1}}]},
        "with_vector": True,
    },
    ("POST", "/batch_search"): {
        "collection": FUZZ,
        "queries": [{"vector": [1.0, 2.0, 3.0, 4.0], "limit": 2}],
    },
    ("POST", "/auth/keys"): {"name": "fz", "role": "viewer", "collections": [FUZZ]},
    ("POST", "/auth/keys/{key_id}/rotate"): {"grace_s": 1.0},
}


def ids() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(FUZZ_IDS),
        st.integers(0, 2**64 - 1),
        st.uuids().map(str),
        st.uuids().map(lambda u: u.hex),
        st.uuids().map(lambda u: "{" + str(u).upper() + "}"),
        st.text(min_size=1, max_size=8).filter(lambda s: not (s.isascii() and s.isdigit())),
    )


def vectors(dim: int = DIM) -> st.SearchStrategy[list[Any]]:
    component = st.one_of(
        st.floats(-1e30, 1e30, allow_nan=False),
        st.integers(-1000, 1000),
        st.sampled_from([0.0, 1e-45, 3.4e38, -3.4e38]),
    )
    # mostly the right size, so that whole batches get through; mutations do the rest
    sizes = st.integers(0, 15).map(lambda k: {13: dim - 1, 14: dim + 1, 15: 0}.get(k, dim))
    return sizes.flatmap(lambda n: st.lists(component, min_size=n, max_size=n))


# Payloads a client could mean: mostly plain keys and values, now and then a weird one
# (a lone surrogate makes the whole body malformed, so they must stay the exception).
datetimes = st.sampled_from(
    [
        "2026-01-01",
        "2026-01-01T10:00:00Z",
        "2026-03-04T05:06:07.891+02:00",
        "2026-13-01",
        "0001-01-01",
    ]
)
geo_points = st.builds(
    lambda lon, lat: {"lon": lon, "lat": lat},
    st.floats(-181, 181, allow_nan=False),
    st.floats(-91, 91, allow_nan=False),
)
plain_keys = st.one_of(
    st.sampled_from(["i", "tag", "a", "a.b", "n", "nested"]), st.text(max_size=8)
)
payload_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**63 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=10),
        datetimes,
        geo_points,
    ),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(plain_keys, kids, max_size=3),
    max_leaves=8,
)
payloads = st.one_of(
    st.dictionaries(plain_keys, payload_values, max_size=4),
    st.dictionaries(plain_keys, payload_values, max_size=4),
    st.dictionaries(plain_keys, payload_values, max_size=4),
    st.dictionaries(json_keys, json_values, max_size=3),
)
payload_keys = st.one_of(
    st.sampled_from(["i", "tag", "a.b", "nested.x", "tags[]"]), st.text(min_size=1, max_size=6)
)


def optional(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields)


def conditions() -> st.SearchStrategy[dict[str, Any]]:
    match_value = st.one_of(st.text(max_size=5), st.integers(-5, 10), st.booleans())
    return st.one_of(
        st.builds(lambda k, v: {"key": k, "match": {"value": v}}, payload_keys, match_value),
        st.builds(
            lambda k, v: {"key": k, "match": {"any": v}}, payload_keys, st.lists(match_value)
        ),
        st.builds(
            lambda k, v: {"key": k, "match": {"except": v}}, payload_keys, st.lists(match_value)
        ),
        st.builds(lambda k, v: {"key": k, "match": {"text": v}}, payload_keys, st.text(max_size=4)),
        st.builds(
            lambda k, lo, hi: {"key": k, "range": {"gte": lo, "lt": hi}},
            payload_keys,
            st.integers(-3, 5) | st.floats(allow_nan=False),
            st.integers(-3, 9) | st.floats(allow_nan=False),
        ),
        st.builds(lambda v: {"has_id": v}, st.lists(ids(), max_size=3)),
        st.builds(lambda k: {"is_empty": {"key": k}}, payload_keys),
        st.builds(lambda k: {"is_null": {"key": k}}, payload_keys),
        st.builds(
            lambda k, kind, v: {"key": k, "match": {kind: v}},
            payload_keys,
            st.sampled_from(["text_any", "phrase", "prefix", "substring"]),
            st.text(max_size=6) | st.integers(0, 3),
        ),
        st.builds(
            lambda k, c, r: {"key": k, "geo_radius": {"center": c, "radius": r}},
            payload_keys,
            geo_points,
            st.floats(-1, 3e7, allow_nan=False),
        ),
        st.builds(
            lambda k, a, b: {"key": k, "geo_bounding_box": {"top_left": a, "bottom_right": b}},
            payload_keys,
            geo_points,
            geo_points,
        ),
        st.builds(
            lambda k, ring: {"key": k, "geo_polygon": {"exterior": {"points": ring}}},
            payload_keys,
            st.lists(geo_points, min_size=2, max_size=4).map(lambda r: [*r, r[0]]),
        ),
        st.builds(
            lambda k, c: {"key": k, "values_count": c},
            payload_keys,
            optional(gte=st.integers(-1, 3), lt=st.integers(0, 4)),
        ),
        st.builds(
            lambda k, c: {"nested": {"key": k, "filter": {"must": c}}},
            st.sampled_from(["a", "a[]", "nested", "tags"]) | payload_keys,
            st.lists(
                st.builds(
                    lambda k, v: {"key": k, "match": {"value": v}},
                    st.sampled_from(["b", "c", "x"]),
                    match_value,
                ),
                max_size=2,
            ),
        ),
        st.sampled_from([{"has_vector": ""}, {"has_vector": "image"}]),
        st.builds(
            lambda t, i: {"slice": {"total": t, "index": i}},
            st.integers(-1, 5) | st.just(2**32),
            st.integers(-1, 5),
        ),
        st.builds(
            lambda k, flag, v: {"key": k, flag: v},
            payload_keys | st.sampled_from(["a[0].b", "tags[1]", "a.b[]"]),
            st.sampled_from(["is_empty", "is_null"]),
            st.booleans() | st.just(1),
        ),
    )


filters: st.SearchStrategy[dict[str, Any]] = st.recursive(
    st.fixed_dictionaries(
        {},
        optional={
            "must": st.lists(conditions(), max_size=3),
            "should": st.lists(conditions(), max_size=3),
            "must_not": st.lists(conditions(), max_size=2),
        },
    ),
    lambda inner: st.fixed_dictionaries(
        {},
        optional={
            "must": st.lists(inner | conditions(), max_size=2),
            "should": st.lists(inner, max_size=2),
            "min_should": st.builds(
                lambda c, n: {"conditions": c, "min_count": n},
                st.lists(conditions(), min_size=1, max_size=3),
                st.integers(0, 4),
            ),
        },
    ),
    max_leaves=4,
)
selector_paths = st.one_of(
    payload_keys,
    st.sampled_from(["a[].b", "a[]", "a[0]", "a[].b[].c", "nested.x[]", "[]", "a.", ""]),
)
with_payloads = st.one_of(
    st.none(),
    st.booleans(),
    st.lists(selector_paths, max_size=2),
    st.builds(lambda k: {"include": k}, st.lists(selector_paths, max_size=2)),
    st.builds(lambda k: {"exclude": k}, st.lists(selector_paths, max_size=2)),
)
limits = st.one_of(st.integers(1, 20), st.sampled_from([1, 10_000, 10_001, 0]))


def search_body() -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(
        lambda vector, limit, rest: {"vector": vector, "limit": limit, **rest},
        vectors(),
        limits,
        optional(
            filter=filters,
            with_payload=with_payloads,
            with_vector=st.booleans(),
            with_vectors=st.booleans(),
            score_threshold=st.floats(allow_nan=False, allow_infinity=False),
            offset=st.integers(0, 5),
            params=optional(hnsw_ef=st.integers(1, 300), exact=st.booleans()),
        ),
    )


def _examples() -> st.SearchStrategy[list[Any]]:
    return st.lists(ids() | vectors(), max_size=3)


def _context_pairs() -> st.SearchStrategy[Any]:
    pair = st.builds(
        lambda p, n: {"positive": p, "negative": n}, ids() | vectors(), ids() | vectors()
    )
    return pair | st.lists(pair, max_size=3)


def _queries() -> st.SearchStrategy[Any]:
    """Every kind of query the query API takes, now and then a wrong one."""
    nearest = vectors() | ids()
    return st.one_of(
        st.none(),
        vectors(),
        ids(),
        st.builds(lambda v: {"nearest": v}, nearest),
        st.builds(
            lambda v, mmr: {"nearest": v, "mmr": mmr},
            nearest,
            optional(
                diversity=st.floats(-0.5, 1.5, allow_nan=False),
                candidates_limit=st.integers(0, 120) | st.just(10_001),
            ),
        ),
        st.builds(
            lambda pos, neg, rest: {"recommend": {"positive": pos, "negative": neg, **rest}},
            _examples(),
            _examples(),
            optional(strategy=st.sampled_from(["average_vector", "best_score", "sum_scores", "x"])),
        ),
        st.builds(lambda c: {"context": c}, _context_pairs()),
        st.builds(
            lambda t, c: {"discover": {"target": t, "context": c}}, nearest, _context_pairs()
        ),
        st.builds(lambda f: {"fusion": f}, st.sampled_from(["rrf", "dbsf", "RRF", "x"])),
        st.builds(
            lambda r: {"rrf": r},
            optional(
                k=st.integers(-1, 100),
                weights=st.lists(st.floats(-1, 3, allow_nan=False), max_size=4),
            ),
        ),
        st.sampled_from(
            [
                {"text": "hi"},
                {"sample": "random"},
                {"order_by": "i"},
                {"order_by": {"key": "n", "direction": "desc", "start_from": 3}},
                {"order_by": {"key": "d", "start_from": "2026-01-01T00:00:00Z"}},
                {"order_by": {"key": "d", "direction": "desc", "start_from": "2026-02-30"}},
            ]
        ),
    )


def _prefetch_fields() -> dict[str, st.SearchStrategy[Any]]:
    return {
        "filter": filters,
        "limit": limits,
        "score_threshold": st.floats(-1, 1),
        "params": optional(hnsw_ef=st.integers(1, 64), exact=st.booleans()),
        "using": st.sampled_from(["", "image"]),
    }


def _prefetches() -> st.SearchStrategy[dict[str, Any]]:
    """Prefetches nest: a few levels here, mutations bring the deep ones."""

    def nesting(inner: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
        return st.builds(
            lambda q, kids, rest: {"query": q, "prefetch": kids, **rest},
            _queries(),
            inner | st.lists(inner, max_size=3),
            optional(**_prefetch_fields()),
        )

    leaf = st.builds(
        lambda q, rest: {"query": q, **rest}, _queries(), optional(**_prefetch_fields())
    )
    return st.recursive(leaf, nesting, max_leaves=4)


def query_body() -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(
        lambda q, rest: {"query": q, **rest},
        _queries(),
        optional(
            prefetch=_prefetches() | st.lists(_prefetches(), max_size=3),
            lookup_from=st.sampled_from(
                [{"collection": FUZZ}, {"collection": "nowhere"}, {"collection": FUZZ, "vector": 1}]
            ),
            limit=limits,
            offset=st.integers(0, 5),
            filter=filters,
            with_payload=with_payloads,
            with_vector=st.booleans() | st.just([""]),
            using=st.sampled_from(["", "image"]),
            score_threshold=st.floats(-1, 1),
            params=optional(hnsw_ef=st.integers(1, 64), exact=st.booleans()),
        ),
    )


def recommend_body() -> st.SearchStrategy[dict[str, Any]]:
    """The examples and options of a legacy recommendation (plain or grouped)."""
    return st.builds(
        lambda pos, neg, rest: {"positive": pos, "negative": neg, **rest},
        st.lists(ids() | vectors(), max_size=3),
        st.lists(ids() | vectors(), max_size=2),
        optional(
            strategy=st.sampled_from(["average_vector", "best_score", "sum_scores", "x"]),
            filter=filters,
            with_payload=with_payloads,
            score_threshold=st.floats(-1, 1),
        ),
    )


def discover_body() -> st.SearchStrategy[dict[str, Any]]:
    """A legacy discovery: a target and/or context pairs of ids or vectors."""
    pair = st.builds(
        lambda p, n: {"positive": p, "negative": n}, ids() | vectors(), ids() | vectors()
    )
    return st.builds(
        lambda rest: {"limit": 3, **rest},
        optional(
            target=ids() | vectors(),
            context=st.lists(pair, max_size=3),
            filter=filters,
            with_payload=with_payloads,
            offset=st.integers(0, 3),
        ),
    )


def selector() -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        st.builds(lambda p: {"points": p}, st.lists(ids(), max_size=4)),
        st.builds(lambda f: {"filter": f}, filters),
    )


index_schemas = st.one_of(
    st.sampled_from(
        ["keyword", "integer", "float", "bool", "datetime", "uuid", "text", "geo", "Keyword", "x"]
    ),
    st.sampled_from(
        [
            {"type": "text", "tokenizer": "word", "lowercase": True, "min_token_len": 2},
            {"type": "text", "tokenizer": "prefix", "max_token_len": 0},
            {"type": "text", "phrase_matching": True, "stopwords": {"custom": ["a", 1]}},
            {"type": "text", "tokenizer": "multilingual", "stemmer": {"type": "snowball"}},
            {"type": "text", "tokenizer": "whitespace", "lowercase": "no"},
            {"type": "integer", "lookup": True, "range": False},
            {"type": "keyword", "is_tenant": True, "on_disk": True},
            {"type": "float", "is_principal": True},
            {"type": "datetime"},
            {"type": "nope"},
            {"tokenizer": "word"},
            {},
        ]
    ),
    st.none(),
)


def _with_batch(
    path: str, body: st.SearchStrategy[dict[str, Any]]
) -> list[st.SearchStrategy[tuple[str, str, Any]]]:
    """A search route and its batch form (``{searches: [...]}``)."""
    batch = st.builds(lambda b: {"searches": b}, st.lists(body, max_size=3))
    return [
        st.tuples(st.just("POST"), st.just(path), body),
        st.tuples(st.just("POST"), st.just(f"{path}/batch"), batch),
    ]


@functools.cache  # (built once: the tree of strategies costs more to build than to draw)
def qdrant_requests() -> st.SearchStrategy[tuple[str, str, Any]]:
    """(method, path after ``/collections/{name}``, valid-looking body)."""
    point = st.builds(
        lambda i, v, rest: {"id": i, "vector": v, **rest},
        ids(),
        vectors(),
        optional(payload=payloads | st.none()),
    )
    batch = st.integers(1, 4).flatmap(
        lambda n: st.builds(
            lambda i, v, p: {"batch": {"ids": i, "vectors": v, **p}},
            st.lists(ids(), min_size=n, max_size=n),
            st.lists(vectors(), min_size=n, max_size=n),
            optional(payloads=st.lists(payloads | st.none(), min_size=n, max_size=n)),
        )
    )
    distances = st.sampled_from(["Cosine", "Dot", "Euclid"] * 3 + ["Manhattan", "cosine", ""])
    create = st.builds(
        lambda size, dist, rest: {"vectors": {"size": size, "distance": dist}, **rest},
        st.integers(1, 8),  # mutations bring the extremes (65537, 2**64, ...)
        distances,
        optional(
            hnsw_config=optional(
                m=st.integers(0, 64) | st.sampled_from([1, 129, 2**31, 2**63]),
                ef_construct=st.integers(4, 512) | st.sampled_from([0, 4097, 2**31, 2**64 - 1]),
            ),
            on_disk_payload=st.booleans(),
            shard_number=st.integers(1, 2),
            optimizers_config=st.just({"indexing_threshold": 0}),
        ),
    )
    with_payload_vector = optional(with_payload=with_payloads, with_vector=st.booleans())
    return st.one_of(
        st.tuples(
            st.just("PUT"),
            st.just("/points"),
            st.builds(
                lambda p, rest: {"points": p, **rest},
                st.lists(point, min_size=1, max_size=4),
                optional(
                    update_filter=filters,
                    update_mode=st.sampled_from(["upsert", "insert_only", "update_only", "x"]),
                ),
            ),
        ),
        st.tuples(st.just("PUT"), st.just("/points"), batch),
        *_with_batch("/points/search", search_body()),
        *_with_batch("/points/query", query_body()),
        st.tuples(
            st.just("POST"),
            st.just("/points/query/groups"),
            st.builds(
                lambda q, g, rest: {**q, "group_by": g, **rest},
                query_body(),
                payload_keys,
                optional(
                    group_size=st.integers(0, 5) | st.just(10_001),
                    with_lookup=st.sampled_from([FUZZ, "missing", "../x", {"collection": 1}]),
                ),
            ),
        ),
        st.tuples(
            st.just("POST"),
            st.just("/points/search/groups"),
            st.builds(
                lambda q, g, size: {**q, "group_by": g, "group_size": size},
                search_body(),
                payload_keys,
                st.integers(0, 4),
            ),
        ),
        st.tuples(
            st.just("POST"),
            st.just("/points/recommend"),
            st.builds(
                lambda r, n, rest: {**r, "limit": n, **rest},
                recommend_body(),
                limits,
                optional(offset=st.integers(0, 3)),
            ),
        ),
        st.tuples(
            st.just("POST"),
            st.just("/points/recommend/batch"),
            st.builds(
                lambda r: {"searches": [{**x, "limit": 3} for x in r]},
                st.lists(recommend_body(), max_size=3),
            ),
        ),
        *_with_batch("/points/discover", discover_body()),
        st.tuples(
            st.just("POST"),
            st.sampled_from(["/points/search/matrix/pairs", "/points/search/matrix/offsets"]),
            optional(
                filter=filters,
                sample=st.integers(-1, 30) | st.just(1001),
                limit=st.integers(-1, 5) | st.just(10_001),
                using=st.sampled_from(["", "image"]),
            ),
        ),
        st.tuples(
            st.just("POST"),
            st.just("/points/payload/delete"),
            st.builds(
                lambda k, s: {"keys": k, **s}, st.lists(selector_paths, max_size=3), selector()
            ),
        ),
        st.tuples(
            st.just("POST"),
            st.just("/points/batch"),
            st.builds(
                lambda ops: {"operations": ops},
                st.lists(
                    st.one_of(
                        st.builds(lambda p: {"upsert": {"points": p}}, st.lists(point, max_size=2)),
                        st.builds(lambda s: {"delete": s}, selector()),
                        st.builds(
                            lambda p, s: {"set_payload": {"payload": p, **s}}, payloads, selector()
                        ),
                        st.builds(lambda s: {"clear_payload": s}, selector()),
                    ),
                    max_size=3,
                ),
            ),
        ),
        st.tuples(
            st.just("POST"),
            st.just("/points/recommend/groups"),
            st.builds(
                lambda r, g: {**r, "group_by": g, "group_size": 2, "limit": 3},
                recommend_body(),
                payload_keys,
            ),
        ),
        st.tuples(
            st.just("POST"),
            st.just("/facet"),
            st.builds(
                lambda k, rest: {"key": k, **rest},
                payload_keys,
                optional(limit=limits, filter=filters, exact=st.booleans()),
            ),
        ),
        st.tuples(
            st.just("POST"),
            st.just("/points/scroll"),
            optional(
                limit=limits,
                offset=ids(),
                filter=filters,
                with_payload=with_payloads,
                with_vector=st.booleans(),
                order_by=payload_keys
                | st.builds(
                    lambda k, rest: {"key": k, **rest},
                    payload_keys,
                    optional(
                        direction=st.sampled_from(["asc", "desc", "up"]),
                        start_from=st.integers(-5, 5) | st.floats(-1, 1) | st.just("2026-01-01"),
                    ),
                ),
            ),
        ),
        st.tuples(
            st.just("POST"), st.just("/points/count"), optional(filter=filters, exact=st.booleans())
        ),
        st.tuples(st.just("POST"), st.just("/points/delete"), selector()),
        st.tuples(
            st.just("POST"),
            st.just("/points/payload"),
            st.builds(
                lambda p, s, k: {"payload": p, **s, **k},
                payloads,
                selector(),
                optional(key=payload_keys | st.sampled_from(["a[0].b", "a[].b", "a..b", "a[x]"])),
            ),
        ),
        st.tuples(
            st.just("PUT"),
            st.just("/points/payload"),
            st.builds(lambda p, s: {"payload": p, **s}, payloads, selector()),
        ),
        st.tuples(st.just("POST"), st.just("/points/payload/clear"), selector()),
        st.tuples(
            st.just("POST"),
            st.just("/points"),
            st.builds(
                lambda i, rest: {"ids": i, **rest}, st.lists(ids(), max_size=4), with_payload_vector
            ),
        ),
        st.tuples(st.just("GET"), ids().map(lambda i: f"/points/{quote(str(i))}"), st.none()),
        st.tuples(st.just("PUT"), st.just(""), create),
        st.tuples(st.sampled_from(["GET", "DELETE"]), st.sampled_from(["", "/exists"]), st.none()),
        st.tuples(
            st.just("PUT"),
            st.just("/index"),
            st.builds(
                lambda k, s: {"field_name": k, "field_schema": s},
                payload_keys,
                index_schemas,
            ),
        ),
        st.tuples(st.just("DELETE"), payload_keys.map(lambda k: f"/index/{quote(k)}"), st.none()),
    )
