from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vectorizer.engine import datetimes, filters
from vectorizer.engine.filters import compile_filter
from vectorizer.errors import ValidationError

POINTS: list[tuple[Any, dict[str, Any] | None]] = [
    (1, {"city": "Paris", "price": 10, "tags": ["a", "b"], "meta": {"lang": "fr"}}),
    (2, {"city": "Berlin", "price": 25.5, "tags": [], "flag": True}),
    (3, {"city": "London", "price": 40, "tags": ["b"], "items": [{"k": 1}, {"k": 2}]}),
    ("x", {"city": None, "price": "cheap"}),
    ("y", None),
]


SQUARE = [(0, 0), (10, 0), (10, 10), (0, 10), (0, 0)]


def _geo_radius(center: Any, radius: Any) -> dict[str, Any]:
    return {"must": [{"key": "a", "geo_radius": {"center": center, "radius": radius}}]}


def _ring(points: list[tuple[float, float]]) -> dict[str, Any]:
    return {"points": [{"lon": lon, "lat": lat} for lon, lat in points]}


def _polygon(
    exterior: list[tuple[float, float]], interiors: list[list[tuple[float, float]]] | None = None
) -> dict[str, Any]:
    polygon: dict[str, Any] = {"exterior": _ring(exterior)}
    if interiors is not None:
        polygon["interiors"] = [_ring(r) for r in interiors]
    return {"must": [{"key": "a", "geo_polygon": polygon}]}


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
        ({"must": [{"key": "city", "match": {"text": "LONDON"}}]}, [3]),  # tokens, lowercased
        ({"must": [{"key": "city", "match": {"text": "ond"}}]}, []),  # not a substring
        ({"must": [{"key": "city", "match": {"substring": "ond"}}]}, [3]),
        ({"must": [{"key": "city", "match": {"prefix": "Lo"}}]}, [3]),
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
        # as in Qdrant: no floats to match, lists of strings or of integers only
        ({"must": [{"key": "a", "match": {"value": 1.5}}]}, "filter.must[0].match.value"),
        ({"must": [{"key": "a", "match": {"value": 1.0}}]}, "filter.must[0].match.value"),
        ({"must": [{"key": "a", "match": {"any": [1, "a"]}}]}, "filter.must[0].match.any"),
        ({"must": [{"key": "a", "match": {"any": [True]}}]}, "filter.must[0].match.any"),
        ({"must": [{"key": "a", "match": {"any": "a"}}]}, "filter.must[0].match.any"),
        ({"must": [{"key": "a", "match": {"except": [2.0]}}]}, "filter.must[0].match.except"),
        ({"must": [{"key": "a", "range": {"gt": "x"}}]}, "filter.must[0].range.gt"),
        ({"must": [{"key": "a", "range": {"between": 1}}]}, "filter.must[0].range"),
        ({"must": [{"key": "a", "range": {"gt": 1, "lt": "2024-01-01"}}]}, "filter.must[0].range"),
        ({"must": [{"key": "a", "range": {"lt": True}}]}, "filter.must[0].range.lt"),
        ({"should": [{"has_id": ["12"]}]}, "filter.should[0].has_id[0]"),
        ({"must": [{"key": "", "match": {"value": 1}}]}, "filter.must[0].key"),
        ({"must": [{"geo_radius": {}}]}, "filter.must[0]"),
        ({"must": [{"key": "a", "match": {"text": 1}}]}, "filter.must[0].match.text"),
        ({"must": [{"key": "a", "match": {"phrase": None}}]}, "filter.must[0].match.phrase"),
        ({"must": [{"key": "a", "match": {"value": 1}, "range": {"gt": 1}}]}, "filter.must[0]"),
        (_geo_radius({"lon": 200, "lat": 0}, 10), "filter.must[0].geo_radius.center.lon"),
        (_geo_radius({"lon": 0, "lat": -90.5}, 10), "filter.must[0].geo_radius.center.lat"),
        (_geo_radius({"lon": 0, "lat": 0}, "far"), "filter.must[0].geo_radius.radius"),
        (_geo_radius({"lon": True, "lat": 0}, 1), "filter.must[0].geo_radius.center.lon"),
        (_geo_radius({"lat": 0}, 1), "filter.must[0].geo_radius.center"),
        (
            {"must": [{"key": "a", "geo_bounding_box": {"top_left": {"lon": 0, "lat": 1}}}]},
            "filter.must[0].geo_bounding_box",
        ),
        (
            {
                "must": [
                    {
                        "key": "a",
                        "geo_bounding_box": {
                            "top_left": {"lon": 0, "lat": 1},
                            "bottom_right": {"lon": -181, "lat": 0},
                        },
                    }
                ]
            },
            "filter.must[0].geo_bounding_box.bottom_right.lon",
        ),
        (_polygon(SQUARE[:3]), "filter.must[0].geo_polygon.exterior.points"),  # too few
        (_polygon(SQUARE[:4] + [(1, 1)]), "filter.must[0].geo_polygon.exterior.points"),  # open
        (_polygon(SQUARE, [SQUARE[1:]]), "filter.must[0].geo_polygon.interiors[0].points"),
        (
            _polygon([*SQUARE[:2], (1, 95), *SQUARE[3:]]),
            "filter.must[0].geo_polygon.exterior.points[2].lat",
        ),
        ({"must": [{"key": "a", "values_count": {"gt": -1}}]}, "filter.must[0].values_count.gt"),
        ({"must": [{"key": "a", "values_count": {"lt": 1.5}}]}, "filter.must[0].values_count.lt"),
        ({"must": [{"key": "a", "values_count": {"eq": 1}}]}, "filter.must[0].values_count"),
        ({"must": [{"nested": {"key": "a"}}]}, "filter.must[0].nested"),
        ({"must": [{"nested": {"key": "", "filter": {}}}]}, "filter.must[0].nested.key"),
        (
            {"must": [{"nested": {"key": "a", "filter": {"must": [{"has_id": [1]}]}}}]},
            "filter.must[0].nested.filter.must[0].has_id",
        ),
        (
            {"should": [{"nested": {"key": "a", "filter": {"must_not": [{"has_vector": ""}]}}}]},
            "filter.should[0].nested.filter.must_not[0].has_vector",
        ),
        (
            {"must": [{"nested": {"key": "a", "filter": {"must": [{"key": "b"}]}}}]},
            "filter.must[0].nested.filter.must[0]",
        ),
        ({"must": [{"has_vector": "a b"}]}, "filter.must[0].has_vector"),
        # Keys are Qdrant's paths: a typo is refused, not read as a literal key.
        ({"must": [{"key": "a[", "match": {"value": 1}}]}, "filter.must[0].key"),
        ({"must": [{"key": "a..b", "range": {"gt": 1}}]}, "filter.must[0].key"),
        ({"should": [{"key": "x[]y", "values_count": {"gt": 1}}]}, "filter.should[0].key"),
        ({"must": [{"is_empty": {"key": "a."}}]}, "filter.must[0].is_empty.key"),
        ({"must_not": [{"is_null": {"key": ".a"}}]}, "filter.must_not[0].is_null.key"),
        ({"must": [{"nested": {"key": "a[-1]", "filter": {}}}]}, "filter.must[0].nested.key"),
        (
            {
                "must": [
                    {
                        "nested": {
                            "key": "a",
                            "filter": {"must": [{"key": "b]", "match": {"value": 1}}]},
                        }
                    }
                ]
            },
            "filter.must[0].nested.filter.must[0].key",
        ),
        ({"must": [{"has_vector": None}]}, "filter.must[0]"),  # (a null field is absent)
    ],
)
def test_bad_filters_name_the_field(spec: Any, field: str) -> None:
    with pytest.raises(ValidationError) as err:
        compile_filter(spec)
    assert err.value.field == field


