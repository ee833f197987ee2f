"""Formula queries (Qdrant's score boosting) through the official qdrant-client against a
real ``vectorizer serve``: a battery of formulas over generated data, every answer (ids
in order, scores) held to qdrant-client's local mode; paging, thresholds, groups,
batches and nesting; bad formulas a 400 naming the field."""

from __future__ import annotations

import random
from typing import Any

import pytest
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

from tests.servers import ServerProcess

DIM = 4
N = 400
EXACT = models.SearchParams(exact=True)
TAGS = ["h1", "h2", "p", "li"]
ORIGIN = {"lon": 13.4, "lat": 52.5}
NOON = "2024-06-01T12:00:00Z"
DAY = 86_400.0


def _payload(rng: random.Random, i: int) -> dict[str, Any]:
    tag = TAGS[i % 4]
    p: dict[str, Any] = {
        "tag": tag,
        "rating": rng.choice([rng.randint(0, 9), round(rng.uniform(0, 9), 3), [rng.randint(0, 9)]]),
        "loc": {"lon": rng.uniform(12, 15), "lat": rng.uniform(51, 54)},
        "when": f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T"
        f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z",
        "meta": {"boost": rng.uniform(-1, 1)},
        "arr": [{"v": rng.uniform(0, 2)}, {"v": 9}],
    }
    if tag == "p":  # only "p" points have "m": formulas reach it behind a tag test
        p["m"] = rng.uniform(0.5, 3)
    if rng.random() < 0.5:  # sometimes missing: the formulas give defaults
        p["maybe"] = rng.randint(0, 5)
        p["loc2"] = {"lon": rng.uniform(12, 15), "lat": rng.uniform(51, 54)}
        p["when2"] = f"2024-0{rng.randint(1, 9)}-15T00:00:00+02:00"
    return p


@pytest.fixture
def local(client: QdrantClient) -> QdrantClient:
    """The same collection in the server and in qdrant-client's local mode (returned)."""
    rng = random.Random(11)
    points = [
        models.PointStruct(
            id=i, vector=[rng.gauss(0, 1) for _ in range(DIM)], payload=_payload(rng, i)
        )
        for i in range(N)
    ]
    mem = QdrantClient(":memory:")
    for c in (client, mem):
        c.create_collection(
            "c", vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE)
        )
        c.upsert("c", points=points)
    return mem


def _prefetches() -> list[models.Prefetch]:
    return [
        models.Prefetch(query=[1.0, 0.5, -0.2, 0.1], limit=60, params=EXACT),
        models.Prefetch(query=[-0.3, 1.0, 0.4, 0.2], limit=40, params=EXACT),
    ]


def _tag(*tags: str) -> dict[str, Any]:
    return {"key": "tag", "match": {"any": list(tags)}}


