"""The OpenAPI document (``/openapi.json``): what it says of bodies, answers, probes,
security and bounds is what the server does."""

from __future__ import annotations

import inspect
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate

from tests.openapi_doc import Contract
from vectorizer.engine import validation
from vectorizer.engine.config import HnswParams
from vectorizer.errors import ValidationError
from vectorizer.security import keys
from vectorizer.server import openapi
from vectorizer.server.app import create_app, open_node
from vectorizer.settings import Settings

Client = TestClient[web.Request, web.Application]
ADMIN = "bootstrap-admin-key-0123456789"


def doc(**over: Any) -> dict[str, Any]:
    built: dict[str, Any] = openapi.build(replace(Settings(), **over))
    return built


def schema(d: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = d["components"]["schemas"][name]
    return found


def op(d: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    found: dict[str, Any] = d["paths"][path][method.lower()]
    return found


async def client_for(
    aiohttp_client: Any, tmp_path: Path, opened: bool = True, **over: Any
) -> Client:
    app = create_app(Settings(data_dir=tmp_path / "data", snapshot_on_shutdown=False, **over))
    if opened:

        async def start(app: web.Application) -> None:
            await open_node(app)

        app.on_startup.append(start)
    client: Client = await aiohttp_client(app)
    return client


def test_the_document_is_valid_whatever_the_settings() -> None:
    validate(doc())
    validate(doc(max_search_limit=50, metrics_public=False, max_batch_points=7))


# ---- 1. replication control bodies ----------------------------------------------------


def test_the_replication_control_bodies_are_documented() -> None:
    d = doc()
    for path, name, required, fields in (
        ("/replication/promote", "Promote", True, ["epoch"]),
        ("/replication/follow", "Follow", True, ["primary_url", "epoch"]),
        ("/replication/fence", "Fence", False, []),
    ):
        body = op(d, "POST", path)["requestBody"]
        assert body["required"] is required, path
        assert body["content"]["application/json"]["schema"] == {
            "$ref": f"#/components/schemas/{name}"
        }
        assert schema(d, name)["required"] == fields, path
    epoch = schema(d, "Promote")["properties"]["epoch"]
    assert epoch == {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}
    contract = Contract(d)
    assert not contract.request_errors(
        "POST", "/replication/follow", {"primary_url": "http://p:1", "epoch": 3}
    )
    assert contract.request_errors("POST", "/replication/follow", {"epoch": 3})
    assert contract.request_errors("POST", "/replication/promote", {"epoch": 2**63})
    assert not contract.request_errors("POST", "/replication/fence", {})


async def test_the_replication_bodies_keep_the_managers_words(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    client = await client_for(aiohttp_client, tmp_path)
    epoch = f"epoch must be an integer from 0 to {2**63 - 1}"
    url = "primary_url must be an http(s) URL with a host"
    for path, body, field, message in (
        ("/replication/promote", {}, "epoch", epoch),
        ("/replication/promote", {"epoch": 1.5}, "epoch", epoch),
        ("/replication/promote", {"epoch": 2**70}, "epoch", epoch),
        ("/replication/promote", {"epoch": "2"}, "epoch", epoch),
        ("/replication/fence", {"epoch": -1}, "epoch", epoch),
        ("/replication/follow", {"epoch": 1}, "primary_url", url),
        ("/replication/follow", {"primary_url": "http://", "epoch": 1}, "primary_url", url),
        ("/replication/follow", {"primary_url": 5, "epoch": 1}, "primary_url", None),
        ("/replication/promote", {"epoch": 2, "epok": 3}, "epok", None),
    ):
        resp = await client.post(path, json=body)
        got = (await resp.json())["error"]
        assert resp.status == 422 and got["code"] == "validation_error", (path, body, got)
        assert got["field"] == field and (message is None or got["message"] == message), got
    # A required body left out is refused as any other; fence's may be.
    resp = await client.post("/replication/promote")
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "malformed_json"
    resp = await client.post("/replication/fence")
    assert resp.status == 200 and (await resp.json())["role"] == "fenced"
    resp = await client.post("/replication/promote", json={"epoch": 2})
    assert resp.status == 200 and (await resp.json())["role"] == "primary"


# ---- 2. snapshot files ------------------------------------------------------------------


def test_snapshot_uploads_and_downloads_are_documented_as_they_are() -> None:
    d = doc()
    upload = op(d, "POST", "/qdrant/collections/{name}/snapshots/upload")
    form = upload["requestBody"]["content"]["multipart/form-data"]
    assert upload["requestBody"]["required"] is True
    assert form["schema"]["required"] == ["snapshot"]
    assert form["encoding"]["snapshot"]["contentType"] == "application/octet-stream"
    for path in (
        "/qdrant/collections/{name}/snapshots/{snapshot_name}",
        "/qdrant/snapshots/{snapshot_name}",
    ):
        download = op(d, "GET", path)
        assert list(download["responses"]["2XX"]["content"]) == ["application/octet-stream"]
        unsatisfiable = download["responses"]["416"]
        assert "content" not in unsatisfiable and "Content-Range" in unsatisfiable["headers"]
        assert {"name": "Range", "in": "header"}.items() <= download["parameters"][-1].items()


# ---- 3. probes ----------------------------------------------------------------------------


async def test_failing_probes_are_documented(aiohttp_client: Any, tmp_path: Path) -> None:
    d = doc()
    for path in ("/ready", "/health"):
        assert "application/json" in op(d, "GET", path)["responses"]["503"]["content"], path
    for path in ("/qdrant/readyz", "/qdrant/healthz", "/qdrant/livez"):
        assert list(op(d, "GET", path)["responses"]["503"]["content"]) == ["text/plain"], path
    contract = Contract(d)
    # a node that is not open yet: not ready
    client = await client_for(aiohttp_client, tmp_path, opened=False)
    for path in ("/ready", "/qdrant/readyz"):
        resp = await client.get(path)
        assert resp.status == 503, path
        body = await (resp.json() if resp.content_type == "application/json" else resp.text())
        contract.check_response("GET", path, 503, resp.headers["Content-Type"], body)
    # (a failed log: the bodies /health and /ready then answer, with and without auth)
    for body in ({"status": "failed", "reason": "fsync failed"}, {"status": "failed"}):
        for path in ("/health", "/ready"):
            contract.check_response("GET", path, 503, "application/json", body)
    contract.check_response("GET", "/ready", 503, "application/json", {"status": "not_ready"})
    assert contract.errors(
        op(d, "GET", "/health")["responses"]["503"]["content"]["application/json"]["schema"],
        {"status": "not_ready"},
    )


# ---- 4. /metrics ------------------------------------------------------------------------------


async def test_metrics_security_follows_metrics_public(aiohttp_client: Any, tmp_path: Path) -> None:
    assert op(doc(), "GET", "/metrics")["security"] == []
    assert "security" not in op(doc(metrics_public=False), "GET", "/metrics")  # the global one
    assert op(doc(metrics_public=False), "GET", "/health")["security"] == []
    # and each node serves its own
    client = await client_for(
        aiohttp_client, tmp_path, auth_enabled=True, auth_admin_key=ADMIN, metrics_public=False
    )
    served = await (await client.get("/openapi.json", headers={"X-API-Key": ADMIN})).json()
    assert "security" not in served["paths"]["/metrics"]["get"]
    assert (await client.get("/metrics")).status == 401


# ---- 5. the list's offset -----------------------------------------------------------------


async def test_a_bad_list_offset_names_offset(aiohttp_client: Any, tmp_path: Path) -> None:
    client = await client_for(aiohttp_client, tmp_path)
    assert (await client.post("/collections", json={"name": "c", "dimension": 2})).status == 201
    for raw in ("", "18446744073709551616", "x" * 257):
        resp = await client.get("/collections/c/vectors", params={"offset": raw})
        got = (await resp.json())["error"]
        assert resp.status == 422 and got["field"] == "offset", got
    resp = await client.get("/collections/c/vectors", params={"offset": "p-1"})
    assert resp.status == 200


# ---- 6. wait ------------------------------------------------------------------------------------


def test_snapshot_creation_documents_wait() -> None:
    d = doc()
    for path in ("/qdrant/collections/{name}/snapshots", "/qdrant/snapshots"):
        params = [p for p in op(d, "POST", path).get("parameters", []) if p["in"] == "query"]
        assert params == [
            {
                "name": "wait",
                "in": "query",
                "required": False,
                "schema": {"type": "boolean", "default": True},
            }
        ], path


# ---- 7. bounds ------------------------------------------------------------------------------------


def test_the_hnsw_and_dimension_bounds_are_the_checks() -> None:
    d = doc()
    hnsw = schema(d, "HnswIn")["properties"]
    assert set(hnsw) == set(openapi.HNSW_RANGES)
    for name, prop in hnsw.items():
        lo, hi = prop["minimum"], prop["maximum"]
        for ok in (lo, hi):
            HnswParams(**{name: ok}).validated()
        for bad in (lo - 1, hi + 1):
            with pytest.raises(ValidationError):
                HnswParams(**{name: bad}).validated()
    create = schema(d, "vectorizer.server.schemas.CreateCollection")["properties"]
    assert (create["dimension"]["minimum"], create["dimension"]["maximum"]) == (1, 65536)
    validation.dimension(65536)
    with pytest.raises(ValidationError):
        validation.dimension(65537)
    assert create["metric"]["enum"] == ["cosine", "euclidean", "dot"]
    assert create["index"]["enum"] == ["hnsw", "exact"]
    assert create["name"]["pattern"] == "^[A-Za-z0-9_-]{1,128}$"


def test_the_key_bounds_are_the_checks() -> None:
    key = schema(doc(), "CreateKey")["properties"]
    now = time.time()
    for role in key["role"]["enum"]:
        keys._check_fields("k", role, None, None, None, None, now)
    with pytest.raises(ValidationError):
        keys._check_fields("k", "root", None, None, None, None, now)
    rps = key["rate_limit_rps"]["anyOf"][0]
    burst = key["rate_limit_burst"]["anyOf"][0]
    keys._check_fields("k", "viewer", None, rps["maximum"], burst["maximum"], None, now)
    keys._check_fields("k", "viewer", None, rps["minimum"], burst["minimum"], None, now)
    for r, b in (
        (rps["minimum"] * 0.99, None),
        (rps["maximum"] * 1.01, None),
        (1.0, burst["minimum"] - 1),
    ):
        with pytest.raises(ValidationError):
            keys._check_fields("k", "viewer", None, r, b, None, now)
    grace = schema(doc(), "RotateKey")["properties"]["grace_s"]
    assert grace["maximum"] == keys.MAX_GRACE_S and grace["minimum"] == 0


def test_the_limits_follow_the_settings() -> None:
    d = doc(max_search_limit=50, max_batch_points=7, max_batch_searches=3)
    search = schema(d, "Search")["properties"]
    assert search["limit"]["maximum"] == search["offset"]["maximum"] == 50
    assert search["limit"]["minimum"] == 1 and search["offset"]["minimum"] == 0
    assert (search["ef"]["anyOf"][0]["minimum"], search["ef"]["anyOf"][0]["maximum"]) == (1, 4096)
    assert schema(d, "UpsertPoints")["properties"]["vectors"]["maxItems"] == 7
    assert schema(d, "BatchSearch")["properties"]["queries"]["maxItems"] == 3
    listing = {
        p["name"]: p["schema"] for p in op(d, "GET", "/collections/{name}/vectors")["parameters"]
    }
    assert (listing["limit"]["minimum"], listing["limit"]["maximum"]) == (1, 50)
    contract = Contract(d)
    for pid, ok in (
        (0, True),
        (2**64 - 1, True),
        (2**64, False),
        (-1, False),
        ("p-1", True),
        ("123", False),
        ("", False),
        ("x" * 257, False),
    ):
        body = {"vectors": [{"id": pid, "vector": [1.0]}]}
        documented = not contract.request_errors("POST", "/collections/{name}/vectors", body)
        assert documented is ok, pid
        try:
            validation.point_id(pid)
            accepted = True
        except ValidationError:
            accepted = False
        assert accepted is ok, pid


# ---- 8. answers and summaries ---------------------------------------------------------------------


CORE = [
    ("GET", "/collections", "200"),
    ("POST", "/collections", "201"),
    ("GET", "/collections/{name}", "200"),
    ("POST", "/collections/{name}/vectors", "200"),
    ("GET", "/collections/{name}/vectors", "200"),
    ("GET", "/collections/{name}/vectors/{id}", "200"),
    ("DELETE", "/collections/{name}/vectors/{id}", "200"),
    ("POST", "/collections/{name}/vectors/delete", "200"),
    ("POST", "/collections/{name}/search", "200"),
    ("POST", "/batch_search", "200"),
    ("GET", "/stats", "200"),
]


def test_the_core_answers_have_schemas() -> None:
    d = doc()
    for method, path, status in CORE:
        content = op(d, method, path)["responses"][status]["content"]
        assert content["application/json"]["schema"], (method, path)


def test_summaries_are_whole_first_sentences() -> None:
    from vectorizer.qdrant.routes import ROUTES as QDRANT
    from vectorizer.replication.views import ROUTES as REPLICATION
    from vectorizer.server.routes import ROUTES

    d = doc()
    handlers = {(r.method, r.path): r.handler for r in (*ROUTES, *REPLICATION, *QDRANT)}  # type: ignore[union-attr]
    for (method, path), handler in handlers.items():
        summary = op(d, method, path)["summary"]
        assert summary.endswith(".") and summary != handler.__name__, (path, summary)
        text = " ".join((inspect.getdoc(handler) or "").replace("``", "`").split())
        if text:
            assert text.startswith(summary), (path, summary)
            rest = text[len(summary) :]
            assert rest == "" or rest.startswith(" "), (path, summary)
    assert op(d, "GET", "/health")["summary"] == "Liveness: the process answers."
    assert "description" in op(d, "GET", "/health")


# ---- 9. the Qdrant bodies' bounds ----------------------------------------------------------------


def test_the_qdrant_bounds_are_the_checks_constants_and_follow_the_settings() -> None:
    from vectorizer.engine.collection import WRITE_MODES
    from vectorizer.engine.config import EF_RANGE, HNSW_RANGES
    from vectorizer.qdrant.groups import DEFAULT_GROUP_SIZE
    from vectorizer.qdrant.models import DEFAULT_LIMIT, METRICS
    from vectorizer.qdrant.snapshots import PRIORITIES

    d = doc(max_search_limit=50, max_batch_points=7, max_batch_searches=3, max_batch_results=40)

    def field(name: str, prop: str) -> dict[str, Any]:
        """A field's schema (its non-null branch when it may be null)."""
        found: dict[str, Any] = schema(d, name)["properties"][prop]
        return next((b for b in found.get("anyOf", []) if b != {"type": "null"}), found)

    def bounds(name: str, prop: str) -> tuple[int, int]:
        f = field(name, prop)
        return f["minimum"], f["maximum"]

    for name in ("SearchRequest", "RecommendRequest", "DiscoverRequest", "QueryRequest"):
        assert bounds(name, "limit") == (1, 50) and bounds(name, "offset") == (0, 50), name
    for name in ("ScrollRequest", "FacetRequest"):
        assert bounds(name, "limit") == (1, 50), name
    for name in ("SearchGroupsRequest", "RecommendGroupsRequest", "QueryGroupsRequest"):
        # limit x group_size is at most max_batch_results
        assert bounds(name, "limit") == bounds(name, "group_size") == (1, 40), name
    assert bounds("Prefetch", "limit") == (1, 39)  # (beside the query's result at least)
    assert bounds("SearchParams", "hnsw_ef") == EF_RANGE
    for name in ("SearchRequestBatch", "RecommendRequestBatch", "DiscoverRequestBatch"):
        assert field(name, "searches")["maxItems"] == 3, name
    assert field("QueryRequestBatch", "searches")["maxItems"] == 3
    for name, most in (("QueryRequest", 2), ("QueryGroupsRequest", 2), ("Prefetch", 1)):
        # (one or a list; the query is a search of the batch too, as a prefetch above)
        given = schema(d, name)["properties"]["prefetch"]["anyOf"]
        assert [b.get("maxItems") for b in given] == [None, most, None], name
    assert bounds("SearchMatrixRequest", "sample") == (1, 3)
    assert bounds("SearchMatrixRequest", "limit") == (1, 40)
    for name, prop in (("Upsert", "points"), ("Batch", "ids"), ("UpdateVectors", "points")):
        f = field(name, prop)
        assert (f["minItems"], f["maxItems"]) == (1, 7), name
    assert field("Upsert", "update_mode")["enum"] == list(WRITE_MODES)
    m = field("HnswConfigDiff", "m")["anyOf"]
    assert m == [{"const": 0}, dict(zip(("minimum", "maximum"), HNSW_RANGES["m"], strict=True))]
    assert bounds("HnswConfigDiff", "ef_construct") == HNSW_RANGES["ef_construction"]
    assert bounds("DenseVectorConfig", "size") == (1, validation.MAX_DIMENSION)
    assert field("DenseVectorConfig", "distance")["enum"] == list(METRICS)
    assert field("SnapshotRecover", "priority")["enum"] == sorted(PRIORITIES)
    # the value the server takes for a limit left out, which must then be within it
    assert schema(d, "QueryRequest")["properties"]["limit"]["default"] == DEFAULT_LIMIT
    assert schema(d, "QueryGroupsRequest")["properties"]["group_size"]["default"] == 3
    assert DEFAULT_GROUP_SIZE == 3
    small = doc(max_search_limit=2)
    limit = small["components"]["schemas"]["ScrollRequest"]["properties"]["limit"]
    assert "default" not in limit and limit["description"] == f"{DEFAULT_LIMIT} when not given"
    validate(small)
    # a query has no room for a prefetch when a batch holds one search
    one = doc(max_batch_searches=1)["components"]["schemas"]["QueryRequest"]["properties"]
    assert {"$ref": "#/components/schemas/Prefetch"} not in one["prefetch"]["anyOf"]


async def test_bounds_that_two_settings_make_are_the_checks(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    """Where the results of a batch bound a search more than max_search_limit does (a
    group's limit x group_size, a prefetch beside its query, a matrix's sample x limit),
    or a batch holds one search (no room for a prefetch), the document and the node agree
    at the edge and just past it."""
    over = {"max_search_limit": 20, "max_batch_searches": 20, "max_batch_results": 10}
    client = await client_for(aiohttp_client, tmp_path / "a", **over)
    single = await client_for(aiohttp_client, tmp_path / "b", max_batch_searches=1)
    q = "/qdrant/collections/{name}"
    grouped = {"query": [1.0, 0.0], "group_by": "g"}
    fused: dict[str, Any] = {"query": {"fusion": "rrf"}, "limit": 1}
    nearest = {"query": [1.0, 0.0], "limit": 1}
    cases = [
        (client, q + "/points/query/groups", {**grouped, "limit": 10, "group_size": 1}, True),
        (client, q + "/points/query/groups", {**grouped, "limit": 11, "group_size": 1}, False),
        (client, q + "/points/query/groups", {**grouped, "limit": 1, "group_size": 10}, True),
        (client, q + "/points/query/groups", {**grouped, "limit": 1, "group_size": 11}, False),
        (client, q + "/points/query", {**fused, "prefetch": {**nearest, "limit": 9}}, True),
        (client, q + "/points/query", {**fused, "prefetch": {**nearest, "limit": 10}}, False),
        (client, q + "/points/search/matrix/pairs", {"sample": 10, "limit": 1}, True),
        (client, q + "/points/search/matrix/pairs", {"sample": 11, "limit": 1}, False),
        (single, q + "/points/query", {**nearest, "prefetch": []}, True),
        (single, q + "/points/query", {**fused, "prefetch": nearest}, False),
        (single, q + "/points/query", {**fused, "prefetch": [nearest]}, False),
    ]
    documents = {}
    for c in (client, single):
        for path, body in (
            ("/qdrant/collections/c", {"vectors": {"size": 2, "distance": "Dot"}}),
            ("/qdrant/collections/c/points", {"points": [{"id": 1, "vector": [1, 0]}]}),
        ):
            assert (await c.put(path, json=body)).status == 200
        documents[id(c)] = Contract(await (await c.get("/openapi.json")).json())
    for c, template, body, ok in cases:
        resp = await c.post(template.replace("{name}", "c"), json=body)
        documented = not documents[id(c)].request_errors("POST", template, body)
        assert (documented, resp.status == 200) == (ok, ok), (body, await resp.text())
        assert ok or resp.status == 400, await resp.text()


async def test_metrics_are_documented_where_served(aiohttp_client: Any, tmp_path: Path) -> None:
    assert "/metrics" in doc()["paths"]
    assert "/metrics" not in doc(metrics_enabled=False)["paths"]
    client = await client_for(aiohttp_client, tmp_path, metrics_enabled=False)
    served = await (await client.get("/openapi.json")).json()
    assert "/metrics" not in served["paths"] and "/health" in served["paths"]
    assert (await client.get("/metrics")).status == 404


def test_a_body_must_give_what_the_server_needs() -> None:
    """Fields each of which may be null or left out, but not all of them (nor, for some,
    two): the document says which combinations the server takes."""
    contract = Contract(doc())
    create = {"collection_name": "c", "alias_name": "a"}
    aliases = "/qdrant/collections/aliases"
    for path in (aliases, "/aliases"):
        for action, ok in (
            ({"create_alias": create}, True),
            ({"create_alias": create, "delete_alias": None, "rename_alias": None}, True),
            ({"create_alias": None, "delete_alias": None, "rename_alias": None}, False),
            ({}, False),
            ({"create_alias": create, "delete_alias": {"alias_name": "a"}}, False),
        ):
            body = {"actions": [action]}
            documented = not contract.request_errors("POST", path, body)
            assert documented is ok, (path, action)
    delete = "/collections/{name}/vectors/delete"
    for body, ok in (
        ({"ids": [1]}, True),
        ({"ids": None, "filter": {}}, True),
        ({"ids": None, "filter": None}, False),
        ({}, False),
        ({"ids": [1], "filter": {}}, False),
    ):
        documented = not contract.request_errors("POST", delete, body)
        assert documented is ok, body
