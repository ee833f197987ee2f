"""Pure parsing and shaping of the Qdrant-compatible layer (no server)."""

from __future__ import annotations

import time
from typing import Any

import msgspec
import pytest
from aiohttp import web
from qdrant_client.http import models as qm

from vectorizer.engine.collection import Collection, Point, ScoredPoint
from vectorizer.engine.config import CollectionConfig, HnswParams, IndexKind, Metric
from vectorizer.engine.filters import compile_filter
from vectorizer.engine.wal import FsyncPolicy
from vectorizer.errors import (
    CollectionExists,
    CollectionNotFound,
    DimensionMismatch,
    ValidationError,
    VectorNotFound,
)
from vectorizer.qdrant import models, responses, schemas
from vectorizer.qdrant.errors import for_qdrant

U = "550e8400-e29b-41d4-a716-446655440000"


def decode(kind: type[Any], body: dict[str, Any]) -> Any:
    return msgspec.convert(body, type=kind)


def error_of(fn: Any, *args: Any) -> str:
    """``field: message`` of the ValidationError that ``fn(*args)`` raises."""
    with pytest.raises(ValidationError) as exc:
        fn(*args)
    return f"{exc.value.field}: {exc.value.message}"


# ---- ids and filters ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (0, 0),
        (2**64 - 1, 2**64 - 1),
        (U, U),
        (U.upper(), U),
        (U.replace("-", ""), U),
        ("{" + U + "}", U),
        ("doc-1", "doc-1"),  # not a UUID: kept, so natively written ids stay reachable
    ],
)
def test_point_id_canonicalises_uuids(raw: Any, expected: Any) -> None:
    assert models.point_id(raw) == expected


@pytest.mark.parametrize("raw", [-1, 2**64, True, 1.5, "", "42", None, [1]])
def test_point_id_rejects(raw: Any) -> None:
    with pytest.raises(ValidationError):
        models.point_id(raw, "points[0].id")


def test_path_point_id() -> None:
    assert models.path_point_id("17") == 17
    assert models.path_point_id(U.upper()) == U
    assert models.path_point_id("doc-1") == "doc-1"


def test_canonical_filter_rewrites_has_id_everywhere() -> None:
    spec = {
        "must": [{"has_id": [1, U.upper()]}, {"key": "a", "match": {"value": U.upper()}}],
        "should": {"has_id": [U.replace("-", "")]},
        "must_not": [{"must": [{"has_id": ["x"]}]}],
        "min_should": {"conditions": [{"has_id": [U.upper()]}], "min_count": 1},
    }
    out = models.canonical_filter(spec)
    assert out["must"][0] == {"has_id": [1, U]}
    assert out["must"][1] == {"key": "a", "match": {"value": U.upper()}}  # payload values untouched
    assert out["should"] == {"has_id": [U]}
    assert out["must_not"] == [{"must": [{"has_id": ["x"]}]}]
    assert out["min_should"]["conditions"] == [{"has_id": [U]}]
    assert models.canonical_filter(None) is None


def test_exclude_ids() -> None:
    spec = {"must": [{"key": "a", "match": {"value": 1}}]}
    pred = compile_filter(models.exclude_ids(spec, [2]))
    assert pred is not None
    assert pred(1, {"a": 1}) and not pred(2, {"a": 1}) and not pred(3, {"a": 0})
    only = compile_filter(models.exclude_ids(None, [U]))
    assert only is not None and only(1, None) and not only(U, None)


# ---- collections ----------------------------------------------------------------------------


def create(body: dict[str, Any]) -> dict[str, Any]:
    return models.collection_config(decode(schemas.CreateCollection, body))


@pytest.mark.parametrize(
    ("distance", "metric"), [("Cosine", "cosine"), ("Euclid", "euclidean"), ("Dot", "dot")]
)
def test_collection_config_maps_distances(distance: str, metric: str) -> None:
    config = create({"vectors": {"size": 8, "distance": distance}})
    assert config == {"dimension": 8, "metric": metric, "index": "hnsw", "hnsw": {}}
    CollectionConfig.parse(config, HnswParams())  # the engine accepts it