def test_an_over_long_key_is_refused_for_its_length() -> None:
    key = "k" * (filters.MAX_KEY_LENGTH + 1)
    with pytest.raises(ValidationError) as err:
        compile_filter({"must": [{"key": key, "match": {"value": 1}}]})
    assert err.value.field == "filter.must[0].key"
    assert err.value.message == "key is 1025 characters long; at most 1024 allowed"
    compile_filter({"must": [{"key": key[1:], "match": {"value": 1}}]})  # (the longest taken)


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


def _datetimes_matching(stamps: dict[int, Any], bounds: dict[str, Any]) -> list[int]:
    pred = compile_filter({"must": [{"key": "t", "range": bounds}]})
    assert pred is not None
    return [i for i, t in stamps.items() if pred(i, {"t": t})]


def test_datetime_ranges_compare_microseconds() -> None:
    """Qdrant compares datetimes as i64 microseconds: instants a microsecond apart stay
    apart, far in the future too (float seconds cannot tell them apart past about year
    2242)."""
    stamps = {i: f"3000-01-01T00:00:00.00000{i}Z" for i in (1, 2, 3)}
    middle = stamps[2]
    assert _datetimes_matching(stamps, {"gt": middle}) == [3]
    assert _datetimes_matching(stamps, {"gte": middle}) == [2, 3]
    assert _datetimes_matching(stamps, {"lt": middle}) == [1]
    assert _datetimes_matching(stamps, {"lte": middle}) == [1, 2]
    assert _datetimes_matching(stamps, {"gt": stamps[1], "lt": stamps[3]}) == [2]
    pred = compile_filter({"must": [{"key": "t", "range": {"gt": middle}}]})
    assert pred is not None
    lookup = filters.lookup_of(pred)
    assert isinstance(lookup, filters.Range) and lookup.datetimes
    assert lookup.gt == datetimes.micros(middle) and isinstance(lookup.gt, int)


