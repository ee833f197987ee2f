"""Grouped queries, facets and ordered scrolls through the official qdrant-client against a
real ``vectorizer serve``, checked against numpy and plain Python over the same data."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pytest
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

from tests.servers import ServerProcess

DIM = 8


def _vectors(n: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _load(client: QdrantClient, name: str, vectors: np.ndarray, payloads: list[Any]) -> None:
    client.create_collection(
        name, vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE)
    )
    for start in range(0, len(vectors), 1000):
        client.upsert(
            name,
            points=models.Batch(
                ids=list(range(start, min(start + 1000, len(vectors)))),
                vectors=vectors[start : start + 1000].tolist(),
                payloads=payloads[start : start + 1000],
            ),
        )


def _groups_by_numpy(
    vectors: np.ndarray,
    payloads: list[Any],
    query: np.ndarray,
    key: str,
    group_size: int,
    limit: int,
    keep: Any = None,
) -> list[tuple[Any, list[int]]]:
    """The answer by definition: every point ranked, grouped by each value at ``key``."""
    order = np.argsort(-(vectors @ query), kind="stable")
    groups: dict[Any, list[int]] = {}
    for i in order.tolist():
        if keep is not None and not keep(payloads[i]):
            continue
        values = payloads[i].get(key)
        for value in dict.fromkeys(values if isinstance(values, list) else [values]):
            if not isinstance(value, str | int) or isinstance(value, bool):
                continue
            if value not in groups:
                if len(groups) == limit:
                    continue
                groups[value] = []
            if len(groups[value]) < group_size:
                groups[value].append(i)
    return list(groups.items())


def _got(result: models.GroupsResult) -> list[tuple[Any, list[Any]]]:
    return [(g.id, [h.id for h in g.hits]) for g in result.groups]


def test_groups_are_the_best_hits_of_the_best_groups(client: QdrantClient) -> None:
    n = 1200
    vectors = _vectors(n, 1)
    rng = np.random.default_rng(2)
    payloads: list[dict[str, Any]] = []
    for i in range(n):
        p: dict[str, Any] = {"doc": int(rng.integers(0, 40)), "i": i}
        if i % 7 == 0:
            p["doc"] = [p["doc"], f"s{i % 3}"]  # in two groups: an integer and a string
        if i % 11 == 0:
            del p["doc"]  # in no group
        payloads.append(p)
    _load(client, "chunks", vectors, payloads)
    query = _vectors(1, 3)[0]

    got = client.query_points_groups(
        "chunks", "doc", query=query.tolist(), limit=6, group_size=4, with_payload=["i"]
    )
    assert _got(got) == _groups_by_numpy(vectors, payloads, query, "doc", 4, 6)
    for group in got.groups:
        scores = [h.score for h in group.hits]
        assert scores == sorted(scores, reverse=True)
        for hit in group.hits:
            assert hit.payload == {"i": hit.id} and hit.vector is None
            assert hit.score == pytest.approx(float(vectors[hit.id] @ query), abs=1e-5)
    best = [g.hits[0].score for g in got.groups]
    assert best == sorted(best, reverse=True)

    # the filter applies before grouping; hits come with their vectors when asked
    even = models.Filter(must=[models.FieldCondition(key="i", range=models.Range(gte=600))])
    got = client.query_points_groups(
        "chunks",
        "doc",
        query=query.tolist(),
        query_filter=even,
        limit=5,
        group_size=2,
        with_payload=False,
        with_vectors=True,
    )
    assert _got(got) == _groups_by_numpy(
        vectors, payloads, query, "doc", 2, 5, keep=lambda p: p["i"] >= 600
    )
    for hit in (h for g in got.groups for h in g.hits):
        assert hit.payload is None
        assert np.allclose(hit.vector, vectors[hit.id], atol=1e-6)

    # a score threshold leaves groups short rather than reaching below it
    cut = float(np.sort(vectors @ query)[-30])
    got = client.query_points_groups(
        "chunks", "doc", query=query.tolist(), limit=40, group_size=5, score_threshold=cut
    )
    assert all(h.score >= cut - 1e-6 for g in got.groups for h in g.hits)
    assert sum(len(g.hits) for g in got.groups) <= 30 + sum(
        1 for g in got.groups for h in g.hits if isinstance(h.payload["doc"], list)
    )


def test_prefetches_of_a_grouped_query_fetch_group_size_times_more(client: QdrantClient) -> None:
    """As Qdrant does (``increase_limit_for_group``): each prefetch of a grouped query
    asks for ``group_size`` times its limit, so groups fill from the fused ranking of
    6 points each instead of the 2 asked (groups of 2 hits, scores from short lists)."""
    vectors = {"a": models.VectorParams(size=2, distance=models.Distance.DOT)}
    vectors["b"] = vectors["a"]
    client.create_collection("gpf", vectors_config=vectors)
    client.upsert(  # by "a" the nearest are 1, 2, 3, ...; by "b" 10, 9, 8, ...
        "gpf",
        [
            models.PointStruct(id=i, vector={"a": [1, -i], "b": [1, i]}, payload={"g": i % 2})
            for i in range(1, 11)
        ],
    )
    prefetch = [models.Prefetch(query=[0, 1], using=u, limit=2) for u in ("a", "b")]
    got = client.query_points_groups(
        "gpf",
        "g",
        prefetch=prefetch,
        query=models.FusionQuery(fusion=models.Fusion.RRF),
        limit=2,
        group_size=3,
    )
    assert _got(got) == [(1, [1, 9, 5]), (0, [10, 2, 6])]
    # RRF (k 2) over the two lists of 6: 1 / (rank + 2), summed
    assert [h.score for h in got.groups[0].hits] == pytest.approx([1 / 2, 1 / 3, 1 / 6 + 1 / 7])


def test_a_rare_group_deep_in_the_ranking_is_found(client: QdrantClient) -> None:
    """Groups are filled by asking for more hits until they are complete: a group whose
    points rank in the thousands still gets all of them (the graph path, 5,000 points)."""
    n = 5000
    vectors = _vectors(n, 4)
    query = _vectors(1, 5)[0]
    order = np.argsort(-(vectors @ query)).tolist()
    payloads: list[dict[str, Any]] = [{"g": "common"} for _ in range(n)]
    for rank in (2000, 3500, 4990):
        payloads[order[rank]] = {"g": "rare"}
    _load(client, "deep", vectors, payloads)
    got = client.query_points_groups(
        "deep",
        "g",
        query=query.tolist(),
        limit=2,
        group_size=3,
        search_params=models.SearchParams(exact=True),
    )
    assert _got(got) == [("common", order[:3]), ("rare", [order[2000], order[3500], order[4990]])]


def test_lookup_brings_the_point_named_by_each_group(client: QdrantClient) -> None:
    vectors = _vectors(60, 6)
    payloads = [{"doc": i % 6} for i in range(60)]
    _load(client, "parts", vectors, payloads)
    client.create_collection(
        "documents", vectors_config=models.VectorParams(size=2, distance=models.Distance.DOT)
    )
    client.upsert(
        "documents",
        points=[
            models.PointStruct(id=d, vector=[d, 1.0], payload={"title": f"doc {d}", "pages": d})
            for d in range(5)  # no document 5
        ],
    )
    query = vectors[0].tolist()
    got = client.query_points_groups(
        "parts", "doc", query=query, limit=6, group_size=1, with_lookup="documents"
    )
    assert sorted(g.id for g in got.groups) == list(range(6))
    for group in got.groups:
        if group.id == 5:
            assert group.lookup is None
            continue
        assert group.lookup is not None and group.lookup.id == group.id
        assert group.lookup.payload == {"title": f"doc {group.id}", "pages": group.id}
        assert group.lookup.vector is None  # the name-only form brings payloads, not vectors
    got = client.query_points_groups(
        "parts",
        "doc",
        query=query,
        limit=6,
        group_size=1,
        with_lookup=models.WithLookup(
            collection="documents", with_payload=["title"], with_vectors=True
        ),
    )
    for group in (g for g in got.groups if g.id != 5):
        assert group.lookup is not None
        assert group.lookup.payload == {"title": f"doc {group.id}"}
        assert group.lookup.vector == [float(group.id), 1.0]

    with pytest.raises(UnexpectedResponse) as err:
        client.query_points_groups("parts", "doc", query=query, with_lookup="nowhere")
    assert err.value.status_code == 404 and "Collection `nowhere`" in str(err.value)


def test_grouped_queries_refuse_what_they_cannot_answer(client: QdrantClient) -> None:
    _load(client, "g", _vectors(10, 7), [{"d": i} for i in range(10)])
    query = [1.0] * DIM

    def refused(**kwargs: Any) -> str:
        with pytest.raises(UnexpectedResponse) as err:
            client.query_points_groups("g", query=query, **kwargs)
        assert err.value.status_code == 400
        return str(err.value)

    assert "group_size" in refused(group_by="d", limit=1000, group_size=1000)
    assert "group_size" in refused(group_by="d", group_size=0)
    assert "group_by" in refused(group_by="")
    assert "with_lookup" in refused(group_by="d", with_lookup="../etc")
    assert client.count("g").count == 10  # nothing changed


def test_facets_count_points_per_value(client: QdrantClient) -> None:
    rng = np.random.default_rng(8)
    colours = ["red", "green", "blue", "black"]
    payloads: list[dict[str, Any]] = []
    for i in range(500):
        tags = list(rng.choice(colours, size=int(rng.integers(0, 3))))
        payloads.append({"tags": tags, "size": int(rng.integers(0, 4)), "i": i, "ok": i % 3 == 0})
    _load(client, "items", _vectors(500, 9), payloads)

    def expected(key: str, keep: Any = None) -> list[tuple[Any, int]]:
        counts: Counter[Any] = Counter()
        for p in payloads:
            if keep is None or keep(p):
                value = p[key]
                counts.update(set(value) if isinstance(value, list) else {value})
        return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))

    got = client.facet("items", "tags")
    assert [(h.value, h.count) for h in got.hits] == expected("tags")
    got = client.facet("items", "size", limit=2, exact=True)
    assert [(h.value, h.count) for h in got.hits] == expected("size")[:2]
    big = models.Filter(must=[models.FieldCondition(key="i", range=models.Range(gte=250))])
    got = client.facet("items", "tags", facet_filter=big)
    assert [(h.value, h.count) for h in got.hits] == expected("tags", lambda p: p["i"] >= 250)
    got = client.facet("items", "ok")
    assert [(h.value, h.count) for h in got.hits] == expected("ok")
    assert client.facet("items", "missing").hits == []
    with pytest.raises(UnexpectedResponse) as err:
        client.facet("items", "tags", limit=0)
    assert err.value.status_code == 400 and "limit" in str(err.value)


def test_scroll_in_payload_order_pages_by_start_from(client: QdrantClient) -> None:
    rng = np.random.default_rng(10)
    prices = [int(p) for p in rng.integers(0, 40, size=300)]  # many ties
    payloads: list[dict[str, Any]] = [{"price": p} for p in prices]
    payloads[7] = {"price": [3, 38]}  # listed twice
    payloads[8] = {"price": "cheap"}  # not listed
    payloads[9] = {}
    _load(client, "shop", _vectors(300, 11), payloads)
    listed = sorted(
        (v, i)
        for i, p in enumerate(payloads)
        for v in set(p["price"] if isinstance(p.get("price"), list) else [p.get("price")])
        if isinstance(v, int)
    )

    got, next_offset = client.scroll("shop", limit=10, order_by="price")
    assert next_offset is None  # ordered scrolls page by start_from
    assert [(r.order_value, r.id) for r in got] == listed[:10]
    assert got[0].payload == payloads[got[0].id]
    desc = models.OrderBy(key="price", direction=models.Direction.DESC)
    got, _ = client.scroll("shop", limit=10, order_by=desc, with_payload=False)
    assert [(r.order_value, r.id) for r in got] == sorted(listed, reverse=True)[:10]
    assert got[0].payload is None

    # page through everything, as Qdrant documents: start from the last value seen and
    # leave out the ids already seen at that value
    seen: list[tuple[Any, Any]] = []
    start: float | None = None
    excluded: list[Any] = []
    for _ in range(100):
        page, _ = client.scroll(
            "shop",
            limit=25,
            order_by=models.OrderBy(key="price", start_from=start),
            scroll_filter=models.Filter(must_not=[models.HasIdCondition(has_id=excluded)]),
        )
        if not page:
            break
        seen.extend((r.order_value, r.id) for r in page)
        start = page[-1].order_value
        excluded = [i for v, i in seen if v == start]
    # point 7 is listed at 3 and at 38; paging by value meets it at both
    assert seen == listed

    with pytest.raises(UnexpectedResponse) as err:
        client.scroll("shop", order_by="price", offset=5)
    assert err.value.status_code == 400 and "start_from" in str(err.value)
    # a datetime start_from orders by the datetimes at the key: prices are numbers
    by_time, _ = client.scroll(
        "shop", order_by=models.OrderBy(key="price", start_from="2026-01-01T00:00:00Z")
    )
    assert by_time == []


# ---- the legacy routes of older clients (qdrant-client < 1.13 calls them) ---------------
# The client installed here no longer has these methods; the bodies are what the older
# clients send, and the answers are read with the installed client's models.


def _legacy(server: ServerProcess, route: str, body: dict[str, Any]) -> Any:
    status, reply = server.request("POST", f"/qdrant/collections/recs/points/{route}", body)
    assert status == 200, reply
    assert reply["status"] == "ok"
    return reply["result"]


def test_legacy_recommend_and_grouped_routes_answer_like_the_query_api(
    server: ServerProcess, client: QdrantClient
) -> None:
    n = 400
    vectors = _vectors(n, 12)
    payloads = [{"doc": i % 9, "i": i} for i in range(n)]
    _load(client, "recs", vectors, payloads)
    low = {"must": [{"key": "i", "range": {"lt": 300}}]}

    # recommend: the same hits as the universal query's recommendation
    body = {"positive": [3, vectors[10].tolist()], "negative": [7], "limit": 6, "filter": low}
    got = [models.ScoredPoint(**p) for p in _legacy(server, "recommend", body)]
    want = client.query_points(
        "recs",
        query=models.RecommendQuery(
            recommend=models.RecommendInput(positive=[3, vectors[10].tolist()], negative=[7])
        ),
        query_filter=models.Filter(must=[between_i(300)]),
        limit=6,
    ).points
    assert [(p.id, round(p.score, 5)) for p in got] == [(p.id, round(p.score, 5)) for p in want]
    assert {3, 7}.isdisjoint(p.id for p in got) and len(got) == 6
    page = _legacy(server, "recommend", {**body, "offset": 2, "limit": 4, "with_payload": True})
    assert [p["id"] for p in page] == [p.id for p in got[2:]]
    assert all(p["payload"] == payloads[p["id"]] for p in page)

    batch = _legacy(
        server,
        "recommend/batch",
        {"searches": [body, {"positive": [1], "limit": 2, "strategy": "average_vector"}]},
    )
    assert [[p["id"] for p in hits] for hits in batch][0] == [p.id for p in got]
    assert len(batch[1]) == 2 and 1 not in [p["id"] for p in batch[1]]

    # grouped: the same groups as query_points_groups
    query = vectors[20].tolist()
    legacy = models.GroupsResult(
        **_legacy(
            server,
            "search/groups",
            {"vector": query, "group_by": "doc", "group_size": 2, "limit": 4, "with_payload": True},
        )
    )
    current = client.query_points_groups("recs", "doc", query=query, group_size=2, limit=4)
    assert _got(legacy) == _got(current) and len(legacy.groups) == 4
    assert all(h.payload == payloads[h.id] for g in legacy.groups for h in g.hits)
    legacy = models.GroupsResult(
        **_legacy(
            server,
            "recommend/groups",
            {"positive": [5], "group_by": "doc", "group_size": 3, "limit": 3},
        )
    )
    current = client.query_points_groups(
        "recs",
        "doc",
        query=models.RecommendQuery(recommend=models.RecommendInput(positive=[5])),
        group_size=3,
        limit=3,
    )
    assert _got(legacy) == _got(current)
    assert 5 not in [h.id for g in legacy.groups for h in g.hits]


@pytest.mark.parametrize(
    ("route", "body", "field"),
    [
        ("recommend", {"positive": [1], "limit": 2, "strategy": "worst_score"}, "strategy"),
        ("recommend", {"positive": [], "negative": [1], "limit": 2}, "positive"),
        ("recommend", {"positive": [[1.0, 2.0]], "limit": 2}, "positive[0]"),
        ("recommend", {"positive": [1], "limit": 2, "using": "image"}, "using"),
        (
            "recommend",
            {"positive": [1], "limit": 2, "lookup_from": {"collection": 7}},
            "lookup_from",
        ),
        ("recommend", {"positive": [1]}, "limit"),
        ("recommend/batch", {"searches": [{"positive": [1], "limit": 0}]}, "limit"),
        ("search/groups", {"vector": [1.0] * DIM, "group_by": "doc", "limit": 2}, "group_size"),
        (
            "recommend/groups",
            {"positive": [1], "group_by": "", "group_size": 1, "limit": 1},
            "group_by",
        ),
    ],
)
def test_legacy_routes_refuse_bad_input_by_field(
    server: ServerProcess, client: QdrantClient, route: str, body: dict[str, Any], field: str
) -> None:
    _load(client, "recs", _vectors(5, 13), [{"doc": i} for i in range(5)])
    status, reply = server.request("POST", f"/qdrant/collections/recs/points/{route}", body)
    assert status == 400, reply
    assert field in reply["status"]["error"]
    assert client.count("recs").count == 5


def between_i(below: int) -> models.FieldCondition:
    return models.FieldCondition(key="i", range=models.Range(lt=below))


def test_queries_that_list_by_payload_order_or_at_random(client: QdrantClient) -> None:
    """``query_points`` with an ``order_by`` or a random ``sample`` query: points in the
    scroll's order (with their order values, scoring 1 as in Qdrant) or drawn at random."""
    n = 300
    prices = [int(p) for p in np.random.default_rng(14).integers(0, 50, size=n)]
    _load(client, "listed", _vectors(n, 15), [{"price": p, "i": i} for i, p in enumerate(prices)])
    by_price = sorted((p, i) for i, p in enumerate(prices))

    got = client.query_points("listed", query=models.OrderByQuery(order_by="price"), limit=12)
    assert [(p.order_value, p.id) for p in got.points] == by_price[:12]
    assert all(p.score == 1 and p.payload == {"price": prices[p.id], "i": p.id} for p in got.points)
    desc = models.OrderBy(key="price", direction=models.Direction.DESC, start_from=30)
    got = client.query_points(
        "listed", query=models.OrderByQuery(order_by=desc), limit=5, offset=3, with_payload=False
    )
    below = sorted(((p, i) for p, i in by_price if p <= 30), reverse=True)
    assert [(p.order_value, p.id) for p in got.points] == below[3:8]
    assert all(p.payload is None for p in got.points)
    # grouped by price, listed in the order of i: the groups of the first points met
    grouped = client.query_points_groups(
        "listed", "price", query=models.OrderByQuery(order_by="i"), limit=3, group_size=2
    )
    first: dict[int, list[int]] = {}
    for i, price in enumerate(prices):
        if (price in first or len(first) < 3) and len(first.setdefault(price, [])) < 2:
            first[price].append(i)
    assert _got(grouped) == list(first.items())

    sample = models.SampleQuery(sample=models.Sample.RANDOM)
    cheap = models.Filter(must=[models.FieldCondition(key="price", range=models.Range(lt=10))])
    draws = [
        client.query_points("listed", query=sample, query_filter=cheap, limit=8).points
        for _ in range(2)
    ]
    for points in draws:
        ids = [p.id for p in points]
        assert len(ids) == len(set(ids)) == 8
        assert all(prices[i] < 10 for i in ids)
    assert [p.id for p in draws[0]] != [p.id for p in draws[1]]  # C(~60, 8): never equal
    everything = client.query_points("listed", query=sample, limit=1000).points
    assert sorted(p.id for p in everything) == list(range(n))

    # (as Qdrant, which refuses a threshold only with order_by or no query, and local
    # mode: a sample takes one and is drawn as without it)
    assert len(client.query_points("listed", query=sample, score_threshold=0.5).points) == 10
    with pytest.raises(UnexpectedResponse) as err:
        client.query_points(
            "listed", query=models.OrderByQuery(order_by="price"), score_threshold=0.5
        )
    assert err.value.status_code == 400 and "score_threshold" in str(err.value)


