"""Full-text matching within bounds: a ``prefix`` text index holds each word in memory
linear in its length (every prefix of a long word took memory quadratic in it) while
matching as Qdrant does, and a ``phrase`` is found in time linear in the text and the
phrase (it was compared at every position of the text)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vectorizer.engine import field_index
from vectorizer.engine.collection import Collection
from vectorizer.engine.config import CollectionConfig, IndexKind
from vectorizer.engine.filters import bind, compile_filter, values_at
from vectorizer.engine.text import PREFIX_CAP, TextParams, has_phrase

_WORD = re.compile(r"[^\W_]+")


def _qdrant_prefixes(params: TextParams, text: str) -> set[str]:
    """Every token Qdrant's prefix tokenizer indexes for ``text``: each prefix of each
    word from min_token_len characters up to max_token_len (all of them without one)."""
    out: set[str] = set()
    low = 1 if params.min_token_len is None else params.min_token_len
    for word in _WORD.findall(text):
        word = word.lower() if params.lowercase else word
        if word in params.stopwords or len(word) < low:
            continue
        if params.max_token_len is not None:
            word = word[: params.max_token_len]
        out.update(word[:n] for n in range(low, len(word) + 1))
    return out


def _qdrant_query(params: TextParams, text: str) -> list[str]:
    """A prefix query's tokens as Qdrant makes them: each word cut at max_token_len."""
    out = []
    for word in _WORD.findall(text):
        word = word.lower() if params.lowercase else word
        if params.min_token_len is not None and len(word) < params.min_token_len:
            continue
        out.append(word if params.max_token_len is None else word[: params.max_token_len])
    return out


def _accepts(params: TextParams, payload: Any, kind: str, query: str) -> bool:
    """Whether Qdrant's prefix index matches ``payload`` (its texts are one document)."""
    held: set[str] = set()
    for v in values_at(payload, "t"):
        if isinstance(v, str):
            held |= _qdrant_prefixes(params, v)
    wanted = _qdrant_query(params, query)
    if not wanted:
        return False
    if kind == "text_any":
        return any(w in held for w in wanted)
    return all(w in held for w in wanted)


def _collection(params: dict[str, Any], payloads: list[Any]) -> Collection:
    coll = Collection("c", CollectionConfig(4, index=IndexKind.EXACT), capacity=8)
    coll.create_field_index("t", params)
    coll.upsert(list(range(len(payloads))), np.ones((len(payloads), 4), dtype=np.float32), payloads)
    return coll


def _ids(coll: Collection, spec: dict[str, Any]) -> set[int]:
    pred = compile_filter(spec)
    assert pred is not None
    return {int(p) for p in coll.ids_matching(pred)}


def _index_size(coll: Collection) -> tuple[int, int]:
    """The text index's distinct tokens and their characters."""
    tokens = coll._fields.fields["t"]._by_token
    return len(tokens), sum(len(t) for t in tokens)


# --- a long word costs index memory linear in its length --------------------------


def test_a_long_word_has_a_bounded_number_of_prefix_tokens() -> None:
    word = "x" * 5000
    for params in (
        TextParams(tokenizer="prefix"),
        TextParams(tokenizer="prefix", min_token_len=3),
        TextParams(tokenizer="prefix", max_token_len=4000),
    ):
        tokens = params.doc_tokens(word)
        # at most PREFIX_CAP prefixes of their own, and one token for the rest
        assert len(tokens) <= PREFIX_CAP + 1
        assert sum(map(len, tokens)) <= len(word) + PREFIX_CAP * PREFIX_CAP
    # a min_token_len past the cap: the prefix of that length, and the rest in one
    tokens = TextParams(tokenizer="prefix", min_token_len=100).doc_tokens(word)
    assert [len(t) for t in tokens] == [100, 5000]
    # short words are tokenized as before: every prefix
    assert TextParams(tokenizer="prefix").doc_tokens("Abc x") == ["a", "ab", "abc", "x"]
    cap = "y" * PREFIX_CAP
    assert TextParams(tokenizer="prefix").doc_tokens(cap) == [
        cap[:n] for n in range(1, PREFIX_CAP + 1)
    ]


def test_a_prefix_index_holds_long_words_in_linear_memory() -> None:
    """What the fuzzing hunt sent: four words of thousands of characters in one upsert
    (every prefix indexed: about 4 * L * L / 2 characters, 50 MB here)."""
    length = 5000
    words = [chr(ord("a") + i) * length for i in range(4)]
    coll = _collection({"type": "text", "tokenizer": "prefix"}, [{"t": w} for w in words])
    tokens, chars = _index_size(coll)
    assert tokens <= 4 * (PREFIX_CAP + 1)
    assert chars <= 4 * (length + PREFIX_CAP * PREFIX_CAP)
    assert coll._fields.fields["t"].token_entries == tokens
    # growing a word by a factor of 10 grows its index by about as much, not 100
    coll.upsert([9], np.ones((1, 4), dtype=np.float32), [{"t": "q" * 10 * length}])
    assert _index_size(coll)[1] - chars <= 10 * length + PREFIX_CAP * PREFIX_CAP