def test_collection_config_hnsw_and_ignored_knobs() -> None:
    config = create(
        {
            "vectors": {"size": 4, "distance": "Dot", "on_disk": True, "hnsw_config": {"m": 32}},
            "hnsw_config": {"m": 8, "ef_construct": 64, "full_scan_threshold": 10},
            "shard_number": 2,
            "on_disk_payload": True,
            "optimizers_config": {"indexing_threshold": 0},
            "wal_config": {"wal_capacity_mb": 1},
            "quantization_config": {"scalar": {"type": "int8"}},
            "strict_mode_config": {"enabled": False},
        }
    )
    assert config["hnsw"] == {"m": 32, "ef_construction": 64}  # the vector's config wins
    assert config["index"] == "hnsw"


def test_collection_config_m_zero_means_exact() -> None:
    config = create({"vectors": {"size": 4, "distance": "Cosine"}, "hnsw_config": {"m": 0}})
    assert config["index"] == "exact" and "m" not in config["hnsw"]
    assert CollectionConfig.parse(config, HnswParams()).index is IndexKind.EXACT


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ({"vectors": {"size": 4, "distance": "Manhattan"}}, "Manhattan"),
        ({"vectors": {"size": 0, "distance": "Dot"}}, "vectors.size: dimension must be"),
        ({"vectors": {"size": 4, "distance": "cosine"}}, "not supported"),
        (
            {"vectors": {"a": {"size": 4, "distance": "Dot"}, "b": {"size": 4}}},
            "vectors.b.distance",
        ),
        ({"vectors": {"size": 4}}, "distance"),
        ({"vectors": {"size": 4, "distance": "Cosine", "colour": 1}}, "colour"),
        (
            {"vectors": {"size": 4, "distance": "Cosine"}, "sparse_vectors": {"a/b": {}}},
            "sparse_vectors.a/b",
        ),
        (
            {"vectors": {"size": 4, "distance": "Cosine"}, "sparse_vectors": {"t": {"m": 1}}},
            "sparse_vectors.t",
        ),
        (
            {
                "vectors": {"size": 4, "distance": "Cosine"},
                "sparse_vectors": {"t": {"modifier": "bm42"}},
            },
            "sparse_vectors.t.modifier",
        ),
        ({"vectors": {"size": 4, "distance": "Cosine"}, "sharding_method": "custom"}, "sharding"),
        ({"vectors": {"size": 4, "distance": "Cosine"}, "metadata": {"a": 1}}, "metadata"),
        (
            {"vectors": {"size": 4, "distance": "Cosine"}, "strict_mode_config": {"enabled": True}},
            "strict",
        ),
    ],
)
def test_collection_config_rejects(body: dict[str, Any], match: str) -> None:
    assert match in error_of(create, body)


def test_collection_config_takes_the_default_vector_by_its_name() -> None:
    """``{"": params}`` is Qdrant's default vector, as LangChain's store creates it."""
    config = create({"vectors": {"": {"size": 8, "distance": "Dot"}}})
    assert config == {"dimension": 8, "metric": "dot", "index": "hnsw", "hnsw": {}}
    assert 'vectors[""].distance' in error_of(create, {"vectors": {"": {"size": 8}}})
    two = {
        "img": {"size": 4, "distance": "Euclid", "hnsw_config": {"m": 0}},
        "": {"size": 8, "distance": "Dot"},
    }
    assert create({"vectors": two}) == {  # ("" is the collection's own, wherever it is)
        "dimension": 8,
        "metric": "dot",
        "index": "hnsw",
        "hnsw": {},
        "named_vectors": {
            "img": {"dimension": 4, "metric": "euclidean", "index": "exact", "hnsw": {}}
        },
    }
    assert "vectors.b.distance" in error_of(
        create, {"vectors": {"a": {"size": 2, "distance": "Dot"}, "b": {"size": 3}}}
    )
    colbert = {"size": 3, "distance": "Dot", "multivector_config": {"comparator": "max_sim"}}
    made = create({"vectors": {"a": colbert, "b": {"size": 2, "distance": "Dot"}}})
    assert made["named_vectors"]["a"]["multivector"] is True
    unnamed = create({"vectors": colbert})  # (a named vector "": no vector of its own)
    assert unnamed["dimension"] == 0 and unnamed["named_vectors"][""]["multivector"] is True
    config = CollectionConfig.parse(unnamed, HnswParams())
    assert (
        config.named_vectors[""].multivector
        and CollectionConfig.parse(config.to_dict(), HnswParams()) == config
    )
    assert upsert({"points": [{"id": 1, "vector": [[1], [2]]}]}).named == [{"": [[1], [2]]}]
    assert upsert({"points": [{"id": 1, "vector": {"": [[1]]}}]}).named == [{"": [[1]]}]
    assert upsert({"batch": {"ids": [1], "vectors": [[[1], [2]]]}}).named == [{"": [[1], [2]]}]
    with pytest.raises(ValidationError):  # ("" names a collection's own, a single vector)
        CollectionConfig.parse(
            {"dimension": 0, "named_vectors": {"": {"dimension": 2}}}, HnswParams()
        )
    odd = {**colbert, "multivector_config": {"comparator": "min_sim"}}
    assert "vectors.b.multivector_config" in error_of(
        create, {"vectors": {"a": {"size": 2, "distance": "Dot"}, "b": odd}}
    )