def test_scroll_in_datetime_order_reports_microseconds(client: QdrantClient) -> None:
    """Ordered by a key with a datetime index (or from a datetime start_from), points go
    by their RFC 3339 times, reported as microseconds since the epoch, as in Qdrant."""
    stamps = [
        "2024-05-01T12:00:00Z",
        "2024-05-01T14:00:00+02:00",  # the same instant
        "2024-05-02",
        "2024-04-30T23:59:59.5",
        "not a date",
        17,
    ]
    _load(client, "t", _vectors(len(stamps), 1), [{"at": s} for s in stamps])
    client.create_payload_index("t", "at", models.PayloadSchemaType.DATETIME)
    page, _ = client.scroll("t", limit=10, order_by="at")
    noon = 1714564800 * 10**6
    assert [(int(p.id), p.order_value) for p in page] == [
        (3, noon - 12 * 3600 * 10**6 - 500_000),
        (0, noon),
        (1, noon),
        (2, noon + 12 * 3600 * 10**6),
    ]
    assert all(isinstance(p.order_value, int) for p in page)
    later, _ = client.scroll(
        "t",
        limit=10,
        order_by=models.OrderBy(
            key="at", direction=models.Direction.DESC, start_from="2024-05-01T12:00:00Z"
        ),
    )
    assert [int(p.id) for p in later] == [1, 0, 3]  # inclusive; ties by id, descending
    client.delete_payload_index("t", "at")  # without the index: by a datetime start_from
    assert [
        int(p.id)
        for p in client.scroll(
            "t", limit=2, order_by=models.OrderBy(key="at", start_from="2024-05-01")
        )[0]
    ] == [0, 1]
    listed = client.query_points(
        "t",
        query=models.OrderByQuery(
            order_by=models.OrderBy(key="at", start_from="2024-05-01T13:00:00Z")
        ),
    ).points
    assert [int(p.id) for p in listed] == [2]
    # Neither index nor start_from: the key holds a number (17), listed by numbers.
    assert [int(p.id) for p in client.scroll("t", limit=10, order_by="at")[0]] == [5]
    client.delete("t", [5])  # no number left there, datetime strings: listed by those
    page, _ = client.scroll("t", limit=10, order_by="at")
    assert [(int(p.id), p.order_value) for p in page][:2] == [
        (3, noon - 12 * 3600 * 10**6 - 500_000),
        (0, noon),
    ]
