from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vectorizer.engine import filters
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
        ({"must": [{"key": "a", "range": {"gt": 1, "lt": "2024-01-01"}}]}, "filter.must[0].range"),
        ({"must": [{"key": "a", "range": {"lt": True}}]}, "filter.must[0].range.lt"),
        ({"should": [{"has_id": ["12"]}]}, "filter.should[0].has_id[0]"),
        ({"must": [{"key": "", "match": {"value": 1}}]}, "filter.must[0].key"),
        ({"must": [{"geo_radius": {}}]}, "filter.must[0]"),
    ],
)
def test_bad_filters_name_the_field(spec: Any, field: str) -> None:
    with pytest.raises(ValidationError) as err:
        compile_filter(spec)
    assert err.value.field == field


def test_datetime_ranges_compare_rfc3339_strings() -> None:
    """Qdrant's datetime range: bounds and payload values are RFC 3339 strings; a time
    without a zone is UTC; what is not a datetime does not match."""
    stamps = {
        1: "2024-05-01T12:00:00Z",
        2: "2024-05-01T13:30:00+01:00",  # 12:30 UTC
        3: "2024-05-02",  # midnight UTC
        4: "2024-05-01 11:59:59.999",  # no zone: UTC
        5: "not a time",
        6: 1714564800,  # the same instant as 1, but a number
        7: ["2024-04-01T00:00:00Z", "2024-05-01T12:15:00Z"],  # any element
    }

    def matching(bounds: dict[str, Any]) -> list[int]:
        pred = compile_filter({"must": [{"key": "t", "range": bounds}]})
        assert pred is not None
        return [i for i, t in stamps.items() if pred(i, {"t": t})]

    assert matching({"gte": "2024-05-01T12:00:00Z", "lte": "2024-05-01T12:30:00Z"}) == [1, 2, 7]
    assert matching({"gt": "2024-05-01T12:00:00Z"}) == [2, 3, 7]
    assert matching({"lt": "2024-05-01T14:00:00+02:00"}) == [4, 7]  # 12:00 UTC
    assert matching({"gte": "2024-05-02T00:00:00Z"}) == [3]
    assert matching({"gt": 1714564799}) == [6]  # numbers stay numbers


_leaves = st.none() | st.booleans() | st.integers(-3, 3) | st.floats(-3, 3) | st.sampled_from("ab")
_values = st.recursive(
    _leaves,
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.sampled_from("kx"), kids, max_size=2)
    ),
    max_leaves=6,
)


@settings(max_examples=600, deadline=None)
@given(
    payload=st.none() | st.dictionaries(st.sampled_from(["k", "x"]), _values, max_size=2),
    condition=st.sampled_from(
        [
            {"match": {"value": 1}},
            {"match": {"value": "a"}},
            {"match": {"any": [True, 2]}},
            {"match": {"except": ["a"]}},
            {"range": {"gte": 0, "lt": 2.5}},
        ]
    ),
)
def test_top_level_keys_filter_as_paths_do(payload: Any, condition: dict[str, Any]) -> None:
    """A top-level key takes a shortcut past the path walker; the answers are the same."""
    pred = compile_filter({"must": [{"key": "k", **condition}]})
    assert pred is not None
    test = (
        filters._match(condition["match"], "k", "m")[0]
        if "match" in condition
        else filters._range(condition["range"], "k", "r")[0]
    )
    assert pred(1, payload) == any(test(v) for v in filters._path_values(payload, "k"))
    assert list(filters.values_at(payload, "k")) == list(filters._path_values(payload, "k"))


def test_micros_are_exact_and_utc_by_default() -> None:
    assert filters.micros("2024-05-01T12:00:00Z") == 1714564800 * 10**6
    assert filters.micros("2024-05-01T12:00:00") == 1714564800 * 10**6  # no zone: UTC
    assert filters.micros("2024-05-01T14:00:00.123456+02:00") == 1714564800 * 10**6 + 123456
    assert filters.micros("2024-05-01") == 1714521600 * 10**6
    assert filters.micros("yesterday") is None
