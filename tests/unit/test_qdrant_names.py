"""A collection's dense vector by its name: every place a request body names a vector
of the collection has the name renamed ``""`` before parsing (``qdrant.names``)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from vectorizer.engine.config import CollectionConfig, HnswParams
from vectorizer.errors import ValidationError
from vectorizer.qdrant import models, names, schemas

NAME = "text-dense"
FILTER = {
    "must": [{"has_vector": NAME}, {"nested": {"key": "a", "filter": {"must": [{"key": "x"}]}}}],
    "should": {"must_not": [{"has_vector": NAME}]},
    "min_should": {"conditions": [{"has_vector": NAME}], "min_count": 1},
    "must_not": [{"key": "has_vector", "match": {"value": NAME}}],  # (a payload key)
}
RENAMED = {
    "must": [{"has_vector": ""}, {"nested": {"key": "a", "filter": {"must": [{"key": "x"}]}}}],
    "should": {"must_not": [{"has_vector": ""}]},
    "min_should": {"conditions": [{"has_vector": ""}], "min_count": 1},
    "must_not": [{"key": "has_vector", "match": {"value": NAME}}],
}


def renamed(kind: type[Any], body: dict[str, Any]) -> dict[str, Any]:
    parsed = msgspec.convert(body, kind)
    names.to_default(parsed, NAME)
    out: dict[str, Any] = msgspec.to_builtins(parsed)
    return out


def test_a_query_body_names_the_dense_vector_by_default() -> None:
    body = {
        "query": [1.0],
        "using": NAME,
        "with_vector": [NAME, "bm25"],
        "filter": FILTER,
        "prefetch": [
            {"query": [1.0], "using": NAME, "prefetch": {"using": NAME, "filter": FILTER}}
        ],
    }
    out = renamed(schemas.QueryRequest, body)
    assert out["using"] == "" and out["with_vector"] == ["", "bm25"] and out["filter"] == RENAMED
    assert out["prefetch"][0]["using"] == "" and out["prefetch"][0]["prefetch"]["using"] == ""
    assert out["prefetch"][0]["prefetch"]["filter"] == RENAMED
    batch = renamed(schemas.QueryRequestBatch, {"searches": [body]})
    assert batch["searches"][0]["using"] == ""


def test_writes_name_the_dense_vector_by_default() -> None:
    upsert = renamed(
        schemas.Upsert,
        {"points": [{"id": 1, "vector": {NAME: [1.0], "bm25": {"indices": [], "values": []}}}]},
    )
    assert set(upsert["points"][0]["vector"]) == {"", "bm25"}
    batch = renamed(schemas.Upsert, {"batch": {"ids": [1], "vectors": {NAME: [[1.0]]}}})
    assert batch["batch"]["vectors"] == {"": [[1.0]]}
    vectors = renamed(
        schemas.UpdateVectors,
        {"points": [{"id": 1, "vector": {NAME: [1.0]}}], "update_filter": FILTER},
    )
    assert vectors["points"][0]["vector"] == {"": [1.0]} and vectors["update_filter"] == RENAMED
    assert renamed(schemas.DeleteVectors, {"vector": [NAME, "bm25"], "points": [1]})["vector"] == [
        "",
        "bm25",
    ]
    update = renamed(schemas.UpdateCollection, {"vectors": {NAME: {"on_disk": True}}})
    assert update["vectors"] == {"": {"on_disk": True}}
    legacy = renamed(schemas.SearchRequest, {"vector": {"name": NAME, "vector": [1.0]}, "limit": 1})
    assert legacy["vector"]["name"] == ""
    # a payload that holds the name is a payload, not a vector
    payload = renamed(schemas.SetPayload, {"payload": {NAME: 1}, "points": [1]})
    assert payload["payload"] == {NAME: 1}


def test_a_collection_may_name_its_dense_vector() -> None:
    """A collection created with one named dense vector has it as a named vector (a
    point may lack it, as in Qdrant); one that an earlier version created with its own
    vector named (``vector_name``) still reads so, and its requests are renamed."""
    body = {"vectors": {NAME: {"size": 4, "distance": "Dot"}}, "sparse_vectors": {"bm25": {}}}
    config = models.collection_config(msgspec.convert(body, schemas.CreateCollection))
    assert config["dimension"] == 0 and list(config["named_vectors"]) == [NAME]
    assert "vector_name" not in config
    stored = {"dimension": 4, "metric": "dot", "vector_name": NAME, "sparse_vectors": {"bm25": {}}}
    parsed = CollectionConfig.parse(stored, HnswParams())
    assert (
        parsed.vector_name == NAME
        and CollectionConfig.parse(parsed.to_dict(), HnswParams()) == parsed
    )
    for bad, field in (
        ({"vectors": {"a/b": {"size": 4, "distance": "Dot"}}}, "vectors"),
        ({"vectors": {"a": {"size": 4}}}, "vectors.a.distance"),
    ):
        with pytest.raises(ValidationError) as exc:
            models.collection_config(msgspec.convert(bad, schemas.CreateCollection))
        assert exc.value.field == field
    with pytest.raises(ValidationError) as exc:
        CollectionConfig.parse(
            {"dimension": 4, "vector_name": "a", "sparse_vectors": {"a": {}}}, HnswParams()
        )
    assert exc.value.field == "sparse_vectors.a"
