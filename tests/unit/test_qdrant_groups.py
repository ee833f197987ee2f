"""Grouped queries and facets: Qdrant bodies into engine arguments (qdrant.groups)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from vectorizer.errors import ValidationError
from vectorizer.qdrant import groups, schemas
from vectorizer.qdrant.models import PayloadSelector


def grouped(body: dict[str, Any], max_limit: int = 100, max_hits: int = 1000) -> groups.QueryGroups:
    decoded = msgspec.json.decode(msgspec.json.encode(body), type=schemas.QueryGroupsRequest)
    return groups.query_groups(decoded, max_limit, max_hits)


def field_of_error(body: dict[str, Any]) -> str | None:
    with pytest.raises(ValidationError) as exc:
        grouped(body)
    return exc.value.field


def test_defaults_and_the_search_each_round_asks_for() -> None:
    q = grouped({"query": [1, 2], "group_by": "doc.id", "with_payload": ["a"], "with_vector": True})
    assert (q.group_by, q.group_size, q.limit, q.lookup) == ("doc.id", 3, 10, None)
    assert q.search.payload == PayloadSelector(True, include=("a",))
    round_ = q.hits(64)
    assert round_.limit == 64 and round_.payload == PayloadSelector(True)  # whole payloads
    assert round_.vector == [1, 2] and not round_.with_vector and q.search.with_vector


def test_lookup_forms() -> None:
    q = grouped({"query": [1], "group_by": "d", "with_lookup": "docs"})
    assert q.lookup == groups.Lookup("docs", PayloadSelector(True), False)
    q = grouped(
        {
            "query": [1],
            "group_by": "d",
            "with_lookup": {"collection": "docs", "with_payload": False, "with_vectors": True},
        }
    )
    assert q.lookup == groups.Lookup("docs", PayloadSelector(False), True)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"group_by": ""}, "group_by"),
        ({"group_by": "d", "group_size": 0}, "group_size"),
        ({"group_by": "d", "limit": 101}, "limit"),
        ({"group_by": "d", "limit": 100, "group_size": 11}, "group_size"),  # 1,100 > 1,000
        ({"group_by": "d", "with_lookup": "a/b"}, "with_lookup"),
        ({"group_by": "d", "with_lookup": 3}, "with_lookup"),
        ({"group_by": "d", "with_lookup": {"collection": "x", "shard": 1}}, "with_lookup.shard"),
        ({"group_by": "d", "with_lookup": {"with_payload": True}}, "with_lookup.collection"),
        ({"group_by": "d", "prefetch": {"query": [1], "bogus": 1}}, "prefetch[0].bogus"),
        ({"group_by": "d", "shard_key": "a"}, "shard_key"),
    ],
)
def test_refused(body: dict[str, Any], field: str) -> None:
    assert field_of_error({"query": [1.0], **body}) == field


def test_facet_request() -> None:
    body = msgspec.json.decode(
        b'{"key": "tags", "filter": {"must": []}}', type=schemas.FacetRequest
    )
    assert groups.facet(body, 100) == groups.Facet("tags", 10, {"must": []})
    for raw, field in ((b'{"key": ""}', "key"), (b'{"key": "a", "limit": 0}', "limit")):
        with pytest.raises(ValidationError) as exc:
            groups.facet(msgspec.json.decode(raw, type=schemas.FacetRequest), 100)
        assert exc.value.field == field