def test_named_vectors_only_make_a_collection_without_a_vector_of_its_own() -> None:
    """As in Qdrant, a collection of named vectors only (or sparse ones, or none) has no
    default vector: each named one is optional on a point."""
    named = create(
        {
            "vectors": {
                "a": {"size": 2, "distance": "Dot"},
                "b": {"size": 3, "distance": "Cosine"},
            },
            "hnsw_config": {"m": 8},
        }
    )
    assert named["dimension"] == 0 and "vector_name" not in named
    assert list(named["named_vectors"]) == ["a", "b"]
    assert named["hnsw"] == {"m": 8} and named["named_vectors"]["a"]["hnsw"] == {"m": 8}
    config = CollectionConfig.parse(named, HnswParams())
    assert not config.has_own and config.hnsw.m == 8
    assert config.vector_names() == "it has 'a', 'b'"
    assert CollectionConfig.parse(config.to_dict(), HnswParams()) == config
    sparse_only = create({"vectors": {}, "sparse_vectors": {"bm25": {"modifier": "idf"}}})
    assert sparse_only["dimension"] == 0 and "named_vectors" not in sparse_only
    assert create({})["dimension"] == 0
    assert CollectionConfig.parse(create({}), HnswParams()).vector_names() == "it has no vectors"


def test_create_collection_body_refuses_unknown_fields() -> None:
    with pytest.raises(msgspec.ValidationError):
        decode(schemas.CreateCollection, {"vectors": {"size": 4, "distance": "Dot"}, "colour": 1})


# ---- points ---------------------------------------------------------------------------------


def upsert(body: dict[str, Any], max_points: int = 100) -> models.PointsIn:
    return models.upsert_points(decode(schemas.Upsert, body), max_points)


def test_upsert_points_list() -> None:
    out = upsert(
        {
            "points": [
                {"id": 1, "vector": [1, 2], "payload": {"a": 1}},
                {"id": U.upper(), "vector": {"": [3, 4]}},
            ]
        }
    )
    assert out.ids == [1, U]
    assert out.vectors == [[1, 2], [3, 4]]
    assert out.payloads == [{"a": 1}, None]
    assert out.field == "points"


def test_upsert_batch() -> None:
    out = upsert(
        {"batch": {"ids": [1, 2], "vectors": [[1, 2], [3, 4]], "payloads": [None, {"b": 2}]}}
    )
    assert (out.ids, out.vectors, out.payloads) == ([1, 2], [[1, 2], [3, 4]], [None, {"b": 2}])
    assert out.field == "batch.vectors"
    assert upsert({"batch": {"ids": [5], "vectors": [[0, 1]]}}).payloads == [None]
    assert upsert({"batch": {"ids": [5], "vectors": {"": [[0, 1]]}}}).vectors == [[0, 1]]