def test_only_what_qdrant_reads_as_a_datetime_is_one() -> None:
    """ISO 8601's other forms are strings, not datetimes, as in Qdrant: they match no
    datetime range, and a bound in one is refused; RFC 3339 in lower case is one."""
    stamps = {
        1: "20240101",
        2: "2024-W01-1",
        3: "2024-01-01T10",
        4: "2024-01-01T10:00:00,5",
        5: "2024-01-01T10:00:00Z",
        6: "2024-01-01t10:00:00z",
        7: "2024-01-01 10:00:00 UTC",
    }
    assert _datetimes_matching(stamps, {"gte": "2000-01-01T00:00:00Z"}) == [5, 6, 7]
    assert _datetimes_matching(stamps, {"lte": "2024-01-01t10:00:00z"}) == [5, 6, 7]
    for bound in ("20000101", "2000-01-01T00", "2000-01-01T00:00"):
        with pytest.raises(ValidationError) as err:
            compile_filter({"must": [{"key": "t", "range": {"gte": bound}}]})
        assert err.value.field == "filter.must[0].range.gte", bound


@pytest.mark.parametrize("bounds", [{}, {"gt": None}, {"gte": None, "lt": None, "lte": None}])
def test_a_range_without_bounds_holds_every_number(bounds: dict[str, Any]) -> None:
    """Qdrant's range is all optional bounds (qdrant-client sends ``models.Range()`` as
    ``{}``): without any it is a number range holding every number, not a datetime."""
    assert run({"must": [{"key": "price", "range": bounds}]}) == [1, 2, 3]
    assert run({"must_not": [{"key": "price", "range": bounds}]}) == ["x", "y"]
    assert _datetimes_matching({1: "2024-01-01T10:00:00Z", 2: 5, 3: True}, bounds) == [2]


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
            {"match": {"value": True}},
            {"match": {"any": [-1, 2]}},
            {"match": {"except": [1]}},
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
    assert datetimes.micros("2024-05-01T12:00:00Z") == 1714564800 * 10**6
    assert datetimes.micros("2024-05-01T12:00:00") == 1714564800 * 10**6  # no zone: UTC
    assert datetimes.micros("2024-05-01T14:00:00.123456+02:00") == 1714564800 * 10**6 + 123456
    assert datetimes.micros("2024-05-01") == 1714521600 * 10**6
    assert datetimes.micros("yesterday") is None


