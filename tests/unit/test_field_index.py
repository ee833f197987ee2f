"""Payload indexes only narrow: every read over a collection with indexes answers as the
same collection without them, through any sequence of writes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vectorizer.engine import field_index
from vectorizer.engine.collection import Collection
from vectorizer.engine.config import CollectionConfig, HnswParams, IndexKind
from vectorizer.engine.datetimes import micros
from vectorizer.engine.filters import Range, compile_filter, lookup_of
from vectorizer.errors import ValidationError

DIM = 4
INDEXES = {
    "n": "integer",
    "f": "float",
    "s": "keyword",
    "t": "datetime",
    "b": "bool",
    "o.k": "integer",
    "a[]": "keyword",
}
STAMPS = [
    "2024-05-01T10:00:00Z",
    "2024-05-01T12:00:00+02:00",
    "2024-05-02",
    "not a date",
    "20240501",  # (ISO 8601, but not a datetime to Qdrant)
    "3000-01-01T00:00:00.000001Z",  # far-future instants a microsecond apart
    "3000-01-01T00:00:00.000002Z",
]

_scalar = (
    st.integers(-3, 3)
    | st.floats(-3, 3, allow_nan=False)
    | st.sampled_from([1.0, -1.0, 0.0])  # integral floats: not the integers to a match
    | st.sampled_from(["a", "b", "c"])
    | st.booleans()
    | st.none()
)
_value = _scalar | st.lists(_scalar, max_size=3) | st.sampled_from(STAMPS)
_payload = st.none() | st.fixed_dictionaries(
    {},
    optional={
        "n": _value,
        "f": _value,
        "s": _value,
        "t": _value,
        "b": _value,
        "u": _value,
        "o": st.fixed_dictionaries({}, optional={"k": _value}) | _value,
        "a": st.lists(_scalar, max_size=3) | _value,
    },
)
_ids = st.integers(0, 12)
_ops = st.lists(
    st.one_of(
        st.tuples(st.just("upsert"), st.lists(st.tuples(_ids, _payload), min_size=1, max_size=5)),
        st.tuples(st.just("update"), _ids, _payload),
        st.tuples(
            st.just("set"), _ids, st.dictionaries(st.sampled_from("nsfk"), _value), st.booleans()
        ),
        st.tuples(st.just("set_key"), _ids, st.dictionaries(st.sampled_from("kx"), _value)),
        st.tuples(st.just("unset"), _ids, st.lists(st.sampled_from(["n", "s", "o.k", "a"]))),
        st.tuples(st.just("delete"), st.lists(_ids, max_size=4)),
    ),
    max_size=25,
)
_keys = st.sampled_from(["n", "f", "s", "t", "b", "u", "o.k", "a[]"])
_conditions = st.one_of(
    st.builds(
        lambda k, v: {"key": k, "match": {"value": v}},
        _keys,
        st.integers(-3, 3) | st.sampled_from(["a", "b"]) | st.booleans(),
    ),
    st.builds(
        lambda k, v: {"key": k, "match": {"any": v}},
        _keys,
        st.lists(st.integers(-3, 3), max_size=3)
        | st.lists(st.sampled_from(["a", "c"]), max_size=3),
    ),
    st.builds(
        lambda k, v: {"key": k, "match": {"except": v}},
        _keys,
        st.lists(st.just("a"), max_size=2) | st.lists(st.sampled_from([1, -1]), max_size=2),
    ),
    st.builds(
        lambda k, bounds: {"key": k, "range": {op: v for op, v in bounds if v is not None}},
        _keys,
        st.lists(
            st.tuples(
                st.sampled_from(["gt", "gte", "lt", "lte"]),
                st.none() | st.integers(-3, 3) | st.floats(-3, 3),
            ),
            min_size=1,
            max_size=4,
            unique_by=lambda b: b[0],
        ).filter(lambda bounds: any(v is not None for _, v in bounds)),
    ),
    st.builds(
        lambda k, lo, hi: {"key": k, "range": {"gte": lo, "lt": hi}},
        _keys,
        st.none() | st.integers(-3, 3) | st.floats(-3, 3),
        st.none() | st.integers(-3, 3) | st.floats(-3, 3),
    ),
    st.builds(
        lambda k, op, at: {"key": k, "range": {op: at}},
        _keys,
        st.sampled_from(["gt", "gte", "lt", "lte"]),
        st.sampled_from(["2024-05-01T10:00:00Z", "3000-01-01T00:00:00.000001Z"]),
    ),
    st.builds(lambda k: {"key": k, "range": {}}, _keys),
    st.builds(lambda ids: {"has_id": ids}, st.lists(_ids, max_size=4)),
    st.builds(lambda k: {"is_empty": {"key": k}}, _keys),
)
_filters = st.recursive(
    st.fixed_dictionaries(
        {},
        optional={
            "must": st.lists(_conditions, max_size=3),
            "should": st.lists(_conditions, max_size=2),
            "must_not": st.lists(_conditions, max_size=1),
        },
    ),
    lambda inner: st.fixed_dictionaries(
        {"must": st.lists(inner.filter(bool) | _conditions, min_size=1, max_size=2)}
    ),
    max_leaves=4,
)


# besides the drawn filters: each indexed key asked for values the writes put there
BATTERY = [
    {"must": [{"key": key, **condition}]}
    for key in INDEXES
    for condition in (
        {"match": {"value": 1}},
        {"match": {"value": "a"}},
        {"match": {"value": True}},
        {"match": {"any": [0, -1]}},
        {"match": {"except": [1]}},
        {"range": {"gte": 0, "lte": 1.5}},
        {"range": {"gt": 0, "gte": 0, "lt": 1, "lte": 1}},  # equal bounds: the open one holds
        {"range": {"gt": "2024-05-01T09:00:00Z"}},
        {"range": {"gt": "3000-01-01T00:00:00.000001Z"}},
        {"range": {}},  # (every number)
    )
]


def _pair(kind: IndexKind) -> tuple[Collection, Collection]:
    plain = Collection("p", CollectionConfig(DIM, index=kind), capacity=8)
    indexed = Collection("i", CollectionConfig(DIM, index=kind), capacity=8)
    for i, (key, schema) in enumerate(INDEXES.items()):
        if i % 2:  # half created up front, half over the data below
            indexed.create_field_index(key, schema)
    return plain, indexed


def _apply(coll: Collection, op: tuple[Any, ...], rng: np.random.Generator) -> None:
    kind = op[0]
    if kind == "upsert":
        ids = [pid for pid, _ in op[1]]
        vectors = rng.normal(size=(len(ids), DIM)).astype(np.float32)
        coll.upsert(ids, vectors, [p for _, p in op[1]])
        return
    if kind == "delete":
        coll.delete(op[1])
        return
    held = sorted(coll.ids_matching(lambda _pid, _payload: True))
    if not held:
        return
    pid = held[op[1] % len(held)]  # a point writes can reach
    if kind == "update":
        vector = rng.normal(size=(1, DIM)).astype(np.float32) if op[1] % 2 else None
        coll.update(pid, vector, op[2])
    elif kind == "set":
        coll.set_payload([pid], op[2], op[3])
    elif kind == "set_key":
        coll.set_payload([pid], op[2], False, "o")
    else:
        coll.delete_payload([pid], op[2])


@pytest.mark.parametrize("kind", [IndexKind.EXACT, IndexKind.HNSW])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=_ops, specs=st.lists(_filters, min_size=1, max_size=4), seed=st.integers(0, 9))
def test_indexed_reads_answer_as_unindexed_ones(
    kind: IndexKind, ops: list[tuple[Any, ...]], specs: list[dict[str, Any]], seed: int
) -> None:
    plain, indexed = _pair(kind)
    for coll in (plain, indexed):
        rng = np.random.default_rng(seed)  # the same vectors for both
        for op in ops:
            _apply(coll, op, rng)
    for i, (key, schema) in enumerate(INDEXES.items()):
        if not i % 2:
            indexed.create_field_index(key, schema)
    for spec in BATTERY:
        pred = compile_filter(spec)
        assert pred is not None
        assert set(indexed.ids_matching(pred)) == set(plain.ids_matching(pred)), spec
    query = np.ones((1, DIM), dtype=np.float32) / 2
    for spec in specs:
        pred = compile_filter(spec)
        assert pred is not None
        assert set(indexed.ids_matching(pred)) == set(plain.ids_matching(pred)), spec
        assert indexed.count(pred) == plain.count(pred)
        assert indexed.scroll(3, predicate=pred) == plain.scroll(3, predicate=pred)
        got = indexed.search(query, 5, predicate=pred, exact_search=True)
        assert [p.id for p in got] == [
            p.id for p in plain.search(query, 5, predicate=pred, exact_search=True)
        ]
    # facets and ordered listings read from the indexes answer as the scans do
    for key in INDEXES:
        assert indexed.facet(key, 5) == plain.facet(key, 5), key
        for spec in [None, *specs[:2]]:
            pred = compile_filter(spec)
            assert indexed.facet(key, 5, pred) == plain.facet(key, 5, pred), key
            for descending, start in ((False, None), (True, None), (False, 0.5), (True, 1)):
                asked = {"descending": descending, "start": start, "with_payload": False}
                asked["datetimes"] = False  # (by numbers, even where a datetime index is)
                got = [(p.id, type(v), v) for p, v in indexed.ordered(key, 4, pred, **asked)]
                want = [(p.id, type(v), v) for p, v in plain.ordered(key, 4, pred, **asked)]
                assert got == want, (key, spec, descending, start)
            # by datetimes: the datetime index walked (in microseconds), the scan
            for descending, start in (
                (False, None),
                (True, None),
                (False, 1714557600 * 10**6),
                (True, 32503680000000001),  # (3000-01-01T00:00:00.000001Z)
            ):
                asked = {"descending": descending, "start": start, "with_payload": False}
                got = [(p.id, v) for p, v in indexed.ordered("t", 4, pred, **asked)]
                want = [(p.id, v) for p, v in plain.ordered("t", 4, pred, datetimes=True, **asked)]
                assert got == want, (spec, descending, start)
    # and the points each index counts are those with a value at its key
    for key, info in indexed.payload_schema().items():
        holding = compile_filter({"must_not": [{"is_empty": {"key": key}}]})
        assert holding is not None
        assert info["points"] <= plain.count(holding), key


def test_indexes_answer_lookups_with_the_points_they_name() -> None:
    coll = Collection("c", CollectionConfig(DIM, index=IndexKind.EXACT), capacity=8)
    coll.create_field_index("city", "keyword")
    coll.create_field_index("price", "integer")
    rng = np.random.default_rng(0)
    payloads = [{"city": ["Paris", "Berlin"][i % 2], "price": i} for i in range(100)]
    coll.upsert(list(range(100)), rng.normal(size=(100, DIM)).astype(np.float32), payloads)
    spec = {
        "must": [
            {"key": "city", "match": {"value": "Paris"}},
            {"key": "price", "range": {"gte": 10, "lt": 20}},
        ]
    }
    pred = compile_filter(spec)
    assert pred is not None and lookup_of(pred) is not None
    # slots are the ids (inserted in order); the indexes answer this filter whole
    assert coll._narrowed(pred) == ({10, 12, 14, 16, 18}, True)
    assert sorted(coll.ids_matching(pred)) == [10, 12, 14, 16, 18]
    # a part no index answers: the points named are a superset, read one by one
    for partial in (
        {
            "must": [
                {"key": "city", "match": {"value": "Paris"}},
                {"key": "other", "match": {"value": 1}},
            ]
        },
        {"must": [{"key": "price", "range": {"lt": 4}}], "must_not": [{"has_id": [2]}]},
        {
            "should": [{"key": "price", "match": {"any": [1, 2]}}, {"has_id": [9]}],
            "min_should": {"conditions": [], "min_count": 0},
        },
    ):
        pred = compile_filter(partial)
        assert pred is not None
        narrowed = coll._narrowed(pred)
        assert narrowed is not None and not narrowed[1], partial
        assert set(coll.ids_matching(pred)) <= narrowed[0]  # (ids are the slots here)
    pred = compile_filter({"should": [{"key": "price", "match": {"any": [1, 2]}}, {"has_id": [9]}]})
    assert pred is not None and coll._narrowed(pred) == ({1, 2, 9}, True)
    assert coll.count(pred) == 3
    # a filter an index cannot narrow (an unindexed key, or `except`) reads everything
    for wide in (
        {"must": [{"key": "other", "match": {"value": 1}}]},
        {"must": [{"key": "city", "match": {"except": ["Paris"]}}]},
    ):
        pred = compile_filter(wide)
        assert pred is not None and coll._narrowed(pred) is None
    assert coll.payload_schema() == {
        "city": {"data_type": "keyword", "params": None, "points": 100},
        "price": {"data_type": "integer", "params": None, "points": 100},
    }
    coll.delete(range(50))
    coll.set_payload([60], {"city": None}, False)
    assert coll.payload_schema()["city"]["points"] == 49
    coll.drop_field_index("city")
    assert list(coll.payload_schema()) == ["price"]
    assert coll.config.payload_indexes == {"price": "integer"}


def test_a_geo_index_counts_the_points_holding_geo_points() -> None:
    coll = Collection("c", CollectionConfig(DIM, index=IndexKind.EXACT), capacity=8)
    here = {"lon": 2.35, "lat": 48.85}
    payloads: list[dict[str, Any] | None] = [
        {"loc": here},
        {"loc": [here, {"lon": 1, "lat": 2}]},
        {"loc": "not a point"},
        {"loc": {"lon": "2", "lat": 1}},
        None,
    ]
    coll.upsert(list(range(5)), np.ones((5, DIM), np.float32), payloads)
    coll.create_field_index("loc", "geo")
    assert coll.payload_schema()["loc"]["points"] == 2
    coll.set_payload([2], {"loc": here}, False)
    coll.delete([0])
    assert coll.payload_schema()["loc"]["points"] == 2


@pytest.mark.parametrize(
    ("schema", "counted"),
    [
        ("integer", {0, 6}),
        ("float", {0, 1, 6}),
        ("keyword", {2, 3, 4, 6}),
        ("text", {2, 3, 4, 6}),
        ("bool", {5}),
        ("datetime", {3}),
        ("uuid", {4}),
    ],
)
def test_an_index_counts_the_points_holding_values_of_its_type(
    schema: str, counted: set[int]
) -> None:
    """As Qdrant counts them: an integer index's points hold an integer there, not a
    string or an object (every scalar is still indexed for matches)."""
    coll = Collection("c", CollectionConfig(DIM, index=IndexKind.EXACT), capacity=8)
    payloads: list[dict[str, Any] | None] = [
        {"k": 5},
        {"k": 5.5},
        {"k": "five"},
        {"k": "2024-01-02T03:04:05Z"},
        {"k": "3fa85f64-5717-4562-b3fc-2c963f66afa6"},
        {"k": True},
        {"k": [{"nested": 1}, "x", 7]},
        {"k": {"nested": 1}},
        None,
    ]
    coll.upsert(list(range(len(payloads))), np.ones((len(payloads), DIM), np.float32), payloads)
    coll.create_field_index("k", schema)
    assert coll.payload_schema()["k"]["points"] == len(counted)
    coll.delete(sorted(counted)[:1])
    assert coll.payload_schema()["k"]["points"] == len(counted) - 1


def test_a_broad_part_is_read_not_gathered() -> None:
    """Of the parts of a `must`, only those naming few points are gathered; the points
    of the most selective part are then read for the rest."""
    coll = Collection("c", CollectionConfig(DIM, index=IndexKind.EXACT), capacity=8)
    coll.create_field_index("city", "keyword")
    coll.create_field_index("price", "integer")
    rng = np.random.default_rng(0)
    payloads = [{"city": ["Paris", "Berlin"][i % 2], "price": i % 500} for i in range(1000)]
    coll.upsert(list(range(1000)), rng.normal(size=(1000, DIM)).astype(np.float32), payloads)
    spec = {
        "must": [
            {"key": "city", "match": {"value": "Paris"}},
            {"key": "price", "match": {"value": 12}},
        ]
    }
    pred = compile_filter(spec)
    assert pred is not None
    assert coll._narrowed(pred) == ({12, 512}, False)  # the 500 of Paris were not gathered
    assert sorted(coll.ids_matching(pred)) == [12, 512] and coll.count(pred) == 2
    spec["must"][1] = {"key": "price", "range": {"lt": 100}}  # 200 points: both gathered
    pred = compile_filter(spec)
    assert pred is not None
    narrowed = coll._narrowed(pred)
    assert narrowed is not None and narrowed[1] and len(narrowed[0]) == 100


def test_ordered_listings_and_facets_walk_the_index() -> None:
    """order_by and facets read the index's numbers in order and its counts (asserted
    against a collection without the index, and by hand)."""
    plain = Collection("p", CollectionConfig(DIM, index=IndexKind.EXACT), capacity=8)
    indexed = Collection("i", CollectionConfig(DIM, index=IndexKind.EXACT), capacity=8)
    indexed.create_field_index("n", "integer")
    rng = np.random.default_rng(0)
    payloads: list[dict[str, Any]] = [{"n": i % 7} for i in range(50)]
    payloads[3] = {"n": 5.0}  # an integral float: its key is 5.0 until it goes
    for coll in (plain, indexed):
        coll.upsert(list(range(50)), rng.normal(size=(50, DIM)).astype(np.float32), payloads)
    assert indexed._fields.fields["n"].in_order(False, None) is None  # 5.0 and 5 share it
    for coll in (plain, indexed):
        coll.set_payload([3], {"n": 3}, False)  # now every 5 is an integer
    for descending, start in ((False, None), (True, None), (False, 2), (True, 5)):
        asked: dict[str, Any] = {"descending": descending, "start": start, "with_payload": False}
        got = [(p.id, type(v), v) for p, v in indexed.ordered("n", 12, None, **asked)]
        assert got == [(p.id, type(v), v) for p, v in plain.ordered("n", 12, None, **asked)]
    top = [(p.id, v) for p, v in indexed.ordered("n", 3, descending=True)]
    assert top == [(48, 6), (41, 6), (34, 6)]  # equal numbers: ids descending too
    fives = [(p.id, type(v)) for p, v in indexed.ordered("n", 2, start=5)]
    assert fives == [(5, int), (12, int)]
    assert indexed.facet("n", 3) == plain.facet("n", 3) == [(0, 8), (1, 7), (2, 7)]


def test_schemas_are_parsed_and_inferred() -> None:
    assert field_index.parse_schema("keyword") == "keyword"
    options = {"type": "integer", "lookup": True, "range": False, "on_disk": None}
    assert field_index.parse_schema(options) == {"type": "integer", "lookup": True, "range": False}
    assert field_index.parse_schema({"type": "keyword", "is_tenant": None}) == "keyword"
    for bad, field in (
        ({"type": "keyword", "lookup": True}, "field_schema.lookup"),  # (an integer's)
        ({"type": "float", "is_principal": "yes"}, "field_schema.is_principal"),
        ({"type": "bool", "colour": 1}, "field_schema.colour"),
    ):
        with pytest.raises(ValidationError) as err:
            field_index.parse_schema(bad)
        assert err.value.field == field
    with pytest.raises(ValidationError) as err:
        field_index.parse_schema("varchar")
    assert err.value.field == "field_schema"
    infer = field_index.infer_schema
    assert infer([{"k": "a"}, {"k": ["b"]}], "k") == "keyword"
    assert infer([{"k": 1}, {"k": 2.5}], "k") == "float"
    assert infer([{"k": 1}, None], "k") == "integer"
    assert infer([{"k": True}], "k") == "bool"
    assert infer([{"k": "2024-05-01T10:00:00Z"}], "k") == "datetime"
    for mixed in ([{"k": 1}, {"k": "a"}], [{"x": 1}], [{"k": {"a": 1}}]):
        with pytest.raises(ValidationError):
            infer(mixed, "k")


def _range_lookup(bounds: dict[str, Any], key: str = "t") -> Range:
    pred = compile_filter({"must": [{"key": key, "range": bounds}]})
    assert pred is not None
    lookup = lookup_of(pred)
    assert isinstance(lookup, Range)
    return lookup


def test_datetime_indexes_keep_microseconds() -> None:
    """A datetime index keeps Qdrant's i64 microseconds: far-future instants a
    microsecond apart stay apart in its ranges and in its order, and an ordered listing
    reports the same values with the index as without it."""
    stamps = [f"3000-01-01T00:00:00.00000{i}Z" for i in (1, 2, 3)]
    at = [micros(s) for s in stamps]
    assert at == [32503680000000001, 32503680000000002, 32503680000000003]
    index = field_index.FieldIndex("t", "datetime")
    for slot, stamp in enumerate(stamps):
        index.add(slot, {"t": stamp})
    for op, slots in (("gt", {2}), ("gte", {1, 2}), ("lt", {0}), ("lte", {0, 1})):
        assert index.range(_range_lookup({op: stamps[1]})) == slots, op
        assert index.estimate(_range_lookup({op: stamps[1]})) == len(slots), op
    walk = index.in_order(False, None, datetimes=True)
    assert walk is not None and list(walk) == [(at[0], {0}), (at[1], {1}), (at[2], {2})]
    walk = index.in_order(True, at[1], datetimes=True)
    assert walk is not None and list(walk) == [(at[1], {1}), (at[0], {0})]

    plain, indexed = (
        Collection(name, CollectionConfig(DIM, index=IndexKind.EXACT), capacity=4) for name in "pi"
    )
    indexed.create_field_index("t", "datetime")
    for coll in (plain, indexed):
        vectors = np.ones((3, DIM), dtype=np.float32)
        coll.upsert([1, 2, 3], vectors, [{"t": stamp} for stamp in stamps])
        for op, ids in (("gt", [3]), ("gte", [2, 3]), ("lt", [1]), ("lte", [1, 2])):
            pred = compile_filter({"must": [{"key": "t", "range": {op: stamps[1]}}]})
            assert pred is not None
            assert sorted(coll.ids_matching(pred)) == ids, (coll.name, op)
    for descending in (False, True):
        listed = [(p.id, v) for p, v in indexed.ordered("t", 3, descending=descending)]
        scanned = plain.ordered("t", 3, descending=descending, datetimes=True)
        assert listed == [(p.id, v) for p, v in scanned]
        assert sorted(v for _, v in listed) == at
        assert all(type(v) is int for _, v in listed)


def test_only_what_qdrant_reads_as_a_datetime_fills_a_datetime_index() -> None:
    """ISO 8601's other forms are keywords to Qdrant: a datetime index does not hold
    them, and an index created without a type over them is a keyword index."""
    others = ["20240101", "2024-W01-1", "2024-01-01T10", "2024-01-01T10:00:00,5"]
    index = field_index.FieldIndex("t", "datetime")
    for slot, text in enumerate([*others, "2024-01-01t10:00:00z"]):
        index.add(slot, {"t": text})
    assert index.points == 1
    walk = index.in_order(False, None, datetimes=True)
    assert walk is not None and list(walk) == [(micros("2024-01-01T10:00:00Z"), {4})]
    assert index.range(_range_lookup({"gte": "2000-01-01"})) == {4}
    infer = field_index.infer_schema
    assert infer([{"k": "20240101"}, {"k": "20231231"}], "k") == "keyword"
    assert infer([{"k": text} for text in others], "k") == "keyword"
    assert infer([{"k": "2024-01-01t10:00:00z"}, {"k": "2024-01-02"}], "k") == "datetime"


def test_a_range_without_bounds_takes_every_number_an_index_holds() -> None:
    index = field_index.FieldIndex("n", "integer")
    for slot, value in enumerate([1, 2.5, "a", True, None, -3]):
        index.add(slot, {"n": value})
    for bounds in ({}, {"gt": None}):
        lookup = _range_lookup(bounds, "n")
        assert not lookup.datetimes
        assert index.range(lookup) == {0, 1, 5}
        assert index.estimate(lookup) == 3


def test_a_stored_index_under_a_key_that_is_not_a_path_still_loads() -> None:
    """New indexes must be on payload paths; one stored before keys were checked (in a
    snapshot's or the log's config) loads as it was written."""
    config = CollectionConfig.parse(
        {"dimension": 2, "payload_indexes": {"a[": "keyword"}}, HnswParams()
    )
    assert set(config.payload_indexes) == {"a["}
    coll = Collection("c", config, capacity=8)  # and indexes the values at that literal key
    coll.upsert([1, 2], np.ones((2, 2), np.float32), [{"a[": "x"}, {"a[": "y"}])
    assert coll.payload_schema()["a["]["points"] == 2