def test_upsert_points_without_a_default_vector() -> None:
    """Points that give only named vectors (or none) parse with no default vector: the
    store refuses them where the collection has one of its own."""
    sparse = {"indices": [1], "values": [1.0]}
    listed = upsert({"points": [{"id": 1, "vector": {"img": [1]}}, {"id": 2, "vector": {}}]})
    assert listed.vectors == [None, None] and listed.named == [{"img": [1]}, {}]
    only_sparse = upsert({"points": [{"id": 1, "vector": {"s": sparse}}]})
    assert only_sparse.vectors == [None] and only_sparse.named is not None
    assert set(only_sparse.named[0]) == {"s"}
    batch = upsert({"batch": {"ids": [1, 2], "vectors": {"img": [[1], [2]]}}})
    assert batch.vectors == [None, None] and batch.named == [{"img": [1]}, {"img": [2]}]


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ({}, "exactly one"),
        ({"points": [], "batch": {"ids": [], "vectors": []}}, "exactly one"),
        ({"points": []}, "no points"),
        ({"points": [{"id": 1}]}, "id and a vector"),
        ({"points": [{"id": 1, "vector": [1], "colour": 2}]}, "colour"),
        ({"points": [{"id": 1, "vector": [1], "payload": [1]}]}, "JSON object"),
        ({"points": [{"id": 1, "vector": {"text": "hi", "model": "m"}}]}, "inference"),
        ({"points": [{"id": 1, "vector": {"indices": [1], "values": [1.0]}}]}, "under its name"),
        (
            {"points": [{"id": 1, "vector": {"": [1], "s": {"indices": [1], "values": []}}}]},
            "points[0].vector.s",
        ),
        ({"points": [{"id": 1, "vector": "abc"}]}, "list of numbers"),
        ({"points": [{"id": "42", "vector": [1]}]}, "integers"),
        ({"batch": {"ids": [1, 2], "vectors": [[1]]}}, "same length"),
        ({"batch": {"ids": [1], "vectors": [[1]], "payloads": []}}, "same length"),
        ({"points": [{"id": 1, "vector": [1]}], "shard_key": "a"}, "shard keys"),
        ({"points": [{"id": 1, "vector": [1]}], "update_mode": "replace"}, "update_mode"),
        ({"points": [{"id": 1, "vector": [1]}], "update_filter": {"bogus": []}}, "update_filter"),
    ],
)
def test_upsert_rejects(body: dict[str, Any], match: str) -> None:
    assert match in error_of(upsert, body)


def test_upsert_limits_batch_size() -> None:
    body = {"batch": {"ids": [1, 2, 3], "vectors": [[1], [2], [3]]}}
    assert "at most 2" in error_of(upsert, body, 2)


def test_selection() -> None:
    assert models.selection([1, U.upper()], None, None) == models.Selection([1, U], None)
    by_filter = models.selection(None, {"must": [{"has_id": [U.upper()]}]}, None)
    assert by_filter == models.Selection(None, {"must": [{"has_id": [U]}]})
    assert models.selection([1], {}, None) == models.Selection([1], None)  # (ids win)
    assert error_of(models.selection, None, None, None).startswith("points: give points")
    assert "shard keys" in error_of(models.selection, [1], None, "k")


def test_set_payload_key_is_a_path_and_only_for_set_payload() -> None:
    def body(key: str) -> Any:
        return decode(schemas.SetPayload, {"payload": {"a": 1}, "points": [1], "key": key})

    assert models.set_payload(body("nested.list[].x"), overwrite=False).ids == [1]
    assert error_of(lambda b: models.set_payload(b, overwrite=True), body("n")).startswith("key:")
    for bad in ("", "a..b", 'a."b', 'a."b"c', "a[x]", "a[", "[0]"):
        assert error_of(lambda b: models.set_payload(b, overwrite=False), body(bad)).startswith(
            "key:"
        )


# ---- selectors ------------------------------------------------------------------------------

STORED = {"a": 1, "b": {"c": 2, "d": {"e": 3}}, "f": [1, 2]}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (True, STORED),
        (["a", "f"], {"a": 1, "f": [1, 2]}),
        # (a scalar that a path goes past is shown whole, as Qdrant does)
        (["b.c", "b.d.e", "zz", "a.x"], {"a": 1, "b": {"c": 2, "d": {"e": 3}}}),
        ({"include": ["b.d"]}, {"b": {"d": {"e": 3}}}),
        ({"exclude": ["a", "b.d.e", "zz"]}, {"b": {"c": 2, "d": {}}, "f": [1, 2]}),
    ],
)
def test_payload_selector(raw: Any, expected: dict[str, Any]) -> None:
    sel = models.payload_selector(raw, default=False)
    assert sel.enabled
    assert sel.apply(STORED) == expected
    assert STORED["b"] == {"c": 2, "d": {"e": 3}}  # never mutated


