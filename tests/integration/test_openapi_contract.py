"""The OpenAPI document against a running node: a valid document, and the node's real
answers on the core routes match the schemas it gives (strictly: no field the document
does not name), as do its bodies' limits the checks the node makes."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from openapi_spec_validator import validate

from tests.openapi_doc import Contract
from tests.servers import ServerProcess


class Api:
    def __init__(self, srv: ServerProcess) -> None:
        self.url = srv.url
        self.session = requests.Session()
        doc = self.session.get(self.url + "/openapi.json", timeout=30).json()
        validate(doc)
        self.contract = Contract(doc)
        self.checked = 0

    def call(
        self,
        method: str,
        template: str,
        path: str | None = None,
        body: Any = None,
        *,
        status: int = 200,
        **kwargs: Any,
    ) -> Any:
        """Send, check the status and that the answer is what the document says it is;
        the decoded body. A body sent must also pass the request schema."""
        if body is not None:
            problems = self.contract.request_errors(method, template, body)
            assert not problems, f"{method} {template}: the document refuses {body}: {problems}"
        r = self.session.request(
            method, self.url + (path or template), json=body, timeout=30, **kwargs
        )
        assert r.status_code == status, (method, path or template, r.status_code, r.text)
        ctype = r.headers["Content-Type"]
        answer = r.json() if ctype.startswith("application/json") else r.text
        self.contract.check_response(method, template, r.status_code, ctype, answer)
        self.checked += 1
        return answer


@pytest.fixture
def api(server: ServerProcess) -> Api:
    return Api(server)


C = "/collections/{name}"
POINTS = [
    {"id": 1, "vector": [1.0, 0.0, 0.0], "payload": {"lang": "en", "body": "hello there"}},
    {"id": 2, "vector": [0.0, 1.0, 0.0], "payload": {"lang": "de"}},
    {"id": "p-1", "vector": [0.5, 0.5, 0.0], "payload": None},
    {"id": 18446744073709551615, "vector": [0.0, 0.0, 1.0]},
]


def test_core_native_answers_match_the_document(api: Api) -> None:
    api.call("GET", "/health")
    api.call("GET", "/ready")
    assert api.call("GET", "/stats")["snapshot"] is None
    api.call(
        "POST",
        "/collections",
        body={
            "name": "docs",
            "dimension": 3,
            "metric": "dot",
            "hnsw": {"m": 8, "ef_search": 40},
            "payload_indexes": {"lang": "keyword", "body": {"type": "text", "tokenizer": "word"}},
        },
        status=201,
    )
    api.call(
        "POST",
        "/collections",
        body={"name": "flat", "dimension": 2, "metric": "euclidean", "index": "exact"},
        status=201,
    )
    # Collections made through the Qdrant API: named and sparse vectors, none of its own.
    for name, body in (
        ("named", {"vectors": {"a": {"size": 2, "distance": "Dot"}}}),
        ("sparse", {"sparse_vectors": {"s": {}}}),
    ):
        r = api.session.put(f"{api.url}/qdrant/collections/{name}", json=body, timeout=30)
        assert r.status_code == 200, r.text
    listed = api.call("GET", "/collections")["collections"]
    assert {c["name"] for c in listed} == {"docs", "flat", "named", "sparse"}
    assert {c["dimension"] for c in listed if c["name"] in ("named", "sparse")} == {0}
    api.call("GET", C, "/collections/docs")

    assert api.call("POST", C + "/vectors", "/collections/docs/vectors", {"vectors": POINTS}) == {
        "upserted": 4,
        "sequence": api.call("GET", "/stats")["sequence"],
    }
    api.call(
        "POST",
        C + "/vectors",
        "/collections/flat/vectors",
        {"vectors": [{"id": 7, "vector": [1, 2]}]},
    )
    one = C + "/vectors/{id}"
    for path in (
        "/collections/docs/vectors/1",
        "/collections/docs/vectors/p-1?with_vector=false",
        "/collections/docs/vectors/18446744073709551615",
    ):
        api.call("GET", one, path)
    page = api.call("GET", C + "/vectors", "/collections/docs/vectors?limit=2")
    assert page["next_offset"] == 18446744073709551615
    rest = f"/collections/docs/vectors?offset={page['next_offset']}&with_vector=true&with_payload=false"
    assert api.call("GET", C + "/vectors", rest)["next_offset"] is None
    api.call("PUT", one, "/collections/docs/vectors/1", {"payload": {"lang": "fr"}})
    api.call("PUT", one, "/collections/docs/vectors/p-1", {"vector": [0.1, 0.2, 0.3]})
    count = C + "/count"
    assert api.call("POST", count, "/collections/docs/count") == {"count": 4}
    flt = {"must": [{"key": "lang", "match": {"value": "de"}}]}
    assert api.call("POST", count, "/collections/docs/count", {"filter": flt}) == {"count": 1}

    search = C + "/search"
    hits = api.call("POST", search, "/collections/docs/search", {"vector": [1, 0.1, 0], "limit": 3})
    assert len(hits["results"]) == 3
    api.call(
        "POST",
        search,
        "/collections/docs/search",
        {"vector": [1, 1, 1], "filter": flt, "with_vector": True, "with_payload": False, "ef": 64},
    )
    api.call(
        "POST",
        search,
        "/collections/flat/search",
        {"vector": [1, 2], "threshold": 10.0, "exact": True},
    )
    batch = api.call(
        "POST",
        "/batch_search",
        body={
            "collection": "docs",
            "queries": [
                {"vector": [1, 0, 0]},
                {"vector": [1, 0]},
                {"vector": [0, 1, 0], "filter": flt},
            ],
        },
    )
    assert [r["status"] for r in batch["results"]] == ["ok", "error", "ok"]

    # An error is the document's too (and names the parameter it is about).
    bad = api.call("GET", C + "/vectors", "/collections/docs/vectors?offset=", status=422)
    assert bad["error"]["field"] == "offset"

    api.session.post(api.url + "/collections/docs/snapshot", timeout=60).raise_for_status()
    assert api.call("GET", "/stats")["snapshot"] is not None
    api.call("DELETE", one, "/collections/docs/vectors/p-1")
    deleted = api.call(
        "POST", C + "/vectors/delete", "/collections/docs/vectors/delete", {"ids": [1, 404]}
    )
    assert deleted["deleted"] == 1
    api.call("POST", C + "/vectors/delete", "/collections/docs/vectors/delete", {"filter": flt})
    api.call("DELETE", C, "/collections/flat")
    assert api.checked >= 25


# Bodies the node refuses for a value the document's schema bounds (the schema must say
# so too), next to the edge it accepts.
REFUSED: list[tuple[str, dict[str, Any]]] = [
    ("/collections", {"name": "d", "dimension": 0}),
    ("/collections", {"name": "d", "dimension": 65537}),
    ("/collections", {"name": "d", "dimension": 2, "metric": "manhattan"}),
    ("/collections", {"name": "d", "dimension": 2, "index": "ivf"}),
    ("/collections", {"name": "bad name", "dimension": 2}),
    ("/collections", {"name": "x" * 129, "dimension": 2}),
    ("/collections", {"name": "d", "dimension": 2, "hnsw": {"m": 1}}),
    ("/collections", {"name": "d", "dimension": 2, "hnsw": {"ef_construction": 4097}}),
    ("/collections", {"name": "d", "dimension": 2, "payload_indexes": {"k": "keywords"}}),
    ("/collections/e/search", {"vector": [1, 0], "limit": 0}),
    ("/collections/e/search", {"vector": [1, 0], "limit": 10001}),
    ("/collections/e/search", {"vector": [1, 0], "offset": -1}),
    ("/collections/e/search", {"vector": [1, 0], "ef": 0}),
    ("/collections/e/search", {"vector": [1, 0], "ef": 4097}),
    ("/collections/e/search", {"vector": []}),
    ("/collections/e/vectors", {"vectors": []}),
    ("/collections/e/vectors", {"vectors": [{"id": -1, "vector": [1, 0]}]}),
    ("/collections/e/vectors", {"vectors": [{"id": "123", "vector": [1, 0]}]}),
    ("/collections/e/vectors", {"vectors": [{"id": "", "vector": [1, 0]}]}),
    ("/collections/e/vectors", {"vectors": [{"id": "x" * 257, "vector": [1, 0]}]}),
]
ACCEPTED: list[tuple[str, dict[str, Any]]] = [
    ("/collections", {"name": "d-1_X", "dimension": 1, "hnsw": {"m": 2, "ef_construction": 4}}),
    ("/collections", {"name": "x" * 128, "dimension": 2, "index": "exact"}),
    ("/collections/e/search", {"vector": [1, 0], "limit": 10000, "offset": 10000, "ef": 4096}),
    ("/collections/e/search", {"vector": [1, 0], "limit": 1, "offset": 0, "ef": 1}),
    ("/collections/e/vectors", {"vectors": [{"id": 0, "vector": [1, 0]}]}),
    ("/collections/e/vectors", {"vectors": [{"id": "x" * 256, "vector": [1, 0]}]}),
]


def test_the_documented_bounds_are_the_checks_the_node_makes(api: Api) -> None:
    templates = {"/collections": "/collections", "/collections/e/search": C + "/search"}
    templates["/collections/e/vectors"] = C + "/vectors"
    api.call("POST", "/collections", body={"name": "e", "dimension": 2}, status=201)
    for path, body in REFUSED:
        r = api.session.post(api.url + path, json=body, timeout=30)
        assert r.status_code == 422, (path, body, r.text)
        assert api.contract.request_errors("POST", templates[path], body), (path, body)
    for path, body in ACCEPTED:
        r = api.session.post(api.url + path, json=body, timeout=30)
        assert r.status_code in (200, 201), (path, body, r.text)
        assert not api.contract.request_errors("POST", templates[path], body), (path, body)


def test_snapshot_files_probes_and_metrics_are_as_documented(api: Api) -> None:
    r = api.session.put(
        api.url + "/qdrant/collections/q",
        json={"vectors": {"size": 2, "distance": "Dot"}},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    points = {"points": [{"id": 1, "vector": [1, 2]}, {"id": 2, "vector": [3, 4]}]}
    assert api.session.put(
        api.url + "/qdrant/collections/q/points?wait=true", json=points, timeout=30
    ).ok
    create = api.contract.operation("POST", "/qdrant/collections/{name}/snapshots")
    assert {p["name"] for p in create["parameters"] if p["in"] == "query"} == {"wait"}
    name = api.call(
        "POST", "/qdrant/collections/{name}/snapshots", "/qdrant/collections/q/snapshots"
    )
    name = name["result"]["name"]

    template = "/qdrant/collections/{name}/snapshots/{snapshot_name}"
    url = f"{api.url}/qdrant/collections/q/snapshots/{name}"
    whole = api.session.get(url, timeout=30)
    assert whole.status_code == 200
    assert "application/octet-stream" in api.contract.response("GET", template, 200)["content"]
    assert whole.headers["Content-Type"] == "application/octet-stream"
    part = api.session.get(url, headers={"Range": "bytes=0-9"}, timeout=30)
    assert part.status_code == 206 and part.content == whole.content[:10]
    assert "application/octet-stream" in api.contract.response("GET", template, 206)["content"]
    assert "Range" in {p["name"] for p in api.contract.operation("GET", template)["parameters"]}
    past = api.session.get(url, headers={"Range": f"bytes={len(whole.content) + 10}-"}, timeout=30)
    documented = api.contract.response("GET", template, 416)
    assert past.status_code == 416 and past.content == b""
    assert past.headers["Content-Range"] == f"bytes */{len(whole.content)}"
    assert "Content-Range" in documented["headers"] and "content" not in documented

    upload = api.contract.operation("POST", "/qdrant/collections/{name}/snapshots/upload")
    form = upload["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert upload["requestBody"]["required"] and form["required"] == ["snapshot"]
    answer = api.session.post(
        api.url + "/qdrant/collections/q2/snapshots/upload",
        files={"snapshot": (name, whole.content, "application/octet-stream")},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    api.contract.check_response(
        "POST",
        "/qdrant/collections/{name}/snapshots/upload",
        200,
        answer.headers["Content-Type"],
        answer.json(),
    )
    # no file: refused, in Qdrant's shape
    api.call(
        "POST",
        "/qdrant/collections/{name}/snapshots/upload",
        "/qdrant/collections/q3/snapshots/upload",
        status=400,
    )

    for probe in ("/qdrant/healthz", "/qdrant/livez", "/qdrant/readyz", "/metrics"):
        api.call("GET", probe)
        assert "503" in api.contract.operation("GET", probe)["responses"] or probe == "/metrics"
    assert api.contract.operation("GET", "/metrics")["security"] == []


# ---- the Qdrant bodies' bounds, on a node with small limits --------------------------------

# The limits of the node below: its document's Qdrant bodies are bounded by them (and by
# the constants the checks use), and it refuses what is past them.
LIMITS = {
    "max_search_limit": 20,
    "max_batch_searches": 3,
    "max_batch_points": 4,
    "max_batch_results": 30,
}
Q = "/qdrant/collections/{name}"
V = [1.0, 0.0]


def _points(n: int) -> list[dict[str, Any]]:
    return [{"id": i, "vector": V, "payload": {"g": i % 2}} for i in range(1, n + 1)]


def _many(n: int, **search: Any) -> dict[str, Any]:
    return {"searches": [{"limit": 1, **search}] * n}


def _prefetched(n: int, limit: int = 1, **inner: Any) -> dict[str, Any]:
    one = {"query": V, "limit": limit, **inner}
    return {"prefetch": [one] * n, "query": {"fusion": "rrf"}, "limit": 1}


_FUSED = {"query": {"fusion": "rrf"}, "limit": 1}
_GROUPED = {
    Q + "/points/search/groups": {"vector": V},
    Q + "/points/recommend/groups": {"positive": [1]},
    Q + "/points/query/groups": {"query": V},
}
# (the bodies that select points: by ids (point 4, deleted last) or a filter)
_SELECTORS = {
    Q + "/points/payload": {"payload": {"a": 1}},
    Q + "/points/payload/clear": {},
    Q + "/points/payload/delete": {"keys": ["a"]},
    Q + "/points/vectors/delete": {"vector": ["s"]},
    Q + "/points/delete": {},
}

# (method, route, a body at the edge the node accepts, the body just past it, the field
# the node's refusal names); {name} is the collection c.
EDGES: list[tuple[str, str, Any, Any, str]] = [
    # searches: limit and offset within max_search_limit, hnsw_ef within EF_RANGE
    (
        "POST",
        Q + "/points/search",
        {"vector": V, "limit": 20, "offset": 20},
        {"vector": V, "limit": 21},
        "limit",
    ),
    ("POST", Q + "/points/search", {"vector": V, "limit": 1}, {"vector": V, "limit": 0}, "limit"),
    (
        "POST",
        Q + "/points/search",
        {"vector": V, "limit": 1, "offset": 0},
        {"vector": V, "limit": 1, "offset": 21},
        "offset",
    ),
    (
        "POST",
        Q + "/points/search",
        {"vector": V, "limit": 1, "offset": 0},
        {"vector": V, "limit": 1, "offset": -1},
        "offset",
    ),
    (
        "POST",
        Q + "/points/search",
        {"vector": V, "limit": 1, "params": {"hnsw_ef": 4096}},
        {"vector": V, "limit": 1, "params": {"hnsw_ef": 4097}},
        "params.hnsw_ef",
    ),
    (
        "POST",
        Q + "/points/search",
        {"vector": V, "limit": 1, "params": {"hnsw_ef": 1}},
        {"vector": V, "limit": 1, "params": {"hnsw_ef": 0}},
        "params.hnsw_ef",
    ),
    (
        "POST",
        Q + "/points/recommend",
        {"positive": [1], "limit": 20, "offset": 20},
        {"positive": [1], "limit": 21},
        "limit",
    ),
    (
        "POST",
        Q + "/points/recommend",
        {"positive": [1], "limit": 1, "offset": 20},
        {"positive": [1], "limit": 1, "offset": 21},
        "offset",
    ),
    (
        "POST",
        Q + "/points/discover",
        {"target": V, "limit": 20, "offset": 20},
        {"target": V, "limit": 21},
        "limit",
    ),
    (
        "POST",
        Q + "/points/discover",
        {"target": V, "limit": 1, "offset": 20},
        {"target": V, "limit": 1, "offset": 21},
        "offset",
    ),
    (
        "POST",
        Q + "/points/query",
        {"query": V, "limit": 20, "offset": 20},
        {"query": V, "limit": 21},
        "limit",
    ),
    ("POST", Q + "/points/query", {"limit": 1}, {"limit": 0}, "limit"),
    ("POST", Q + "/points/query", {"query": V, "offset": 20}, {"query": V, "offset": 21}, "offset"),
    # batches: at most max_batch_searches searches (a query's prefetches count)
    ("POST", Q + "/points/search/batch", _many(3, vector=V), _many(4, vector=V), "searches"),
    (
        "POST",
        Q + "/points/recommend/batch",
        _many(3, positive=[1]),
        _many(4, positive=[1]),
        "searches",
    ),
    ("POST", Q + "/points/discover/batch", _many(3, target=V), _many(4, target=V), "searches"),
    ("POST", Q + "/points/query/batch", _many(3, query=V), _many(4, query=V), "searches"),
    ("POST", Q + "/points/query", _prefetched(2), _prefetched(3), "prefetch"),
    (
        "POST",
        Q + "/points/query",
        _prefetched(1, prefetch=[{"limit": 1}], **_FUSED),
        _prefetched(1, prefetch=[{"limit": 1}] * 2, **_FUSED),
        "prefetch",
    ),
    ("POST", Q + "/points/query", _prefetched(1, limit=20), _prefetched(1, limit=21), "limit"),
    ("POST", Q + "/points/query", _prefetched(1, limit=1), _prefetched(1, limit=0), "limit"),
    (
        "POST",
        Q + "/points/query/groups",
        {"group_by": "g", **_prefetched(2)},
        {"group_by": "g", **_prefetched(3)},
        "prefetch",
    ),
    # groups: limit and group_size within max_search_limit (and their product)
    *[
        (
            "POST",
            route,
            {**body, "group_by": "g", "limit": edge[0], "group_size": edge[1]},
            {**body, "group_by": "g", "limit": past[0], "group_size": past[1]},
            field,
        )
        for edge, past, field in (
            ((20, 1), (21, 1), "limit"),
            ((1, 20), (1, 21), "group_size"),
            ((1, 1), (1, 0), "group_size"),
        )
        for route, body in _GROUPED.items()
    ],
    # listings
    ("POST", Q + "/points/scroll", {"limit": 20}, {"limit": 21}, "limit"),
    ("POST", Q + "/points/scroll", {"limit": 1}, {"limit": 0}, "limit"),
    ("POST", Q + "/facet", {"key": "g", "limit": 20}, {"key": "g", "limit": 21}, "limit"),
    ("POST", Q + "/facet", {"key": "g", "limit": 1}, {"key": "g", "limit": 0}, "limit"),
    # distance matrices: sample within max_batch_searches, limit within max_batch_results
    (
        "POST",
        Q + "/points/search/matrix/pairs",
        {"sample": 3, "limit": 10},
        {"sample": 4, "limit": 1},
        "sample",
    ),
    (
        "POST",
        Q + "/points/search/matrix/offsets",
        {"sample": 1, "limit": 30},
        {"sample": 1, "limit": 31},
        "limit",
    ),
    (
        "POST",
        Q + "/points/search/matrix/offsets",
        {"sample": 1, "limit": 1},
        {"sample": 0, "limit": 1},
        "sample",
    ),
    # writes: 1 to max_batch_points points, in a list, in columns or in a batch's upsert
    ("PUT", Q + "/points", {"points": _points(4)}, {"points": _points(5)}, "points"),
    ("PUT", Q + "/points", {"points": _points(1)}, {"points": []}, "points"),
    (
        "PUT",
        Q + "/points",
        {"batch": {"ids": [1, 2, 3, 4], "vectors": [V] * 4}},
        {"batch": {"ids": [1, 2, 3, 4, 5], "vectors": [V] * 5}},
        "batch.vectors",
    ),
    (
        "PUT",
        Q + "/points",
        {"batch": {"ids": [1], "vectors": [V]}},
        {"batch": {"ids": [], "vectors": []}},
        "batch.vectors",
    ),
    (
        "PUT",
        Q + "/points/vectors",
        {"points": [{"id": i, "vector": V} for i in range(1, 5)]},
        {"points": [{"id": i, "vector": V} for i in range(1, 6)]},
        "points",
    ),
    ("PUT", Q + "/points/vectors", {"points": [{"id": 1, "vector": V}]}, {"points": []}, "points"),
    (
        "POST",
        Q + "/points/batch",
        {"operations": [{"upsert": {"points": _points(4)}}]},
        {"operations": [{"upsert": {"points": _points(5)}}]},
        "operations[0].upsert.points",
    ),
    (
        "POST",
        Q + "/points/batch",
        {"operations": [{"delete": {"points": [99]}}]},
        {"operations": [{}]},
        "operations[0]",
    ),
    (
        "POST",
        Q + "/points/batch",
        {"operations": [{"delete": {"points": [99]}}]},
        {"operations": [{"delete": {"points": [99]}, "clear_payload": {"points": [99]}}]},
        "operations[0]",
    ),
    (
        "POST",
        Q + "/points/batch",
        {"operations": [{"clear_payload": {"points": [4]}}]},
        {"operations": [{"clear_payload": {"points": None}}]},
        "operations[0].clear_payload.points",
    ),
    (
        "PUT",
        Q + "/points",
        {"points": _points(1), "update_mode": "update_only"},
        {"points": _points(1), "update_mode": "upsert_only"},
        "update_mode",
    ),
    # which fields a body must give
    (
        "PUT",
        Q + "/points",
        {"points": _points(1), "batch": None},
        {"points": None, "batch": None},
        "points",
    ),
    (
        "PUT",
        Q + "/points",
        {"points": _points(1)},
        {"points": _points(1), "batch": {"ids": [1], "vectors": [V]}},
        "points",
    ),
    *[
        (
            "POST",
            route,
            {**body, "points": [4], "filter": None},
            {**body, "points": None, "filter": None},
            "points",
        )
        for route, body in _SELECTORS.items()
    ],
    *[
        ("POST", route, {**body, "filter": {"must": [{"has_id": [99]}]}}, body, "points")
        for route, body in _SELECTORS.items()
    ],
    (
        "POST",
        "/qdrant/collections/aliases",
        {
            "actions": [
                {"create_alias": {"collection_name": "c", "alias_name": "a1"}, "delete_alias": None}
            ]
        },
        {"actions": [{"create_alias": None, "delete_alias": None, "rename_alias": None}]},
        "actions[0]",
    ),
    (
        "POST",
        "/qdrant/collections/aliases",
        {"actions": [{"delete_alias": {"alias_name": "a1"}}]},
        {
            "actions": [
                {
                    "delete_alias": {"alias_name": "a1"},
                    "rename_alias": {"old_alias_name": "a1", "new_alias_name": "a2"},
                }
            ]
        },
        "actions[0]",
    ),
    (
        "POST",
        "/aliases",
        {
            "actions": [
                {"create_alias": {"collection_name": "c", "alias_name": "a2"}, "rename_alias": None}
            ]
        },
        {"actions": [{"create_alias": None}]},
        "actions[0]",
    ),
    (
        "POST",
        C + "/vectors/delete",
        {"ids": [99], "filter": None},
        {"ids": None, "filter": None},
        "ids",
    ),
    ("POST", C + "/vectors/delete", {"filter": {"must": [{"has_id": [99]}]}}, {}, "ids"),
    (
        "POST",
        C + "/vectors/delete",
        {"ids": [99]},
        {"ids": [99], "filter": {"must": [{"has_id": [99]}]}},
        "ids",
    ),
]

# Collections: hnsw_config within the engine's HNSW_RANGES (m 0: exact), named vectors'
# size within 1..MAX_DIMENSION and a distance Qdrant names. (Each accepted body makes a
# collection or a vector: a name of its own.)
CREATED: list[tuple[str, Any, Any, str]] = [
    *[
        (
            "",
            {"vectors": {"size": 2, "distance": "Dot"}, "hnsw_config": edge},
            {"vectors": {"size": 2, "distance": "Dot"}, "hnsw_config": past},
            field,
        )
        for edge, past, field in (
            ({"m": 0}, {"m": 1}, "hnsw.m"),
            ({"m": 2}, {"m": -1}, "hnsw.m"),
            ({"m": 128}, {"m": 129}, "hnsw.m"),
            ({"ef_construct": 4}, {"ef_construct": 3}, "hnsw.ef_construction"),
            ({"ef_construct": 4096}, {"ef_construct": 4097}, "hnsw.ef_construction"),
        )
    ],
    (
        "/vectors/{vector_name}",
        {"dense": {"size": 1, "distance": "Euclid"}},
        {"dense": {"size": 0, "distance": "Euclid"}},
        "dense.size",
    ),
    (
        "/vectors/{vector_name}",
        {"dense": {"size": 65536, "distance": "Cosine"}},
        {"dense": {"size": 65537, "distance": "Cosine"}},
        "dense.size",
    ),
    (
        "/vectors/{vector_name}",
        {"dense": {"size": 2, "distance": "Dot"}},
        {"dense": {"size": 2, "distance": "Manhattan"}},
        "dense.distance",
    ),
    (
        "/vectors/{vector_name}",
        {"dense": None, "sparse": {}},
        {"dense": None, "sparse": None},
        "dense",
    ),
    (
        "/vectors/{vector_name}",
        {"sparse": {}},
        {"sparse": {}, "dense": {"size": 2, "distance": "Dot"}},
        "dense",
    ),
]


def _refusal(r: requests.Response) -> str:
    """The field a refusal names (Qdrant's errors say it in their text)."""
    body = r.json()
    if "status" in body:
        text: str = body["status"]["error"]
        assert text.startswith("validation_error: "), text
        return text.removeprefix("validation_error: ").split(": ", 1)[0]
    assert body["error"]["code"] == "validation_error", body
    field: str = body["error"]["field"]
    return field


@pytest.fixture
def small(server_factory: Any, tmp_path: Any) -> Api:
    args = [
        a for name, value in LIMITS.items() for a in (f"--{name.replace('_', '-')}", str(value))
    ]
    return Api(server_factory(data_dir=tmp_path / "small", args=args).start())


def test_the_qdrant_bodies_bounds_are_the_checks_the_node_makes(small: Api) -> None:
    """Each body at an edge is accepted by the document and the node, the body just past
    it refused by both (the node naming the field): every mismatch is listed."""
    api, wrong = small, []

    def check(method: str, template: str, path: str, body: Any, field: str | None) -> None:
        """``body`` accepted (``field`` None) or refused for ``field``, by both."""
        r = api.session.request(method, api.url + path, json=body, timeout=30)
        documented = not api.contract.request_errors(method, template, body)
        accepted = r.status_code == 200
        named = None if accepted or r.status_code not in (400, 422) else _refusal(r)
        if (documented, accepted, named) != (field is None, field is None, field):
            said = "valid" if documented else "invalid"
            wrong.append(
                f"{method} {path} {body!r:.160}: the document says {said}, the node "
                f"answers {r.status_code} {r.text[:160]}"
            )

    for path, body in (
        (
            "/qdrant/collections/c",
            {"vectors": {"size": 2, "distance": "Dot"}, "sparse_vectors": {"s": {}}},
        ),
        ("/qdrant/collections/c/points?wait=true", {"points": _points(4)}),
    ):
        r = api.session.put(api.url + path, json=body, timeout=30)
        assert r.status_code == 200, r.text
    for method, template, edge, past, field in EDGES:
        path = template.replace("{name}", "c")
        check(method, template, path, edge, None)
        check(method, template, path, past, field)
    for i, (route, edge, past, field) in enumerate(CREATED):
        template = Q + route
        for j, (body, refused) in enumerate(((edge, None), (past, field))):
            name, vector = ("c", f"v{i}-{j}") if route else (f"h{i}-{j}", "")
            path = template.replace("{name}", name).replace("{vector_name}", vector)
            check("PUT", template, path, body, refused)
    # a recovery's priority is one of snapshots.PRIORITIES
    r = api.session.post(api.url + "/qdrant/collections/c/snapshots", timeout=60)
    assert r.status_code == 200, r.text
    location = f"{api.url}/qdrant/collections/c/snapshots/{r.json()['result']['name']}"
    template = Q + "/snapshots/recover"
    path = template.replace("{name}", "r")
    check("PUT", template, path, {"location": location, "priority": "replica"}, None)
    check("PUT", template, path, {"location": location, "priority": "primary"}, "priority")
    assert not wrong, f"{len(wrong)} mismatches:\n" + "\n".join(wrong)
