"""The filter compiler against qdrant-client's local mode (``QdrantClient(":memory:")``,
its own reimplementation of Qdrant's filters) over generated payloads: geo conditions,
values_count, nested filters, has_vector and the full-text and keyword matches must
accept exactly the points local mode accepts."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from qdrant_client import QdrantClient, models

from vectorizer.engine.filters import compile_filter

WORDS = ["good", "cheap", "Goodness", "hardware", "alpha", "beta", "Beta", "x_y", "über"]
N = 400
# values at the edges of is_empty and is_null
EMPTYISH: list[Any] = [None, [], [None], [[]], [None, 1], [[None]], 0, 1, "", {}, [1], False]
# 1, 1.0 and true are three values to Qdrant's matches (Python finds them equal)
MIXED: list[Any] = [1, 1.0, True, "1", 2, 2.5, [1.0, 2], [True, 1], [1.0], None, "a", 0, False]


def _point(rng: random.Random) -> dict[str, Any]:
    payload: dict[str, Any] = {}
    if rng.random() < 0.85:
        payload["loc"] = _location(rng)
    if rng.random() < 0.3:
        payload["locs"] = [_location(rng) for _ in range(rng.randint(0, 3))]
    if rng.random() < 0.8:
        payload["tags"] = rng.choice([None, "solo", [], [1], ["a", "b"], [1, 2, 3], [None, 4]])
    if rng.random() < 0.8:
        payload["items"] = [
            {
                "k": rng.randint(0, 3),
                "name": rng.choice(["ab", "cd", None]),
                "sub": rng.choice([[], [1], [1, 2]]),
            }
            for _ in range(rng.randint(0, 3))
        ] + rng.choice([[], ["not an object"], [[{"k": 1}]]])
    if rng.random() < 0.8:
        payload["e"] = rng.choice(EMPTYISH)
    if rng.random() < 0.5:
        payload["o"] = (
            {"e": rng.choice(EMPTYISH)}
            if rng.random() < 0.8
            else [{"e": rng.choice(EMPTYISH)} for _ in range(rng.randint(0, 2))]
        )
    if rng.random() < 0.85:
        n = rng.randint(0, 5)
        text = " ".join(rng.choice(WORDS) for _ in range(n))
        payload["text"] = rng.choice([text, text + ",", text.upper(), [text, "alpha"], 7])
    if rng.random() < 0.8:  # JSON kinds that Python's == mixes up
        payload["m"] = rng.choice(MIXED)
    return payload


def _location(rng: random.Random) -> Any:
    if rng.random() < 0.05:
        return rng.choice([{"lon": "1", "lat": 2}, {"lat": 3}, "here", {"lon": True, "lat": 1}])
    return {"lon": round(rng.uniform(-180, 180), 3), "lat": round(rng.uniform(-90, 90), 3)}


def _geo(lon: float, lat: float) -> models.GeoPoint:
    return models.GeoPoint(lon=lon, lat=lat)


def _ring(*points: tuple[float, float]) -> models.GeoLineString:
    return models.GeoLineString(points=[_geo(lon, lat) for lon, lat in points])


def _field(key: str, **kw: Any) -> models.FieldCondition:
    return models.FieldCondition(key=key, **kw)


CONDITIONS: list[models.Condition] = [
    _field("loc", geo_radius=models.GeoRadius(center=_geo(10, 20), radius=3_000_000)),
    _field("loc", geo_radius=models.GeoRadius(center=_geo(179, -5), radius=2_500_000)),
    _field("locs", geo_radius=models.GeoRadius(center=_geo(0, 0), radius=5_000_000)),
    _field(
        "loc",
        geo_bounding_box=models.GeoBoundingBox(top_left=_geo(-40, 60), bottom_right=_geo(30, -10)),
    ),
    # across the antimeridian
    _field(
        "loc",
        geo_bounding_box=models.GeoBoundingBox(top_left=_geo(150, 80), bottom_right=_geo(-150, 0)),
    ),
    _field(
        "loc",
        geo_polygon=models.GeoPolygon(
            exterior=_ring((-100, -60), (100, -60), (100, 60), (-100, 60), (-100, -60)),
            interiors=[_ring((-20, -20), (20, -20), (20, 20), (-20, 20), (-20, -20))],
        ),
    ),
    _field(
        "locs",
        geo_polygon=models.GeoPolygon(
            exterior=_ring((0, 0), (120, 10), (60, 80), (-30, 40), (0, 0)),
        ),
    ),
    _field("tags", values_count=models.ValuesCount(lt=1)),
    _field("tags", values_count=models.ValuesCount(gte=2)),
    _field("tags", values_count=models.ValuesCount(gt=0, lte=1)),
    _field("items[].sub", values_count=models.ValuesCount(gte=1)),
    models.NestedCondition(
        nested=models.Nested(
            key="items",
            filter=models.Filter(
                must=[
                    _field("k", match=models.MatchValue(value=1)),
                    _field("name", match=models.MatchValue(value="ab")),
                ]
            ),
        )
    ),
    models.NestedCondition(
        nested=models.Nested(
            key="items[]",
            filter=models.Filter(
                must=[_field("k", range=models.Range(gte=2))],
                must_not=[models.IsEmptyCondition(is_empty=models.PayloadField(key="sub"))],
            ),
        )
    ),
    models.NestedCondition(
        nested=models.Nested(
            key="items",
            filter=models.Filter(
                must_not=[_field("name", match=models.MatchValue(value="ab"))],
                should=[models.IsNullCondition(is_null=models.PayloadField(key="name"))],
            ),
        )
    ),
    models.NestedCondition(
        nested=models.Nested(
            key="items",
            filter=models.Filter(must=[_field("sub", values_count=models.ValuesCount(gt=1))]),
        )
    ),
    models.HasVectorCondition(has_vector=""),
    models.IsEmptyCondition(is_empty=models.PayloadField(key="e")),
    models.IsEmptyCondition(is_empty=models.PayloadField(key="o.e")),
    models.IsEmptyCondition(is_empty=models.PayloadField(key="o[].e")),
    models.IsNullCondition(is_null=models.PayloadField(key="e")),
    models.IsNullCondition(is_null=models.PayloadField(key="o.e")),
    _field("e", is_empty=True),
    _field("e", is_empty=False),
    _field("o.e", is_null=True),
    _field("o[].e", is_null=False),
    # paths: a key reaches into objects only, `[]` into every element, `[n]` into one
    _field("o.e", match=models.MatchValue(value=1)),
    _field("o[].e", match=models.MatchValue(value=1)),
    _field("o[0].e", is_null=True),
    _field("e[1]", match=models.MatchValue(value=1)),
    _field("items[1].k", range=models.Range(gte=1)),
    _field("items.k", values_count=models.ValuesCount(gte=1)),
    models.SliceCondition(slice=models.Slice(total=1, index=0)),
    models.SliceCondition(slice=models.Slice(total=3, index=1)),
    models.SliceCondition(slice=models.Slice(total=7, index=6)),
    _field("text", match=models.MatchText(text="good")),
    _field("text", match=models.MatchText(text="GOOD cheap")),
    _field("text", match=models.MatchText(text="beta, alpha")),
    _field("text", match=models.MatchText(text="x")),
    _field("text", match=models.MatchText(text="Über")),
    _field("text", match=models.MatchText(text="  ")),
    _field("text", match=models.MatchTextAny(text_any="hardware beta")),
    _field("text", match=models.MatchTextAny(text_any="")),
    _field("text", match=models.MatchPhrase(phrase="alpha beta")),
    _field("text", match=models.MatchPhrase(phrase="good good")),
    _field("text", match=models.MatchPrefix(prefix="Good")),
    _field("text", match=models.MatchSubstring(substring="ood")),
    _field("m", match=models.MatchValue(value=1)),
    _field("m", match=models.MatchValue(value=True)),
    _field("m", match=models.MatchValue(value=0)),
    _field("m", match=models.MatchValue(value="1")),
    _field("m", match=models.MatchAny(any=[1, 2])),
    _field("m", match=models.MatchAny(any=["1", "a"])),
    _field("m", match=models.MatchExcept(**{"except": [1]})),
    _field("m", match=models.MatchExcept(**{"except": ["a"]})),
    _field("m", range=models.Range(gte=1, lte=1)),
    # a quoted key is the key inside the quotes, dot or no dot
    _field('"m"', match=models.MatchValue(value=1)),
    _field('"m"', match=models.MatchExcept(**{"except": ["a"]})),
    _field('"m"', range=models.Range(gte=1)),
    _field('"o".e', is_null=True),
    models.Filter(),  # an empty nested filter: every point passes
    models.Filter(should=[models.Filter(), _field("e", is_empty=True)]),
]


def _filters() -> Iterator[models.Filter]:
    for c in CONDITIONS:
        yield models.Filter(must=[c])
        yield models.Filter(must_not=[c])
    rng = random.Random(7)
    for _ in range(40):  # and some combinations of them
        a, b, c = rng.sample(CONDITIONS, 3)
        yield models.Filter(should=[a, b], must_not=[c])


@pytest.fixture(scope="module")
def local() -> Iterator[tuple[QdrantClient, dict[int, dict[str, Any]]]]:
    rng = random.Random(1)
    payloads = {i: _point(rng) for i in range(N)}
    client = QdrantClient(":memory:")
    client.create_collection(
        "c", vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT)
    )
    client.upsert(
        "c",
        points=[
            models.PointStruct(id=i, vector=[1.0, 0.0], payload=p) for i, p in payloads.items()
        ],
    )
    yield client, payloads
    client.close()


@pytest.mark.parametrize(
    "flt", list(_filters()), ids=lambda f: f.model_dump_json(exclude_none=True)
)
def test_filters_accept_what_local_mode_accepts(
    local: tuple[QdrantClient, dict[int, dict[str, Any]]], flt: models.Filter
) -> None:
    client, payloads = local
    spec = flt.model_dump(mode="json", exclude_none=True, by_alias=True)
    pred = compile_filter(spec)
    assert pred is not None
    ours = sorted(i for i, p in payloads.items() if pred(i, p))
    # the same filter with its unset fields sent as nulls (as some clients send them)
    with_nulls = compile_filter(flt.model_dump(mode="json", by_alias=True))
    assert with_nulls is not None
    assert sorted(i for i, p in payloads.items() if with_nulls(i, p)) == ours
    page, _ = client.scroll("c", scroll_filter=flt, limit=N + 1)
    assert ours == sorted(int(p.id) for p in page)