def test_payload_selector_defaults_and_errors() -> None:
    assert not models.payload_selector(None, default=False).enabled
    assert models.payload_selector(None, default=True).apply(None) == {}
    assert not models.payload_selector(False, default=True).enabled
    for bad in ({"include": ["a"], "exclude": ["b"]}, {"only": ["a"]}, [1], "a", ["a[x].b"]):
        with pytest.raises(ValidationError):
            models.payload_selector(bad, default=True)


def test_with_vector() -> None:
    assert models.with_vector(None) is False
    assert models.with_vector(None, default=True) is True
    assert models.with_vector(True) is True
    assert models.with_vector([""]) is True and models.with_vector([]) is False
    assert models.with_vector(["bm25"]) is False  # (a sparse vector: shown beside)
    assert models.named_shown(["", "bm25", "bm25"]) == ("", "bm25")
    assert models.named_shown(True) == models.ALL_NAMED
    assert models.named_shown(False) == () and models.named_shown([""]) == ("",)
    for bad in ("yes", 1, [1]):
        with pytest.raises(ValidationError):
            models.with_vector(bad)


# ---- reads ----------------------------------------------------------------------------------


def test_scroll_defaults_and_limits() -> None:
    page = models.scroll(schemas.ScrollRequest(), max_limit=100)
    assert (page.limit, page.offset, page.filter, page.with_vector) == (10, None, None, False)
    assert page.payload.enabled  # Qdrant's scroll returns payloads unless told not to
    page = models.scroll(decode(schemas.ScrollRequest, {"offset": U.upper(), "limit": 100}), 100)
    assert page.offset == U and page.limit == 100
    for body, match in (
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"offset": True}, "offset"),
        ({"order_by": 5}, "order_by"),
        ({"order_by": ""}, "order_by"),
        ({"order_by": "a", "offset": 1}, "offset"),
        ({"order_by": {"key": "a", "direction": "up"}}, "order_by.direction"),
        ({"order_by": {"key": "a", "start_from": "early 2026"}}, "order_by.start_from"),
        ({"order_by": {"key": "a", "start_from": True}}, "order_by.start_from"),
        ({"order_by": {"key": "a", "then": "b"}}, "order_by.then"),
        ({"order_by": {"direction": "asc"}}, "order_by.key"),
    ):
        assert match in error_of(models.scroll, decode(schemas.ScrollRequest, body), 100)
    page = models.scroll(decode(schemas.ScrollRequest, {"order_by": "a.b"}), 100)
    assert page.order_by == models.OrderBy("a.b")
    body = {"order_by": {"key": "a", "direction": "desc", "start_from": 2.5}}
    assert models.scroll(decode(schemas.ScrollRequest, body), 100).order_by == models.OrderBy(
        "a", True, 2.5
    )
    body = {"order_by": {"key": "a", "start_from": "2024-05-01T12:00:00Z"}}
    assert models.scroll(decode(schemas.ScrollRequest, body), 100).order_by == models.OrderBy(
        "a", False, 1714564800 * 10**6, datetimes=True
    )


def query(body: dict[str, Any], max_limit: int = 1000) -> models.Search:
    return models.query_request(decode(schemas.QueryRequest, body), max_limit)