# (formula, defaults): each held to the local mode
BATTERY: list[tuple[Any, dict[str, Any]]] = [
    # the documented boost: a title outranks a paragraph
    ({"sum": ["$score", {"mult": [0.5, _tag("h1", "h2")]}, {"mult": [0.25, _tag("p")]}]}, {}),
    ({"mult": ["$score", "rating"]}, {}),
    ({"sum": ["$score[0]", {"mult": [2, "$score[1]"]}]}, {"$score[1]": -0.5}),
    ({"sum": ["$score", "$score[7]"]}, {"$score[7]": 0.25}),  # no such prefetch: the default
    ({"sum": ["$score", {"mult": [0.1, "maybe"]}]}, {"maybe": 2.5}),
    (
        {"div": {"left": "rating", "right": {"sum": ["maybe", -3]}, "by_zero_default": 7}},
        {"maybe": 3},
    ),
    ({"div": {"left": 1, "right": {"sum": [1, {"abs": "meta.boost"}]}}}, {}),
    ({"sqrt": {"abs": {"neg": "rating"}}}, {}),
    ({"pow": {"base": "$score", "exponent": 2}}, {}),
    ({"pow": {"base": {"sum": ["rating", 1]}, "exponent": 0.5}}, {}),
    ({"exp": "$score"}, {}),
    ({"log10": {"sum": ["rating", 1]}}, {}),
    ({"ln": {"sum": ["rating", 1]}}, {}),
    ({"acosh": {"sum": ["rating", 1]}}, {}),
    ({"max": ["$score", "meta.boost", 0.2]}, {}),
    ({"min": ["$score[0]", "$score[1]"]}, {}),
    ({"sum": ["arr[0].v", "meta.boost"]}, {}),
    ({"neg": {"geo_distance": {"origin": ORIGIN, "to": "loc"}}}, {}),
    ({"neg": {"geo_distance": {"origin": ORIGIN, "to": "loc2"}}}, {"loc2": ORIGIN}),
    (
        {
            "sum": [
                "$score",
                {
                    "lin_decay": {
                        "x": {"geo_distance": {"origin": ORIGIN, "to": "loc"}},
                        "scale": 50_000,
                    }
                },
            ]
        },
        {},
    ),
    ({"exp_decay": {"x": "rating", "target": 5, "scale": 3, "midpoint": 0.3}}, {}),
    ({"gauss_decay": {"x": "rating", "target": {"mult": [10, "$score"]}, "scale": 2}}, {}),
    ({"lin_decay": {"x": "$score", "midpoint": 1}}, {}),
    (
        {
            "gauss_decay": {
                "x": {"datetime_key": "when"},
                "target": {"datetime": NOON},
                "scale": 30 * DAY,
                "midpoint": 0.25,
            }
        },
        {},
    ),
    (
        {"sum": [{"datetime_key": "when2"}, {"neg": {"datetime": "2024-01-01T00:00:00Z"}}]},
        {"when2": "2024-03-01T00:00:00Z"},
    ),
    # conditions of every kind are 1 or 0
    ({"sum": ["$score", {"key": "rating", "range": {"gte": 5}}]}, {}),
    ({"sum": ["$score", {"has_id": [1, 2, 3, 5, 8, 13, 21, 34]}]}, {}),
    ({"sum": ["$score", {"is_empty": {"key": "maybe"}}]}, {}),
    (
        {
            "sum": [
                "$score",
                {"must": [_tag("h1")], "must_not": [{"key": "rating", "range": {"lt": 3}}]},
            ]
        },
        {},
    ),
    (
        {"sum": ["$score", {"key": "loc", "geo_radius": {"center": ORIGIN, "radius": 120_000}}]},
        {},
    ),
    # a zero factor or numerator stops the evaluation: "m" is read only where it exists
    ({"mult": [_tag("p"), "m"]}, {}),
    ({"div": {"left": _tag("p"), "right": "m"}}, {}),
    (0.5, {}),  # a constant: all tie, in the order the prefetches found the points
]


def _pairs(points: list[models.ScoredPoint]) -> tuple[list[int], list[float]]:
    return [int(p.id) for p in points], [p.score for p in points]


@pytest.mark.parametrize(("formula", "defaults"), BATTERY, ids=range(len(BATTERY)))
def test_formulas_score_as_the_local_mode_does(
    client: QdrantClient, local: QdrantClient, formula: Any, defaults: dict[str, Any]
) -> None:
    query = models.FormulaQuery(formula=formula, defaults=defaults)
    got, want = (
        _pairs(c.query_points("c", prefetch=_prefetches(), query=query, limit=N).points)
        for c in (client, local)
    )
    assert got[0] == want[0]
    assert got[1] == pytest.approx(want[1], rel=1e-5, abs=1e-6)
    assert len(got[0]) >= 60  # (the prefetches overlap: fewer than 100)


def test_a_prefetch_without_a_vector_scores_1(client: QdrantClient, local: QdrantClient) -> None:
    """Points a prefetch lists (no query: by id; or in a payload order) score 1, as
    Qdrant's listings do, so a formula multiplying by ``$score`` ranks by its other
    factor (they scored 0 here, and every such product tied at 0)."""
    query = models.FormulaQuery(formula={"mult": ["$score", "meta.boost"]})
    for prefetch in (
        models.Prefetch(limit=50),
        models.Prefetch(query=models.OrderByQuery(order_by="when"), limit=50),
    ):
        got, want = (
            _pairs(c.query_points("c", prefetch=prefetch, query=query, limit=50).points)
            for c in (client, local)
        )
        assert got[0] == want[0] and got[1] == pytest.approx(want[1], rel=1e-5)
        assert len(set(got[1])) == 50  # ranked by meta.boost, no ties


