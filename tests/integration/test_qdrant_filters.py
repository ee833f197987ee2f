"""Qdrant's geo, values_count, nested, has_vector and full-text conditions, and text
payload indexes, through the official qdrant-client on a real ``vectorizer serve``: its
answers held to qdrant-client's local mode over generated data, with and without payload
indexes; text index parameters reported, applied, and kept through kill -9, a snapshot
and a replica."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

from tests.servers import ServerProcess
from tests.unit.test_filters_local_mode import N, _filters, _point

DIM = 4


def _load(client: QdrantClient, payloads: dict[int, dict[str, Any]]) -> None:
    client.create_collection(
        "c", vectors_config=models.VectorParams(size=DIM, distance=models.Distance.DOT)
    )
    rng = random.Random(3)
    client.upsert(
        "c",
        points=[
            models.PointStruct(id=i, vector=[rng.random() for _ in range(DIM)], payload=p)
            for i, p in payloads.items()
        ],
    )


def _ids(client: QdrantClient, flt: models.Filter) -> list[int]:
    page, _ = client.scroll("c", scroll_filter=flt, limit=N + 1, with_payload=False)
    return sorted(int(p.id) for p in page)


def test_answers_as_local_mode(client: QdrantClient) -> None:
    payloads = {i: _point(random.Random(i)) for i in range(N)}
    local = QdrantClient(":memory:")
    for c in (client, local):
        _load(c, payloads)
    filters = list(_filters())
    for indexed in (False, True):
        if indexed:  # indexes on the keys change nothing
            client.create_payload_index("c", "loc", models.PayloadSchemaType.GEO)
            client.create_payload_index("c", "tags", models.PayloadSchemaType.INTEGER)
            client.create_payload_index("c", "items[].k", models.PayloadSchemaType.INTEGER)
            client.create_payload_index("c", "o[].e", models.PayloadSchemaType.INTEGER)
            client.create_payload_index("c", "e", models.PayloadSchemaType.INTEGER)
            client.create_payload_index("c", "m", models.PayloadSchemaType.INTEGER)
        for flt in filters:
            want = _ids(local, flt)
            assert _ids(client, flt) == want, flt
            assert client.count("c", count_filter=flt).count == len(want), flt
            hits = client.query_points("c", query=[1.0] * DIM, query_filter=flt, limit=N).points
            assert sorted(int(h.id) for h in hits) == want, flt
    # and a delete by one of them
    flt = filters[6]
    for c in (client, local):
        c.delete("c", points_selector=models.FilterSelector(filter=flt))
    assert _ids(client, models.Filter()) == _ids(local, models.Filter())
    local.close()


def test_quoted_keys_name_the_key_inside_the_quotes(client: QdrantClient) -> None:
    """``'"user name"'`` is the key ``user name`` (quotes name a key holding spaces,
    dots or brackets) for filters, facets, ordered listings and groups, as in Qdrant:
    without a dot or bracket, the quotes were read as part of the name (nothing
    matched)."""
    payloads = {1: {"user name": "bob", "n": 3, "a.b": 7}, 2: {"user name": "amy", "n": 4}}
    local = QdrantClient(":memory:")
    for c in (client, local):
        _load(c, payloads)
    field = models.FieldCondition
    for c in (client, local):
        for flt, want in [
            (field(key='"user name"', match=models.MatchValue(value="bob")), [1]),
            (field(key='"n"', match=models.MatchAny(any=[3, 4])), [1, 2]),
            (field(key='"n"', range=models.Range(gte=4)), [2]),
            (field(key='"a.b"', match=models.MatchValue(value=7)), [1]),
        ]:
            assert _ids(c, models.Filter(must=[flt])) == want, (c, flt)
        facet = c.facet("c", '"user name"').hits
        assert sorted((h.value, h.count) for h in facet) == [("amy", 1), ("bob", 1)]
        assert [p.id for p in c.scroll("c", order_by='"n"')[0]] == [1, 2]
        groups = c.query_points_groups("c", query=[1.0] * DIM, group_by='"user name"').groups
        assert sorted(g.id for g in groups) == ["amy", "bob"]
    local.close()


@pytest.mark.parametrize(
    ("condition", "says"),
    [
        ({"has_vector": "a/b"}, b"filter.must[0].has_vector: a vector's name"),
        (
            {"nested": {"key": "items", "filter": {"must": [{"has_id": [1]}]}}},
            b"filter.must[0].nested.filter.must[0].has_id",
        ),
        (
            {
                "key": "loc",
                "geo_polygon": {
                    "exterior": {
                        "points": [
                            {"lon": 0, "lat": 0},
                            {"lon": 1, "lat": 0},
                            {"lon": 1, "lat": 1},
                            {"lon": 0, "lat": 1},
                        ]
                    }
                },
            },
            b"filter.must[0].geo_polygon.exterior.points",
        ),
        (
            {"key": "loc", "geo_radius": {"center": {"lon": 0, "lat": 91}, "radius": 1}},
            b"filter.must[0].geo_radius.center.lat",
        ),
        ({"key": "tags", "values_count": {"gt": -1}}, b"filter.must[0].values_count.gt"),
        # Qdrant's match takes no floats, and lists of strings or of integers only
        ({"key": "tags", "match": {"value": 1.0}}, b"filter.must[0].match.value"),
        ({"key": "tags", "match": {"any": [1, "a"]}}, b"filter.must[0].match.any"),
    ],
)
def test_bad_conditions_are_a_400_naming_the_field(
    server: ServerProcess, client: QdrantClient, condition: dict[str, Any], says: bytes
) -> None:
    _load(client, {1: {"items": [{"k": 1}]}})
    with pytest.raises(UnexpectedResponse) as err:
        client.http.points_api.count_points(
            "c", count_request=models.CountRequest.model_construct(filter={"must": [condition]})
        )
    assert err.value.status_code == 400 and says in err.value.content, err.value.content


TEXTS = {
    1: "Hello, world",
    2: "hello world",
    3: "the world says hello",
    4: ["hello", "big world"],
    5: "Worldly HELLO",
}


def _text_ids(client: QdrantClient, **match: str) -> list[int]:
    kind, query = next(iter(match.items()))
    condition = {
        "text": models.MatchText(text=query),
        "text_any": models.MatchTextAny(text_any=query),
        "phrase": models.MatchPhrase(phrase=query),
    }[kind]
    return _ids(client, models.Filter(must=[models.FieldCondition(key="t", match=condition)]))


def _text_answers(client: QdrantClient) -> list[list[int]]:
    return [
        _text_ids(client, text="hello world"),
        _text_ids(client, text="hello,"),
        _text_ids(client, text_any="big says"),
        _text_ids(client, phrase="hello world"),
    ]


def test_text_indexes_tokenize_as_created_and_keep_it(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    primary = server_factory(data_dir=tmp_path / "p").start()
    client = QdrantClient(url=primary.url, prefix="qdrant", timeout=60, check_compatibility=False)
    _load(client, {i: {"t": t} for i, t in TEXTS.items()})
    # no index: Qdrant's default word tokenizer, each value on its own
    assert _text_answers(client) == [[1, 2, 3], [1, 2, 3, 4, 5], [3, 4], [1, 2]]
    params = models.TextIndexParams(
        type=models.TextIndexType.TEXT,
        tokenizer=models.TokenizerType.WHITESPACE,
        min_token_len=2,
        phrase_matching=True,
        stopwords=models.StopwordsSet(custom=["The"]),
    )
    client.create_payload_index("c", "t", field_schema=params)
    info = client.get_collection("c").payload_schema["t"]
    assert info.data_type == models.PayloadSchemaType.TEXT and info.points == len(TEXTS)
    assert info.params == models.TextIndexParams(
        type=models.TextIndexType.TEXT,
        tokenizer=models.TokenizerType.WHITESPACE,
        min_token_len=2,
        phrase_matching=True,
        stopwords=models.StopwordsSet(custom=["the"]),
    )
    # "Hello," is a token of its own; a point's texts are one document
    indexed = [[2, 3, 4], [1], [3, 4], [2]]
    assert _text_answers(client) == indexed
    with pytest.raises(UnexpectedResponse) as err:
        client.create_payload_index(
            "c",
            "u",
            field_schema=models.TextIndexParams(
                type=models.TextIndexType.TEXT, tokenizer=models.TokenizerType.MULTILINGUAL
            ),
        )
    assert err.value.status_code == 400 and b"field_schema.tokenizer" in err.value.content

    replica = server_factory(
        data_dir=tmp_path / "r", args=["--role", "replica", "--primary-url", primary.url]
    ).start()
    for _ in ("replayed from the log", "loaded from a snapshot"):
        primary.kill()
        primary.start()
        assert client.get_collection("c").payload_schema["t"] == info
        assert _text_answers(client) == indexed
        assert primary.request("POST", "/collections/c/snapshot")[0] == 201
    deadline = time.monotonic() + 30
    while (
        replica.request("GET", "/replication/status")[1]["sequence"]
        < primary.request("GET", "/replication/status")[1]["sequence"]
    ):
        assert time.monotonic() < deadline, "the replica never caught up"
        time.sleep(0.1)
    on_replica = QdrantClient(
        url=replica.url, prefix="qdrant", timeout=60, check_compatibility=False
    )
    assert on_replica.get_collection("c").payload_schema["t"] == info
    assert _text_answers(on_replica) == indexed
    client.delete_payload_index("c", "t")
    assert _text_answers(client) == [[1, 2, 3], [1, 2, 3, 4, 5], [3, 4], [1, 2]]
    on_replica.close()
    client.close()