def test_query_request_forms() -> None:
    plain = query({"query": [1, 2]})
    assert (plain.vector, plain.point, plain.limit, plain.offset) == ([1, 2], None, 10, 0)
    assert not plain.payload.enabled and not plain.with_vector and plain.field == "query"
    assert query({"query": {"nearest": [3, 4]}}).vector == [3, 4]
    assert query({"query": 7}).point == 7
    assert query({"query": {"nearest": U.upper()}}).point == U
    assert query({"query": [1], "using": ""}).vector == [1]
    none = query({"limit": 3, "offset": 2})
    assert (none.vector, none.point, none.limit, none.offset) == (None, None, 3, 2)
    full = query(
        {
            "query": [1],
            "filter": {"must": [{"has_id": [U.upper()]}]},
            "limit": 5,
            "offset": 1,
            "score_threshold": 0.5,
            "params": {"hnsw_ef": 64, "exact": True, "indexed_only": True},
            "with_payload": ["a"],
            "with_vector": True,
        }
    )
    assert full.filter == {"must": [{"has_id": [U]}]}
    assert (full.limit, full.offset, full.threshold, full.ef, full.exact) == (5, 1, 0.5, 64, True)
    assert full.payload.include == ("a",) and full.with_vector


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ({"query": {"fusion": "rrf"}}, "fusion"),
        ({"query": {"recommend": {"positive": [1], "strategy": "worst_score"}}}, "best_score"),
        ({"query": {"recommend": {"strategy": "best_score"}}}, "at least one"),
        ({"query": {"recommend": {"negative": [1]}}}, "at least one"),
        ({"query": {"recommend": {"positive": [1], "avg": 1}}}, "unknown field"),
        ({"query": {"recommend": {"positive": 1}}}, "list of point ids"),
        ({"query": {"discover": {"context": []}}}, "query.discover"),
        (
            {"query": {"discover": {"target": 1, "context": [{"positive": 1}]}}},
            "query.discover.context[0]",
        ),
        ({"query": {"context": []}}, "needs at least one pair"),
        ({"query": {"context": {"positive": [1], "negative": True}}}, "query.context.negative"),
        ({"query": {"formula": {"sum": []}}}, "a formula rescores what prefetches find"),
        (
            {"query": {"order_by": {"key": "a", "direction": "sideways"}}},
            "query.order_by.direction",
        ),
        ({"query": {"order_by": 3}}, "query.order_by"),
        ({"query": {"sample": "first"}}, "query.sample"),
        ({"query": {"sample": "random", "order_by": "a"}}, "query: an order_by or sample"),
        ({"query": {"sample": "random", "nearest": [1]}}, "query.nearest"),
        ({"query": {"order_by": "a"}, "score_threshold": 0.1}, "score_threshold"),
        ({"query": {"fusion": "rrf"}, "prefetch": {"query": [1]}, "using": "v"}, "using"),
        ({"query": {"nearest": [1], "mmr": {"diversity": 1.5}}}, "query.mmr.diversity"),
        ({"query": {"nearest": [1], "mmr": {"candidates_limit": 0}}}, "candidates_limit"),
        ({"query": {"nearest": [1], "mmr": {"lambda": 0.5}}}, "query.mmr"),
        ({"query": {"text": "hi", "model": "m"}}, "text"),
        ({"query": {"indices": [1], "values": [1.0]}}, "using: a sparse query needs using"),
        ({"query": {"indices": [1, 1], "values": [1.0, 2]}, "using": "s"}, "query.indices"),
        ({"prefetch": {"query": [1]}}, "a query is needed to merge the prefetches"),
        ({"query": {"fusion": "rrf"}}, "a fusion merges prefetches"),
        ({"query": [1], "prefetch": {"query": [1], "offset": 2}}, "prefetch[0].offset"),
        ({"query": [1], "prefetch": [{"query": {"discover": {}}}]}, "prefetch[0].query.discover"),
        ({"query": {"rrf": {"k": 2, "weights": [1, 1]}}, "prefetch": {"query": [1]}}, "one weight"),
        ({"query": [1], "lookup_from": {"collection": "x", "vector": 5}}, "lookup_from.vector"),
        ({"query": [1], "shard_key": "k"}, "shard keys"),
        ({"score_threshold": 0.1}, "needs a vector"),
        ({"query": [1], "limit": 0}, "limit"),
        ({"query": [1], "limit": 1001}, "limit"),
        ({"query": [1], "offset": -1}, "offset"),
        ({"query": [1], "params": {"hnsw_ef": 0}}, "hnsw_ef"),
        ({"query": True}, "list of numbers"),
    ],
)
def test_query_request_rejects(body: dict[str, Any], match: str) -> None:
    assert match in error_of(query, body)


def test_listing_queries() -> None:
    ordered = query({"query": {"order_by": {"key": "t", "direction": "desc"}}, "limit": 3})
    assert ordered.order_by == models.OrderBy("t", True) and not ordered.sample
    assert (ordered.vector, ordered.point, ordered.recommend) == (None, None, None)
    drawn = query({"query": {"sample": "random"}})
    assert drawn.sample and drawn.order_by is None and drawn.vector is None