def test_paging_thresholds_and_what_is_shown(client: QdrantClient, local: QdrantClient) -> None:
    query = models.FormulaQuery(formula={"sum": ["$score", {"mult": [0.5, _tag("h1")]}]})
    asked: dict[str, Any] = {
        "prefetch": _prefetches(),
        "query": query,
        "limit": 7,
        "offset": 5,
        "with_payload": ["tag"],
        "with_vectors": True,
    }
    got, want = (c.query_points("c", **asked).points for c in (client, local))
    assert [p.id for p in got] == [p.id for p in want] and len(got) == 7
    assert [p.score for p in got] == pytest.approx([p.score for p in want], rel=1e-5)
    assert [p.payload for p in got] == [p.payload for p in want]
    assert got[0].payload is not None and set(got[0].payload) == {"tag"}
    assert got[0].vector == pytest.approx(want[0].vector, rel=1e-5)
    everything = client.query_points("c", prefetch=_prefetches(), query=query, limit=N).points
    # a threshold among the scores: those at or above it, paged after it
    cut = everything[len(everything) // 3].score
    asked.update(limit=N, offset=2, score_threshold=cut)
    got, want = (c.query_points("c", **asked).points for c in (client, local))
    assert [p.id for p in got] == [p.id for p in want]
    assert [p.id for p in got] == [p.id for p in everything if p.score >= cut][2:]
    assert min(p.score for p in got) >= cut > everything[-1].score
    # the query's filter holds in the prefetches, so among what the formula scores
    only_p = models.Filter(
        must=[models.FieldCondition(key="tag", match=models.MatchValue(value="p"))]
    )
    got, want = (
        c.query_points(
            "c", prefetch=_prefetches(), query=query, query_filter=only_p, limit=N
        ).points
        for c in (client, local)
    )
    assert _pairs(got)[0] == _pairs(want)[0] and all(int(p.id) % 4 == 2 for p in got)


def test_formulas_in_batches_groups_and_nested_prefetches(
    client: QdrantClient, local: QdrantClient
) -> None:
    boost = models.FormulaQuery(formula={"sum": ["$score", {"mult": [0.5, _tag("h2", "li")]}]})
    decay = models.FormulaQuery(
        formula={"exp_decay": {"x": "rating", "target": 4}}, defaults={"rating": 0}
    )
    requests = [
        models.QueryRequest(prefetch=_prefetches(), query=boost, limit=10),
        # a formula inside a prefetch, and another over it and a plain one
        models.QueryRequest(
            prefetch=[
                models.Prefetch(prefetch=_prefetches(), query=decay, limit=30),
                models.Prefetch(query=[0.1, 0.2, 0.3, 0.4], limit=30, params=EXACT),
            ],
            query=models.FormulaQuery(formula={"sum": ["$score[0]", {"mult": [0.1, "$score[1]"]}]}),
            limit=15,
        ),
        # a formula over a nested prefetch's vector rescoring
        models.QueryRequest(
            prefetch=models.Prefetch(
                prefetch=_prefetches(), query=[0.5, 0.5, 0.5, 0.5], limit=50, params=EXACT
            ),
            query=boost,
            limit=20,
        ),
    ]
    got, want = (c.query_batch_points("c", requests=requests) for c in (client, local))
    for mine, theirs in zip(got, want, strict=True):
        assert _pairs(mine.points)[0] == _pairs(theirs.points)[0]
        assert _pairs(mine.points)[1] == pytest.approx(_pairs(theirs.points)[1], rel=1e-5)
    groups = client.query_points_groups(
        "c", group_by="tag", prefetch=_prefetches(), query=boost, group_size=3, limit=4
    ).groups
    ranked = _pairs(local.query_points("c", prefetch=_prefetches(), query=boost, limit=N).points)
    assert [g.id for g in groups] == list(dict.fromkeys(TAGS[i % 4] for i in ranked[0]))
    for group in groups:
        want_ids = [i for i in ranked[0] if TAGS[i % 4] == group.id][:3]
        assert [int(h.id) for h in group.hits] == want_ids


def test_a_condition_reads_text_as_the_key_s_text_index_does(client: QdrantClient) -> None:
    """A full-text match in a formula tokenizes as a filter does: here by the key's
    text index (a prefix tokenizer would not match a word at all by default)."""
    client.create_collection(
        "t", vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT)
    )
    client.upsert(
        "t",
        points=[
            models.PointStruct(id=1, vector=[1, 0], payload={"title": "Vectorizer"}),
            models.PointStruct(id=2, vector=[0.9, 0], payload={"title": "other"}),
        ],
    )
    client.create_payload_index(
        "t",
        "title",
        models.TextIndexParams(
            type=models.TextIndexType.TEXT, tokenizer=models.TokenizerType.PREFIX
        ),
    )
    match = models.FieldCondition(key="title", match=models.MatchText(text="vec"))
    query = models.FormulaQuery(formula={"sum": ["$score", match]})
    hits = client.query_points("t", prefetch=models.Prefetch(query=[1, 0]), query=query).points
    filtered = client.query_points("t", query=[1, 0], query_filter=models.Filter(must=[match]))
    assert [(h.id, h.score) for h in hits] == [(1, 2.0), (2, pytest.approx(0.9))]
    assert [h.id for h in filtered.points] == [1]


