from __future__ import annotations

from typing import Any

import pytest

from vectorizer.engine.filters import compile_filter
from vectorizer.errors import ValidationError

POINTS: list[tuple[Any, dict[str, Any] | None]] = [
    (1, {"city": "Paris", "price": 10, "tags": ["a", "b"], "meta": {"lang": "fr"}}),
    (2, {"city": "Berlin", "price": 25.5, "tags": [], "flag": True}),
    (3, {"city": "London", "price": 40, "tags": ["b"], "items": [{"k": 1}, {"k": 2}]}),
    ("x", {"city": None, "price": "cheap"}),
    ("y", None),
]


def run(spec: dict[str, Any]) -> list[Any]:
    pred = compile_filter(spec)
    assert pred is not None
    return [pid for pid, payload in POINTS if pred(pid, payload)]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"must": [{"key": "city", "match": {"value": "Paris"}}]}, [1]),
        ({"must": [{"key": "city", "match": {"any": ["Paris", "London"]}}]}, [1, 3]),
        ({"must": [{"key": "city", "match": {"except": ["Paris"]}}]}, [2, 3]),
        ({"must_not": [{"key": "city", "match": {"value": "Paris"}}]}, [2, 3, "x", "y"]),
        (
            {
                "should": [
                    {"key": "price", "range": {"lt": 20}},
                    {"key": "flag", "match": {"value": True}},
                ]
            },
            [1, 2],
        ),
        ({"must": [{"key": "price", "range": {"gte": 10, "lte": 25.5}}]}, [1, 2]),
        ({"must": [{"key": "price", "range": {"gt": 10}}]}, [2, 3]),
        ({"must": [{"key": "tags", "match": {"value": "b"}}]}, [1, 3]),
        ({"must": [{"key": "tags[]", "match": {"value": "a"}}]}, [1]),
        ({"must": [{"key": "meta.lang", "match": {"value": "fr"}}]}, [1]),
        ({"must": [{"key": "items[].k", "match": {"value": 2}}]}, [3]),
        ({"must": [{"has_id": [1, "x"]}]}, [1, "x"]),
        ({"must": [{"is_empty": {"key": "tags"}}]}, [2, "x", "y"]),
        ({"must": [{"is_null": {"key": "city"}}]}, ["x"]),
        ({"must": [{"key": "flag", "match": {"value": 1}}]}, []),  # true is not 1
        (
            {
                "must": [
                    {"must_not": [{"key": "city", "match": {"value": "Paris"}}]},
                    {"key": "price", "range": {"lt": 30}},
                ]
            },
            [2],
        ),
        (
            {
                "min_should": {
                    "conditions": [
                        {"key": "city", "match": {"value": "Paris"}},
                        {"key": "tags", "match": {"value": "a"}},
                        {"key": "price", "range": {"gt": 30}},
                    ],
                    "min_count": 2,
                }
            },
            [1],
        ),
        ({"must": [{"key": "city", "match": {"text": "ond"}}]}, [3]),
        ({}, [1, 2, 3, "x", "y"]),
    ],
)
def test_filter_semantics(spec: dict[str, Any], expected: list[Any]) -> None:
    assert run(spec) == expected


def test_no_filter_is_none() -> None:
    assert compile_filter(None) is None


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ([], "filter"),
        ({"bogus": []}, "filter"),
        ({"must": [{"key": "a"}]}, "filter.must[0]"),
        ({"must": [{"key": "a", "match": {"value": [1]}}]}, "filter.must[0].match.value"),
        ({"must": [{"key": "a", "range": {"gt": "x"}}]}, "filter.must[0].range.gt"),
        ({"must": [{"key": "a", "range": {"between": 1}}]}, "filter.must[0].range"),
        ({"should": [{"has_id": ["12"]}]}, "filter.should[0].has_id[0]"),
        ({"must": [{"key": "", "match": {"value": 1}}]}, "filter.must[0].key"),
        ({"must": [{"geo_radius": {}}]}, "filter.must[0]"),
    ],
)
def test_bad_filters_name_the_field(spec: Any, field: str) -> None:
    with pytest.raises(ValidationError) as err:
        compile_filter(spec)
    assert err.value.field == field
