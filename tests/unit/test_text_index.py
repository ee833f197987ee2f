"""Text payload indexes: Qdrant's tokenizers and their options, full-text matches read
through a key's index (and answered by it exactly), and the parameters kept through the
log, snapshots and restarts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vectorizer.engine import field_index
from vectorizer.engine.collection import Collection
from vectorizer.engine.config import CollectionConfig, HnswParams, IndexKind
from vectorizer.engine.filters import bind, compile_filter, lookup_of, values_at
from vectorizer.engine.store import Store, StoreOptions
from vectorizer.engine.text import TextParams, parse_text_params
from vectorizer.engine.wal import FsyncPolicy
from vectorizer.errors import ValidationError


def test_tokenizers_make_qdrants_tokens() -> None:
    text = "Hello, World! x_y Привет мир"
    assert TextParams().doc_tokens(text) == ["hello", "world", "x", "y", "привет", "мир"]
    assert TextParams(lowercase=False).doc_tokens(text)[:2] == ["Hello", "World"]
    assert TextParams(tokenizer="whitespace").doc_tokens(text) == [
        "hello,",
        "world!",
        "x_y",
        "привет",
        "мир",
    ]
    # lengths count characters, after lowercasing and stopwords
    sized = TextParams(min_token_len=2, max_token_len=5, stopwords=frozenset({"world"}))
    assert sized.doc_tokens(text) == ["hello", "мир"]
    # prefix: each word and its prefixes from min_token_len to max_token_len characters
    prefix = TextParams(tokenizer="prefix", min_token_len=2, max_token_len=4)
    assert prefix.doc_tokens("Hello ab a") == ["he", "hel", "hell", "ab"]
    assert TextParams(tokenizer="prefix").doc_tokens("abc") == ["a", "ab", "abc"]
    # a query word is the longest prefix indexed; shorter than any: none
    assert prefix.query_tokens("HELLO a hel") == ["hell", "hel"]
    # stopwords are not dropped from a prefix query (a word being typed)
    assert TextParams(tokenizer="prefix", stopwords=frozenset({"the"})).query_tokens("the") == [
        "the"
    ]


def test_text_index_parameters_are_parsed_and_kept() -> None:
    parse = field_index.parse_schema
    assert parse("text") == "text"
    assert parse({"type": "text"}) == {"type": "text", "tokenizer": "word"}
    given_params = {
        "type": "text",
        "tokenizer": "prefix",
        "min_token_len": 2,
        "max_token_len": 10,
        "lowercase": False,
        "phrase_matching": True,
        "stopwords": {"custom": ["The", "a"]},
        "on_disk": True,
        "stemmer": {"type": "none"},
        "ascii_folding": False,
    }
    schema = parse(given_params)
    assert schema == {
        "type": "text",
        "tokenizer": "prefix",
        "lowercase": False,
        "min_token_len": 2,
        "max_token_len": 10,
        "phrase_matching": True,
        "stopwords": {"custom": ["The", "a"]},
    }
    assert field_index.schema_parts(schema) == (
        "text",
        TextParams("prefix", False, 2, 10, True, frozenset({"The", "a"})),
    )
    # custom stopwords are lowercased when tokens are
    assert parse_text_params({"stopwords": {"custom": ["The"]}}, "f").stopwords == {"the"}
    assert field_index.schema_parts("text") == ("text", TextParams())
    assert field_index.schema_parts("keyword") == ("keyword", None)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"tokenizer": "multilingual"}, "field_schema.tokenizer"),
        ({"tokenizer": "code"}, "field_schema.tokenizer"),
        ({"tokenizer": "ngram"}, "field_schema.tokenizer"),
        ({"stemmer": {"type": "snowball", "language": "english"}}, "field_schema.stemmer"),
        ({"stopwords": "english"}, "field_schema.stopwords"),
        ({"stopwords": {"languages": ["english"]}}, "field_schema.stopwords"),
        ({"stopwords": {"custom": [1]}}, "field_schema.stopwords.custom"),
        ({"ascii_folding": True}, "field_schema.ascii_folding"),
        ({"scoring": True}, "field_schema.scoring"),
        ({"nested": "offers"}, "field_schema.nested"),
        ({"min_token_len": -1}, "field_schema.min_token_len"),
        ({"max_token_len": "5"}, "field_schema.max_token_len"),
        ({"lowercase": "yes"}, "field_schema.lowercase"),
        ({"typo": 1}, "field_schema"),
        # a tokenizer that is not a name is no default, whatever its truth value
        *(({"tokenizer": v}, "field_schema.tokenizer") for v in ([], {}, 0, "", False)),
        ({"on_disk": []}, "field_schema.on_disk"),
        ({"enable_hnsw": "no"}, "field_schema.enable_hnsw"),
    ],
)
def test_what_cannot_be_reproduced_is_refused(raw: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        field_index.parse_schema({"type": "text", **raw})
    assert err.value.field == field


def _coll(payloads: list[Any]) -> Collection:
    coll = Collection("c", CollectionConfig(4, index=IndexKind.EXACT), capacity=8)
    vectors = np.ones((len(payloads), 4), dtype=np.float32)
    coll.upsert(list(range(len(payloads))), vectors, payloads)
    return coll


def _ids(coll: Collection, match: dict[str, Any], key: str = "t") -> list[int]:
    pred = compile_filter({"must": [{"key": key, "match": match}]})
    assert pred is not None
    return sorted(int(p) for p in coll.ids_matching(pred))


def test_matches_on_an_indexed_key_use_its_tokenizer() -> None:
    coll = _coll(
        [
            {"t": "Hello, world"},
            {"t": "hello world"},
            {"t": ["hello", "big world"]},  # a point's texts are one document
            {"t": "worldly hello"},
            {"t": 3},
            None,
        ]
    )
    # no index: the default word tokenizer, per value
    assert _ids(coll, {"text": "hello world"}) == [0, 1]
    coll.create_field_index("t", {"type": "text", "tokenizer": "whitespace"})
    assert _ids(coll, {"text": "hello world"}) == [1, 2]  # "hello," is not "hello"
    assert _ids(coll, {"text": "HELLO,"}) == [0]
    assert _ids(coll, {"text_any": "world big"}) == [0, 1, 2]
    assert _ids(coll, {"text": "nothing"}) == []
    # the index answers them exactly: only the points it names are counted
    pred = bind(
        compile_filter({"must": [{"key": "t", "match": {"text": "hello world"}}]}),  # type: ignore[arg-type]
        coll._fields.texts,
    )
    assert coll._narrowed(pred) == ({1, 2}, True)
    assert coll.count(pred) == 2
    # a phrase needs phrase_matching on the index, as in Qdrant
    assert _ids(coll, {"phrase": "hello world"}) == []
    coll.create_field_index("t", {"type": "text", "phrase_matching": True})
    assert _ids(coll, {"phrase": "hello world"}) == [0, 1]
    assert _ids(coll, {"phrase": "world hello"}) == []
    phrase = bind(
        compile_filter({"must": [{"key": "t", "match": {"phrase": "world hello"}}]}),  # type: ignore[arg-type]
        coll._fields.texts,
    )
    assert coll._narrowed(phrase) == ({0, 1, 2}, False)  # the tokens; their order is read
    # other options
    coll.create_field_index("t", {"type": "text", "lowercase": False})
    assert _ids(coll, {"text": "Hello"}) == [0]
    coll.create_field_index("t", {"type": "text", "tokenizer": "prefix", "min_token_len": 3})
    assert _ids(coll, {"text": "worl hel"}) == [0, 1, 2, 3]
    assert _ids(coll, {"text": "wo"}) == []  # shorter than any prefix indexed
    coll.create_field_index("t", {"type": "text", "stopwords": {"custom": ["hello"]}})
    assert _ids(coll, {"text": "hello world"}) == [0, 1, 2]  # "hello" is no token
    assert _ids(coll, {"text": "hello"}) == []  # a query of stopwords has no tokens
    # dropped: back to the default tokenizer
    coll.drop_field_index("t")
    assert _ids(coll, {"text": "hello world"}) == [0, 1]
    assert coll.payload_schema() == {}


def test_binding_keeps_what_needs_no_index() -> None:
    coll = _coll([{"t": "a b"}])
    plain = compile_filter({"must": [{"key": "t", "match": {"value": "a b"}}]})
    text = compile_filter({"must": [{"key": "t", "match": {"text": "a"}}]})
    assert plain is not None and text is not None
    assert bind(plain, coll._fields.texts) is plain
    assert bind(text, coll._fields.texts) is text  # (no text index yet)
    coll.create_field_index("u", "text")
    assert bind(text, coll._fields.texts) is text  # (not on its key)
    coll.create_field_index("t", "text")
    bound = bind(text, coll._fields.texts)
    assert bound is not text and bind(text, coll._fields.texts) is bound  # once
    assert lookup_of(text) is None and lookup_of(bound) is not None
    coll.drop_field_index("u")  # the indexes changed: bound anew
    assert bind(text, coll._fields.texts) is not bound
    # inside nested, an element's key reads the index on the array's elements
    coll = _coll([{"items": [{"t": "Hello, there"}]}])
    nested = {
        "nested": {"key": "items", "filter": {"must": [{"key": "t", "match": {"text": "hello,"}}]}}
    }
    pred = compile_filter({"must": [nested]})
    assert pred is not None and coll.count(pred) == 1
    coll.create_field_index("items[].t", {"type": "text", "tokenizer": "whitespace"})
    assert coll.count(pred) == 1
    nested["nested"]["filter"]["must"][0]["match"]["text"] = "hello"  # type: ignore[index]
    pred = compile_filter({"must": [nested]})
    assert pred is not None and coll.count(pred) == 0


WORDS = ["Red", "red,", "green", "blue-ish", "the", "Über", "redder"]
_text = st.lists(st.sampled_from(WORDS), max_size=4).map(" ".join)
_value = _text | st.lists(_text, max_size=2) | st.integers(0, 2) | st.none()
_payload = st.none() | st.fixed_dictionaries({}, optional={"t": _value, "u": _value})
_ops = st.lists(
    st.one_of(
        st.tuples(st.just("upsert"), st.integers(0, 9), _payload),
        st.tuples(st.just("set"), st.integers(0, 9), _payload),
        st.tuples(st.just("delete"), st.integers(0, 9), st.none()),
    ),
    max_size=20,
)
_queries = st.builds(
    lambda kind, words: {kind: " ".join(words)},
    st.sampled_from(["text", "text_any", "phrase"]),
    st.lists(st.sampled_from([*WORDS, "RED", "gr", "ish"]), max_size=3),
)
_params = st.fixed_dictionaries(
    {"type": st.just("text")},
    optional={
        "tokenizer": st.sampled_from(["word", "whitespace", "prefix"]),
        "lowercase": st.booleans(),
        "min_token_len": st.integers(0, 4),
        "max_token_len": st.integers(1, 6),
        "phrase_matching": st.booleans(),
        "stopwords": st.just({"custom": ["the", "RED"]}),
    },
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=_ops, params=_params, queries=st.lists(_queries, min_size=1, max_size=4))
def test_text_indexes_answer_as_their_tokenizer_reads(
    ops: list[tuple[Any, ...]], params: dict[str, Any], queries: list[dict[str, Any]]
) -> None:
    """Through any writes, a text index names exactly the points (or, for a phrase, at
    least them) that its tokenizer's predicate accepts when read point by point."""
    coll = Collection("c", CollectionConfig(4, index=IndexKind.EXACT), capacity=4)
    coll.create_field_index("t", params)
    schema = field_index.parse_schema(params)
    texts = {"t": field_index.schema_parts(schema)[1]}
    payloads: dict[int, Any] = {}
    for kind, pid, payload in ops:
        if kind == "upsert":
            coll.upsert([pid], np.ones((1, 4), dtype=np.float32), [payload])
            payloads[pid] = payload
        elif kind == "set" and pid in payloads:
            coll.set_payload([pid], payload or {}, True)
            payloads[pid] = payload or {}
        elif kind == "delete":
            coll.delete([pid])
            payloads.pop(pid, None)
    # what memory estimates count: each point's distinct tokens, kept through the writes
    tokenizer = texts["t"]
    assert tokenizer is not None
    held = sum(
        len({t for v in values_at(p, "t") if isinstance(v, str) for t in tokenizer.doc_tokens(v)})
        for p in payloads.values()
    )
    assert coll._fields.fields["t"].token_entries == held
    for match in queries:
        for spec in (
            {"must": [{"key": "t", "match": match}]},
            {"should": [{"key": "t", "match": match}, {"key": "u", "match": match}]},
            {"must_not": [{"key": "t", "match": match}]},
        ):
            reference = compile_filter(spec, text=texts)  # (TextParams from the schema)
            assert reference is not None
            want = {pid for pid, p in payloads.items() if reference(pid, p)}
            pred = compile_filter(spec)
            assert pred is not None
            assert set(coll.ids_matching(pred)) == want, (spec, params)
            assert coll.count(pred) == len(want)
            narrowed = coll._narrowed(bind(pred, coll._fields.texts))
            named = None if narrowed is None else {coll._ids[s] for s in narrowed[0]}
            if "must" in spec and "phrase" not in match:
                assert narrowed is not None and narrowed[1], (spec, params)
                assert named == want, (spec, params)
            elif named is not None:
                assert want <= named