# (formula, defaults, the field named): errors at parsing, and Qdrant's at evaluation
BAD: list[tuple[Any, Any, str]] = [
    ({"sqrt": {"neg": 4}}, None, "query.formula.sqrt"),
    ({"ln": {"mult": ["$score", 0]}}, None, "query.formula.ln"),
    ({"log10": -1}, None, "query.formula.log10"),
    ({"acosh": 0.5}, None, "query.formula.acosh"),
    (
        {"div": {"left": 1, "right": {"sum": ["$score", {"neg": "$score"}]}}},
        None,
        "query.formula.div",
    ),
    ({"pow": {"base": -8, "exponent": 0.5}}, None, "query.formula.pow"),
    ({"exp": 1000}, None, "query.formula.exp"),
    ({"mult": [3e38, 10]}, None, "query.formula"),  # beyond f32 in the end
    ({"sum": ["$score", "m"]}, None, "query.formula.sum[1]"),  # missing, no default
    ({"sum": ["$score", "tag"]}, None, "query.formula.sum[1]"),  # not a number
    ("tag", {"tag": 1}, "query.formula"),  # a value that is not a number: no default
    ("arr[].v", None, "query.formula"),  # two values: not a number
    ({"geo_distance": {"origin": ORIGIN, "to": "tag"}}, None, "query.formula.geo_distance"),
    ({"datetime_key": "rating"}, None, "query.formula.datetime_key"),
    # refused before any point is scored
    ({"max": []}, None, "query.formula.max"),
    ({"sum": "$score"}, None, "query.formula.sum"),
    ({"sum": ["$score", True]}, None, "query.formula.sum[1]"),
    ("$scores", None, "query.formula"),
    ("", None, "query.formula"),
    ({"key": "tag"}, None, "query.formula"),
    ({"mult": [{"key": "tag", "match": {"vaule": "p"}}]}, None, "query.formula.mult[0].match"),
    ({"lin_decay": {"x": 1, "midpoint": 1.5}}, None, "query.formula.lin_decay.midpoint"),
    ({"exp_decay": {"x": 1, "midpoint": 1}}, None, "query.formula.exp_decay.midpoint"),
    ({"gauss_decay": {"x": 1, "scale": 0}}, None, "query.formula.gauss_decay.scale"),
    ({"gauss_decay": {"target": 1}}, None, "query.formula.gauss_decay.x"),
    ({"div": {"left": 1, "right": 2, "by": 3}}, None, "query.formula.div.by"),
    ({"datetime": "June"}, None, "query.formula.datetime"),
    (
        {"geo_distance": {"origin": {"lon": 0, "lat": 95}, "to": "loc"}},
        None,
        "geo_distance.origin.lat",
    ),
    ({"neg": 1, "abs": 1}, None, "query.formula"),
    (1e39, None, "query.formula"),
    ("$score", {"$bad": 1}, "query.defaults.$bad"),
    ("$score", [1], "query.defaults"),
]


@pytest.mark.parametrize(("formula", "defaults", "field"), BAD, ids=range(len(BAD)))
def test_bad_formulas_are_a_400_naming_the_field(
    server: ServerProcess, local: QdrantClient, formula: Any, defaults: Any, field: str
) -> None:
    query: dict[str, Any] = {"formula": formula}
    if defaults is not None:
        query["defaults"] = defaults
    body = {"prefetch": [{"query": [1.0, 0.5, -0.2, 0.1], "limit": 60}], "query": query}
    status, answer = server.request("POST", "/qdrant/collections/c/points/query", body)
    assert status == 400, answer
    assert field in answer["status"]["error"], answer


@pytest.mark.parametrize(("formula", "defaults", "field"), BAD[:14], ids=range(14))
def test_the_local_mode_fails_on_the_same_points(
    local: QdrantClient, formula: Any, defaults: Any, field: str
) -> None:
    """Every error found only while scoring is an error in the local mode as well (a
    ValueError, or where a number stands for a datetime string an AttributeError)."""
    with pytest.raises((ValueError, AttributeError)):
        local.query_points(
            "c",
            prefetch=models.Prefetch(query=[1.0, 0.5, -0.2, 0.1], limit=60),
            query=models.FormulaQuery(formula=formula, defaults=defaults or {}),
        )


def test_a_formula_needs_prefetches(server: ServerProcess, client: QdrantClient) -> None:
    client.create_collection(
        "c", vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE)
    )
    for body, field in [
        ({"query": {"formula": "$score"}}, "query"),
        (
            {"prefetch": {"query": {"formula": 1}}, "query": {"formula": "$score"}},
            "prefetch[0].query",
        ),
        (
            {"prefetch": {"query": [1, 0, 0, 0]}, "query": {"formula": 1, "default": {}}},
            "query.default",
        ),
    ]:
        status, answer = server.request("POST", "/qdrant/collections/c/points/query", body)
        assert status == 400 and field in answer["status"]["error"], answer
    with pytest.raises(UnexpectedResponse) as err:
        client.query_points("c", query=models.FormulaQuery(formula="$score"))
    assert err.value.status_code == 400