def test_query_words_past_the_cap_match_as_prefixes() -> None:
    stem = "k" * (PREFIX_CAP + 40)
    texts = [stem + "alpha", stem + "beta", stem[:-1], "short words " + stem.upper()]
    coll = _collection({"type": "text", "tokenizer": "prefix"}, [{"t": t} for t in texts])

    def text(query: str, kind: str = "text") -> set[int]:
        return _ids(coll, {"must": [{"key": "t", "match": {kind: query}}]})

    assert text(stem) == {0, 1, 3}  # a word of its own ([2] is one shorter)
    assert text(stem[:-1]) == {0, 1, 2, 3}
    assert text(stem + "a") == text(stem + "alpha") == {0}
    assert text(stem + "alphas") == set()  # longer than the word
    assert text(stem + "b") == {1}
    assert text(stem + "c") == set()  # shares every prefix held on its own, no more
    assert text("k" * PREFIX_CAP) == {0, 1, 2, 3}  # at the cap
    assert text("k" * (PREFIX_CAP + 1)) == {0, 1, 2, 3}  # just past it
    assert text("K" * (PREFIX_CAP - 1)) == {0, 1, 2, 3}
    assert text(f"short {stem}a") == set() and text(f"short {stem}") == {3}
    assert text(f"sh {stem}alpha", "text_any") == {0, 3}
    assert text(f"zz {stem}c", "text_any") == set()
    assert _ids(coll, {"must_not": [{"key": "t", "match": {"text": stem + "b"}}]}) == {0, 2, 3}
    # with another condition the index names candidates the predicate reads
    both = {"must": [{"key": "t", "match": {"text": stem + "al"}}, {"has_id": [0, 1, 3]}]}
    assert _ids(coll, both) == {0}
    # a long query word is looked up under its capped prefix: a superset, read after
    pred = bind(
        compile_filter({"must": [{"key": "t", "match": {"text": stem + "a"}}]}), coll._fields.texts
    )  # type: ignore[arg-type]
    assert coll._narrowed(pred) == ({0, 1, 2, 3}, False)
    assert coll.count(pred) == 1
    short = bind(
        compile_filter({"must": [{"key": "t", "match": {"text": "sho"}}]}), coll._fields.texts
    )  # type: ignore[arg-type]
    assert coll._narrowed(short) == ({3}, True)  # answered exactly, as before


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"min_token_len": 2},
        {"min_token_len": PREFIX_CAP + 5},
        {"max_token_len": PREFIX_CAP},
        {"max_token_len": PREFIX_CAP + 10},
        {"max_token_len": 5, "min_token_len": 2},
        {"lowercase": False},
    ],
)
def test_min_and_max_token_len_bound_prefixes_past_the_cap(options: dict[str, Any]) -> None:
    params = {"type": "text", "tokenizer": "prefix", **options}
    tokenizer = field_index.schema_parts(field_index.parse_schema(params))[1]
    assert tokenizer is not None
    stem = "m" * (PREFIX_CAP + 4)
    texts = [stem + "xyz" * 5, stem + "W" * 20, stem, "m" * (PREFIX_CAP + 30), "M mm"]
    payloads = [{"t": t} for t in texts]
    coll = _collection(params, payloads)
    queries = [
        stem[: PREFIX_CAP + n] + tail
        for n in (-1, 0, 1, 4)
        for tail in ("", "x", "xyzxyz", "w", "W", "q", "m" * 30)
    ] + ["m", "mm", "M"]
    for query in queries:
        for kind in ("text", "text_any"):
            spec = {"must": [{"key": "t", "match": {kind: query}}]}
            want = {i for i, p in enumerate(payloads) if _accepts(tokenizer, p, kind, query)}
            assert _ids(coll, spec) == want, (options, kind, query)


