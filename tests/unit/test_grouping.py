"""Facets, search groups and payload ordering (engine.grouping, engine.ordering)."""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from vectorizer.engine.collection import Collection
from vectorizer.engine.config import CollectionConfig
from vectorizer.engine.filters import compile_filter
from vectorizer.engine.grouping import facet, gather, group_ids, search_groups
from vectorizer.engine.ordering import order_values, ordered


def test_facet_counts_points_once_per_distinct_value_and_orders_ties_by_kind_then_value() -> None:
    payloads: list[dict[str, Any] | None] = [
        {"tag": ["a", "a", "b"]},  # counts once for a
        {"tag": "b"},
        {"tag": 2},
        {"tag": True},
        {"tag": 1.5},  # floats are not facet values
        {"tag": {"nested": "x"}},
        {"tag": "c"},
        {"tag": 1},
        None,
        {},
    ]
    # b: 2; then the count-1 values by kind (strings, integers, booleans), then value
    assert facet(payloads, "tag", 10) == [("b", 2), ("a", 1), ("c", 1), (1, 1), (2, 1), (True, 1)]
    assert facet(payloads, "tag", 2) == [("b", 2), ("a", 1)]
    # a key reaches into objects only; `[]` into arrays (Qdrant's JSON paths)
    nested = [{"a": {"b": [3, 3, 4]}}, {"a": [{"b": 3}, {"b": 5}]}]
    assert facet(nested, "a.b", 5) == [(3, 1), (4, 1)]
    assert facet(nested, "a[].b", 5) == [(3, 1), (5, 1)]
    assert facet(nested, "a[1].b", 5) == [(5, 1)]


def test_group_ids_are_distinct_strings_and_integers() -> None:
    assert group_ids({"d": ["x", 1, "x", 1]}, "d") == ["x", 1]
    # any other value there and the point is in no group (Qdrant's GroupsAggregator
    # refuses the whole point: was a group for each string and integer in it)
    for other in (True, 2.5, None, ["w"], {"a": 1}):
        assert group_ids({"d": ["x", 1, other]}, "d") == [], other
    assert group_ids({"d": "1"}, "d") == ["1"] and group_ids({"d": 1}, "d") == [1]
    assert group_ids({}, "d") == [] and group_ids(None, "d") == []


def _hits(groups: list[Any]) -> list[dict[str, Any]]:
    return [{"n": i, "payload": {"g": g}} for i, g in enumerate(groups)]


def _payload(hit: dict[str, Any]) -> Any:
    return hit["payload"]


def test_gather_keeps_the_first_groups_met_and_says_when_that_is_final() -> None:
    hits = _hits(["a", "b", "a", "c", "a", "b", None, ["b", "d"]])
    found, final = gather(hits, _payload, "g", 2, 2)
    assert [(g.id, [h["n"] for h in g.hits]) for g in found] == [("a", [0, 2]), ("b", [1, 5])]
    assert final
    found, final = gather(hits, _payload, "g", 4, 2)  # a and b have three hits each
    assert [[h["n"] for h in g.hits] for g in found] == [[0, 2, 4], [1, 5, 7]] and not final
    found, final = gather(hits, _payload, "g", 1, 10)  # fewer groups than asked
    assert [g.id for g in found] == ["a", "b", "c", "d"] and not final
    found, _ = gather(_hits([["x", "y"]]), _payload, "g", 1, 2)  # one hit, two groups
    assert [g.id for g in found] == ["x", "y"]