def test_search_request() -> None:
    body = decode(
        schemas.SearchRequest,
        {
            "vector": {"name": "", "vector": [1, 2]},
            "limit": 3,
            "with_vectors": True,
            "with_payload": True,
        },
    )
    s = models.search_request(body, 100)
    assert (s.vector, s.limit, s.with_vector, s.field) == ([1, 2], 3, True, "vector")
    assert s.payload.enabled
    named = decode(schemas.SearchRequest, {"vector": {"name": "img", "vector": [1]}, "limit": 1})
    s = models.search_request(named, 100)
    assert (s.using, s.vector, s.sparse_query) == ("img", [1], None)
    bad = decode(schemas.SearchRequest, {"vector": {"name": "img", "vector": "x"}, "limit": 1})
    assert "vector.vector" in error_of(models.search_request, bad, 100)
    with pytest.raises(msgspec.ValidationError):
        decode(schemas.SearchRequest, {"vector": [1]})  # limit is required here, as in Qdrant


# ---- responses ------------------------------------------------------------------------------


def collection(metric: Metric = Metric.COSINE, index: IndexKind = IndexKind.HNSW) -> Collection:
    config = CollectionConfig(
        dimension=4, metric=metric, index=index, hnsw=HnswParams(m=12, ef_construction=90)
    )
    return Collection("c", config, capacity=8)


@pytest.mark.parametrize("metric", list(Metric))
def test_collection_info_parses_as_qdrant_collection_info(metric: Metric) -> None:
    info = responses.collection_info(collection(metric), FsyncPolicy("always"), 64 << 20)
    parsed = qm.CollectionInfo.model_validate(info)
    assert parsed.status == qm.CollectionStatus.GREEN
    vectors = parsed.config.params.vectors
    assert isinstance(vectors, qm.VectorParams)
    assert vectors.size == 4 and vectors.distance == models.DISTANCES[metric]
    assert (parsed.config.hnsw_config.m, parsed.config.hnsw_config.ef_construct) == (12, 90)
    assert parsed.config.wal_config is not None and parsed.config.wal_config.wal_capacity_mb == 64
    assert parsed.config.optimizer_config.flush_interval_sec == 0


def test_collection_info_of_an_exact_collection() -> None:
    info = responses.collection_info(
        collection(index=IndexKind.EXACT), FsyncPolicy("interval", 1500), 1
    )
    assert info["config"]["hnsw_config"]["m"] == 0
    assert info["config"]["optimizer_config"]["flush_interval_sec"] == 2
    assert info["config"]["wal_config"]["wal_capacity_mb"] == 1


def test_records_and_scored_points_parse_as_qdrant_models() -> None:
    everything = models.PayloadSelector(True)
    rec = responses.record(Point(U, {"a": 1}, [0.5, 0.5]), everything)
    assert qm.Record.model_validate(rec) == qm.Record(id=U, payload={"a": 1}, vector=[0.5, 0.5])
    assert responses.record(Point(1, {"a": 1}, None), models.PayloadSelector(False)) == {"id": 1}
    hit = responses.scored_point(ScoredPoint(2, 0.25, None, None), everything)
    assert hit == {"id": 2, "version": 0, "score": 0.25, "payload": {}}
    qm.ScoredPoint.model_validate(hit)
    listed = responses.scored_point(
        Point(3, {"a": 1}, None), models.PayloadSelector(True, include=("b",))
    )
    assert listed == {"id": 3, "version": 0, "score": 1.0, "payload": {}}


def test_envelope_and_update_result() -> None:
    started = time.perf_counter()
    body = responses.envelope(responses.update_result(12), started)
    assert body["status"] == "ok" and 0 <= body["time"] < 5
    parsed = qm.InlineResponse2008.model_validate(body)
    assert parsed.result == qm.UpdateResult(operation_id=12, status=qm.UpdateStatus.COMPLETED)


def test_version_info_is_compatible_with_the_installed_client() -> None:
    from importlib.metadata import version

    from qdrant_client.common.version_check import is_compatible

    info = qm.VersionInfo.model_validate(responses.version_info())
    assert is_compatible(version("qdrant-client"), info.version)