_stems = st.sampled_from(["", "a" * 30, "a" * (PREFIX_CAP - 1), "a" * PREFIX_CAP, "a" * 40])
_long_words = st.builds(lambda s, tail: s + tail, _stems, st.text("abAB", max_size=12))
_texts = st.lists(_long_words, max_size=3).map(" ".join)
_payloads = st.fixed_dictionaries({}, optional={"t": _texts | st.lists(_texts, max_size=2)})
_params = st.fixed_dictionaries(
    {"type": st.just("text"), "tokenizer": st.just("prefix")},
    optional={
        "lowercase": st.booleans(),
        "min_token_len": st.sampled_from([0, 1, 3, PREFIX_CAP + 2]),
        "max_token_len": st.sampled_from([2, PREFIX_CAP, PREFIX_CAP + 3, 50]),
        "stopwords": st.just({"custom": ["a" * 40]}),
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    params=_params,
    payloads=st.lists(_payloads, min_size=1, max_size=6),
    queries=st.lists(st.tuples(st.sampled_from(["text", "text_any"]), _texts), max_size=4),
)
def test_prefix_matches_are_qdrants_around_the_cap(
    params: dict[str, Any], payloads: list[Any], queries: list[tuple[str, str]]
) -> None:
    """Words and query words on both sides of the cap match as Qdrant's prefix index
    (every prefix held) matches them: through the index, and read point by point."""
    tokenizer = field_index.schema_parts(field_index.parse_schema(params))[1]
    assert tokenizer is not None
    coll = _collection(params, payloads)
    for kind, query in queries:
        want = {i for i, p in enumerate(payloads) if _accepts(tokenizer, p, kind, query)}
        spec = {"must": [{"key": "t", "match": {kind: query}}]}
        assert _ids(coll, spec) == want, (params, kind, query)
        reference = compile_filter(spec, text={"t": tokenizer})  # the predicate alone
        assert reference is not None
        assert {i for i, p in enumerate(payloads) if reference(i, p)} == want
        negated = {"must_not": [{"key": "t", "match": {kind: query}}]}
        assert _ids(coll, negated) == set(range(len(payloads))) - want


# --- a phrase is found in linear time ---------------------------------------------


def _naive(tokens: list[str], phrase: list[str]) -> bool:
    n = len(phrase)
    return any(tokens[i : i + n] == phrase for i in range(len(tokens) - n + 1))


@pytest.mark.parametrize(
    ("text", "phrase", "found"),
    [
        ("a a a b", "a a b", True),  # the match starts inside a failed partial one
        ("a a b a a b", "a b a", True),
        ("a b a b a c", "a b a c", True),
        ("a b a b a b", "a b a c", False),
        ("a a a a", "a a a a", True),
        ("a a a", "a a a a", False),  # longer than the text
        ("a b c", "", True),  # (as before: the empty phrase is everywhere)
        ("", "", True),
        ("", "a", False),
        ("x y z", "z", True),
        ("x y z", "x", True),
        ("x y z", "x z", False),
        ("b a b a b b a", "a b b", True),
        ("a b c a b d", "a b d", True),
    ],
)
def test_phrases_are_found_where_they_are(text: str, phrase: str, found: bool) -> None:
    assert has_phrase(text.split(), phrase.split()) is found
    assert _naive(text.split(), phrase.split()) is found  # (the examples are right)


@settings(max_examples=500, deadline=None)
@given(
    tokens=st.lists(st.sampled_from("ab"), max_size=14),
    phrase=st.lists(st.sampled_from("ab"), max_size=5),
)
def test_phrases_are_found_as_a_scan_finds_them(tokens: list[str], phrase: list[str]) -> None:
    assert has_phrase(tokens, phrase) is _naive(tokens, phrase)
    assert has_phrase(tokens, tokens[2:6]) is True


class _Counted(str):
    """A token that counts the comparisons made with it."""

    __slots__ = ()
    calls = 0

    def __eq__(self, other: object) -> bool:
        _Counted.calls += 1
        return str.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        _Counted.calls += 1
        return str.__ne__(self, other)

    __hash__ = str.__hash__


@pytest.mark.parametrize(("text_len", "phrase_len"), [(2000, 1000), (3000, 300), (500, 499)])
def test_a_phrase_costs_comparisons_linear_in_text_and_phrase(
    text_len: int, phrase_len: int
) -> None:
    """The worst case of a scan at every position: a text of one token repeated, and a
    phrase of it ending in another (each position matches all but the phrase's last)."""
    tokens = [_Counted("a") for _ in range(text_len)]
    phrase = [_Counted("a") for _ in range(phrase_len - 1)] + [_Counted("b")]
    _Counted.calls = 0
    assert has_phrase(tokens, phrase) is False
    assert _Counted.calls <= 3 * (text_len + phrase_len)
    tokens.append(_Counted("b"))
    _Counted.calls = 0
    assert has_phrase(tokens, phrase) is True
    assert _Counted.calls <= 3 * (text_len + 1 + phrase_len)


def test_a_phrase_on_a_prefix_index_matches_long_words_as_before() -> None:
    """A prefix index's words past the cap are one token in a phrase's sequence: a
    one-word phrase matches the words it begins, as when every prefix was a token."""
    stem = "p" * (PREFIX_CAP + 8)
    params = {"type": "text", "tokenizer": "prefix", "phrase_matching": True}
    coll = _collection(params, [{"t": f"{stem}one"}, {"t": f"{stem}two"}, {"t": "p q"}])

    def phrase(query: str) -> set[int]:
        return _ids(coll, {"must": [{"key": "t", "match": {"phrase": query}}]})

    assert phrase(stem + "o") == {0}
    assert phrase(stem) == {0, 1}
    assert phrase(stem + "three") == set()
    assert phrase("p q") == {2}