def test_search_groups_asks_for_more_hits_until_the_groups_are_final() -> None:
    rng = random.Random(5)
    # 2,000 ranked hits: "rare" appears only deep down the list
    groups = [rng.choice("abcdefgh") for _ in range(2000)]
    for pos in (1500, 1700, 1900):
        groups[pos] = "rare"
    ranked = _hits(groups)
    asked: list[int] = []

    def search(k: int) -> list[dict[str, Any]]:
        asked.append(k)
        return ranked[:k]

    found = search_groups(search, _payload, "g", 3, 9, most=100_000)
    assert [g.id for g in found][-1] == "rare"
    assert [h["n"] for h in found[-1].hits] == [1500, 1700, 1900]
    assert asked == [64, 256, 1024, 4096]  # the last one ran out of hits
    # the same groups as grouping the whole ranking at once
    whole, _ = gather(ranked, _payload, "g", 3, 9)
    assert [(g.id, g.hits) for g in found] == [(g.id, g.hits) for g in whole]
    asked.clear()
    capped = search_groups(search, _payload, "g", 3, 9, most=300)
    assert asked == [64, 256, 300] and "rare" not in [g.id for g in capped]


def test_ordered_lists_points_by_number_once_per_distinct_value_ties_by_id() -> None:
    entries: list[tuple[Any, dict[str, Any] | None]] = [
        (3, {"t": 5}),
        (1, {"t": 5}),
        ("u", {"t": 5}),
        (2, {"t": [1, 9, 9]}),  # listed at 1 and at 9
        (4, {"t": "7"}),  # not a number
        (5, {"t": True}),  # not a number
        (6, {"t": 2.5}),
        (7, None),
    ]
    asc = ordered(entries, "t", descending=False, start=None, limit=10)
    assert asc == [(2, 1), (6, 2.5), (1, 5), (3, 5), ("u", 5), (2, 9)]
    desc = ordered(entries, "t", descending=True, start=None, limit=10)
    assert desc == list(reversed(asc))
    assert ordered(entries, "t", descending=False, start=5, limit=2) == [(1, 5), (3, 5)]
    assert ordered(entries, "t", descending=True, start=5, limit=10) == [
        ("u", 5),
        (3, 5),
        (1, 5),
        (6, 2.5),
        (2, 1),
    ]
    assert order_values({"t": [1, 1.0, 2]}, "t") == {1, 2}


def test_collection_facet_and_ordered_follow_the_filter() -> None:
    coll = Collection("c", CollectionConfig(2))
    n = 50
    vectors = np.random.default_rng(0).random((n, 2), dtype=np.float32)
    coll.upsert(list(range(n)), vectors, [{"k": i % 3, "t": n - i} for i in range(n)])
    assert coll.facet("k", 10) == [(0, 17), (1, 17), (2, 16)]
    only_two = compile_filter({"must": [{"key": "k", "match": {"value": 2}}]})
    assert coll.facet("k", 10, only_two) == [(2, 16)]
    rows = coll.ordered("t", 3, only_two, descending=True, with_vector=True)
    assert [(p.id, v) for p, v in rows] == [(2, 48), (5, 45), (8, 42)]
    assert rows[0][0].payload == {"k": 2, "t": 48} and rows[0][0].vector is not None


def test_datetimes_without_an_index_page_on_from_the_microseconds_shown() -> None:
    """Without an index on the key, the points holding datetime strings there (and no
    numbers) are listed by them, each with its microseconds; a page asked for from the
    last of those (a number) came back empty: a number ``start`` ruled the datetimes
    out. Where numbers are held, a start past them still ends the listing."""
    coll = Collection("c", CollectionConfig(2))
    coll.upsert(
        list(range(1, 6)),
        np.ones((5, 2), dtype=np.float32),
        [{"when": f"202{i}-01-01T00:00:00Z", "n": i} for i in range(1, 6)],
    )
    first = coll.ordered("when", 2)
    assert [p.id for p, _ in first] == [1, 2]
    last = first[-1][1]
    assert isinstance(last, int)  # (microseconds)
    assert [p.id for p, _ in coll.ordered("when", 3, start=last)] == [2, 3, 4]
    assert [p.id for p, _ in coll.ordered("when", 3, start=last, descending=True)] == [2, 1]
    assert coll.ordered("n", 3, start=9) == []  # (numbers: past them, nothing)