# ---- errors ---------------------------------------------------------------------------------


def test_validation_errors_become_400_with_the_same_code() -> None:
    err = for_qdrant(
        DimensionMismatch("expected 4, got 3", field="points[0]", expected=4, got=3), "c"
    )
    assert isinstance(err, DimensionMismatch) and isinstance(err, ValidationError)
    assert (err.status, err.code) == (400, "dimension_mismatch")
    assert err.message == "points[0]: expected 4, got 3" and err.details == {
        "expected": 4,
        "got": 3,
    }
    plain = for_qdrant(ValidationError("bad"), None)
    assert (plain.status, plain.code, plain.message) == (400, "validation_error", "bad")
    assert type(for_qdrant(ValidationError("x"), None)) is type(plain)  # one subclass per class
    assert DimensionMismatch.status == ValidationError.status == 422  # the native API unchanged


def test_not_found_and_exists_use_qdrant_wording() -> None:
    missing = for_qdrant(CollectionNotFound("collection 'c' does not exist"), "c")
    assert missing.status == 404 and missing.message == "Collection `c` doesn't exist!"
    exists = for_qdrant(CollectionExists("collection 'c' already exists"), "c")
    assert exists.status == 409 and exists.message == "Collection `c` already exists!"
    point = VectorNotFound("no point 3")
    assert for_qdrant(point, "c") is point


# ---- route table ----------------------------------------------------------------------------


def test_route_table_is_documented() -> None:
    from vectorizer.qdrant.routes import REQUEST_BODIES, ROUTES

    routes = {(r.method, r.path) for r in ROUTES if isinstance(r, web.RouteDef)}
    assert len(routes) == len(ROUTES)
    assert set(REQUEST_BODIES) <= routes
    for r in ROUTES:
        assert isinstance(r, web.RouteDef) and r.path.startswith("/qdrant")
        assert (r.handler.__doc__ or "").strip(), f"{r.handler.__name__} needs a summary"
    names = [r.handler.__name__ for r in ROUTES if isinstance(r, web.RouteDef)]
    operation_ids = [f"{r.method.lower()}_{n}" for r, n in zip(ROUTES, names, strict=True)]
    assert len(set(operation_ids)) == len(operation_ids)


def test_recommend_query() -> None:
    s = query({"query": {"recommend": {"positive": [1, [0.5, 1]], "negative": ["a"]}}})
    assert s.recommend == models.Recommend(positive=(1, [0.5, 1]), negative=("a",))
    assert s.vector is None and s.point is None
    plain = query({"query": {"recommend": {"positive": [2], "strategy": "average_vector"}}})
    assert plain.recommend == models.Recommend(positive=(2,), negative=())


def test_check_update_refuses_only_what_would_change_the_graph() -> None:
    graph = CollectionConfig(4, hnsw=HnswParams(24, 150, 96))
    flat = CollectionConfig(4, index=IndexKind.EXACT)

    def update(body: dict[str, Any], current: CollectionConfig) -> str | None:
        try:
            models.check_update(decode(schemas.UpdateCollection, body), current)
        except ValidationError as exc:
            return exc.field
        return None

    assert update({}, graph) is None
    assert update({"hnsw_config": {"m": 24, "ef_construct": 150}}, graph) is None
    assert update({"optimizers_config": {"indexing_threshold": 0}}, graph) is None
    assert update({"hnsw_config": {"m": 16}}, graph) == "hnsw_config.m"
    assert update({"hnsw_config": {"m": 0}}, graph) == "hnsw_config.m"
    assert update({"hnsw_config": {"ef_construct": 100}}, graph) == "hnsw_config.ef_construct"
    assert update({"vectors": {"": {"hnsw_config": {"m": 8}}}}, graph) == "hnsw_config.m"
    assert update({"vectors": {"": {"on_disk": True}}}, graph) is None
    assert update({"vectors": {"": {"bogus": 1}}}, graph) == 'vectors[""].bogus'
    assert update({"vectors": {"x": {}}}, graph) == "vectors"
    assert update({"hnsw_config": {"m": 0}}, flat) is None
    assert update({"hnsw_config": {"m": 16}}, flat) == "hnsw_config.m"
    assert update({"metadata": {"a": 1}}, graph) == "metadata"