def _accepts(spec: dict[str, Any], payload: Any) -> bool:
    pred = compile_filter(spec)
    assert pred is not None
    return pred(1, payload)


def test_geo_conditions_follow_qdrant() -> None:
    """Strict edges, the antimeridian, holes, and only {lon, lat} objects of numbers."""
    berlin, moscow = {"lon": 13.4050, "lat": 52.52}, {"lon": 37.6173, "lat": 55.7558}
    near_berlin = _geo_radius({"lon": 13.41, "lat": 52.52}, 1000)
    assert _accepts(near_berlin, {"a": berlin})
    assert _accepts(near_berlin, {"a": [moscow, berlin]})  # any of them
    assert not _accepts(near_berlin, {"a": moscow})
    assert not _accepts(near_berlin, {"a": {"lon": "13.41", "lat": 52.52}})
    assert not _accepts(near_berlin, {"a": [13.41, 52.52]})
    # Berlin-Moscow is 1,608 km on Qdrant's sphere (6,371,008.8 m): within 1,609 km only
    assert _accepts(_geo_radius(moscow, 1_609_000), {"a": berlin})
    assert not _accepts(_geo_radius(moscow, 1_607_000), {"a": berlin})
    # one degree of a meridian is 111,195.08 m on that sphere (111,194.93 m on 6,371 km)
    one_north = {"a": {"lon": 0, "lat": 1}}
    assert _accepts(_geo_radius({"lon": 0, "lat": 0}, 111_195.1), one_north)
    assert not _accepts(_geo_radius({"lon": 0, "lat": 0}, 111_195.0), one_north)

    def box(left: float, top: float, right: float, bottom: float) -> dict[str, Any]:
        corners = {
            "top_left": {"lon": left, "lat": top},
            "bottom_right": {"lon": right, "lat": bottom},
        }
        return {"must": [{"key": "a", "geo_bounding_box": corners}]}

    assert _accepts(box(0, 60, 20, 50), {"a": berlin})
    assert not _accepts(box(13.405, 60, 20, 50), {"a": berlin})  # on the edge: outside
    wrapping = box(170, 10, -170, -10)  # from 170 E eastwards to 170 W
    assert _accepts(wrapping, {"a": {"lon": 179.5, "lat": 0}})
    assert _accepts(wrapping, {"a": {"lon": -175, "lat": 0}})
    assert not _accepts(wrapping, {"a": {"lon": 0, "lat": 0}})

    holed = _polygon(SQUARE, [[(4, 4), (6, 4), (6, 6), (4, 6), (4, 4)]])
    assert _accepts(holed, {"a": {"lon": 2, "lat": 2}})
    assert not _accepts(holed, {"a": {"lon": 5, "lat": 5}})  # in the hole
    assert not _accepts(holed, {"a": {"lon": 0, "lat": 5}})  # on the exterior ring
    assert not _accepts(holed, {"a": {"lon": 4, "lat": 5}})  # on the hole's ring
    assert not _accepts(holed, {"a": {"lon": 11, "lat": 5}})


def test_values_count_counts_what_is_at_the_key() -> None:
    def count_in(bounds: dict[str, Any], payload: Any) -> bool:
        return _accepts({"must": [{"key": "a", "values_count": bounds}]}, payload)

    assert count_in({"gte": 3}, {"a": [1, None, "x"]})  # elements, nulls too
    assert count_in({"lte": 1, "gte": 1}, {"a": "x"})  # a scalar is one value
    assert count_in({"lte": 1, "gte": 1}, {"a": {"b": 1}})  # so is an object
    assert count_in({"lt": 1}, {"a": None})  # null: none
    assert count_in({"lt": 1}, {"b": 1})  # missing: none
    assert count_in({"lt": 1}, None)
    assert not count_in({"gt": 0}, {"b": 1})
    # several values at the path: one of them must be in bounds on its own
    two = {"a": [{"b": [1, 2]}, {"b": [1, 2, 3, 4]}]}
    spec = {"must": [{"key": "a[].b", "values_count": {"gt": 2, "lt": 4}}]}
    assert not _accepts(spec, two)
    assert _accepts({"must": [{"key": "a[].b", "values_count": {"gt": 3}}]}, two)


