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