async def test_parameters_survive_the_log_snapshots_and_restarts(tmp_path: Path) -> None:
    options = StoreOptions(fsync=FsyncPolicy("never"), snapshot_interval_s=0)
    params = {"type": "text", "tokenizer": "whitespace", "phrase_matching": True}
    s = Store(tmp_path, options)
    await s.open()
    await s.create_collection("a", {"dimension": 2})
    await s.upsert("a", [1, 2], np.eye(2, dtype=np.float32), [{"t": "Hi, you"}, {"t": "hi you"}])
    await s.create_field_index("a", "t", params)
    pred = compile_filter({"must": [{"key": "t", "match": {"phrase": "hi you"}}]})
    assert pred is not None
    want = s.collection("a").ids_matching(pred)
    assert want == [2]  # (the default tokenizer takes both)
    schema = {"data_type": "text", "params": {**params, "tokenizer": "whitespace"}, "points": 2}
    assert s.collection("a").payload_schema() == {"t": schema}
    await s.close(take_snapshot=False)
    for _ in ("replayed from the log", "loaded from the snapshot taken on closing"):
        r = Store(tmp_path, options)
        await r.open()
        assert r.collection("a").ids_matching(pred) == want
        assert r.collection("a").payload_schema() == {"t": schema}
        await r.close(take_snapshot=True)
    assert len(list((tmp_path / "snapshots").iterdir())) == 1  # (the second had nothing new)
    # an index recorded by an older version (a name) reads as before
    config = CollectionConfig.parse(
        {"dimension": 2, "payload_indexes": {"t": "text"}}, HnswParams()
    )
    assert config.payload_indexes == {"t": "text"}