def test_nested_filters_hold_for_one_element() -> None:
    diet = {
        "diet": [{"food": "leaves", "likes": False}, {"food": "meat", "likes": True}],
    }
    both = {
        "must": [
            {"key": "food", "match": {"value": "meat"}},
            {"key": "likes", "match": {"value": True}},
        ]
    }
    assert _accepts({"must": [{"nested": {"key": "diet", "filter": both}}]}, diet)
    swapped = {"diet": [{"food": "leaves", "likes": True}, {"food": "meat", "likes": False}]}
    assert not _accepts({"must": [{"nested": {"key": "diet[]", "filter": both}}]}, swapped)
    # without nested, the conditions may hold in different elements
    flat = {
        "must": [
            {"key": "diet[].food", "match": {"value": "meat"}},
            {"key": "diet[].likes", "match": {"value": True}},
        ]
    }
    assert _accepts(flat, swapped)
    # must_not inside: some element lacks what it names
    no_meat = {"must": [{"nested": {"key": "diet", "filter": {"must_not": [both["must"][0]]}}}]}
    assert _accepts(no_meat, diet)  # the leaves
    assert not _accepts(no_meat, {"diet": [{"food": "meat"}]})
    assert not _accepts(no_meat, {"diet": []})
    # only arrays of objects have elements to test
    anything = {"must": [{"nested": {"key": "diet", "filter": {}}}]}
    assert _accepts(anything, {"diet": [1, {}]})
    assert not _accepts(anything, {"diet": {"food": "meat"}})
    assert not _accepts(anything, {"diet": [1, "x"]})
    # nested within nested, and inside a path
    deep = {
        "country": {"cities": [{"sights": [{"name": "Reichstag", "open": True}]}, {"sights": []}]}
    }
    inner = {
        "nested": {"key": "sights", "filter": {"must": [{"key": "open", "match": {"value": True}}]}}
    }
    spec = {"must": [{"nested": {"key": "country.cities", "filter": {"must": [inner]}}}]}
    assert _accepts(spec, deep)
    deep["country"]["cities"][0]["sights"][0]["open"] = False
    assert not _accepts(spec, deep)


def test_has_vector_names_the_one_unnamed_vector() -> None:
    assert run({"must": [{"has_vector": ""}]}) == [1, 2, 3, "x", "y"]
    assert run({"must_not": [{"has_vector": ""}]}) == []


def test_full_text_matches_tokenize_without_an_index() -> None:
    """Qdrant 1.19.1 on: the word tokenizer, lowercased, whole tokens."""
    text = {"t": "The quick-brown fox, jumps!"}
    for query, kind, expected in [
        ("QUICK fox", "text", True),
        ("fox quick", "text", True),  # any order
        ("quick cat", "text", False),
        ("qui", "text", False),  # not a substring
        ("brown-fox", "text", True),
        ("", "text", False),  # no tokens: nothing
        ("cat fox", "text_any", True),
        ("cat dog", "text_any", False),
        ("brown fox", "phrase", True),
        ("fox brown", "phrase", False),
        ("quick fox", "phrase", False),
        ("...", "phrase", False),
    ]:
        spec = {"must": [{"key": "t", "match": {kind: query}}]}
        assert _accepts(spec, text) == expected, (kind, query)
        assert not _accepts(spec, {"t": 5})
    assert _accepts({"must": [{"key": "t", "match": {"text": "b"}}]}, {"t": ["a", "b c"]})
