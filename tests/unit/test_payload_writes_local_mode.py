"""set_payload (merged, under a key) and delete_payload at payload paths, against
qdrant-client's local mode (``QdrantClient(":memory:")``, its reimplementation of the
server's payload writes): random payloads, random writes with nulls, array paths and
quoted keys, the same payload after each."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from qdrant_client import QdrantClient, models

from vectorizer.engine.collection import Collection
from vectorizer.engine.config import CollectionConfig, HnswParams, IndexKind, Metric
from vectorizer.engine.paths import parse
from vectorizer.engine.payloads import merged, merged_at, removed_at

_KEYS = ["a", "b", "x.y"]
_values = st.recursive(
    st.integers(0, 3) | st.sampled_from(["s", None]),
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.sampled_from(_KEYS), kids, max_size=3)
    ),
    max_leaves=8,
)
_payloads = st.dictionaries(st.sampled_from(_KEYS), _values, max_size=3)


def _key(name: str) -> str:
    return f'"{name}"' if "." in name else name


_steps = st.sampled_from(["a", "b", '"x.y"', "[]", "[0]", "[1]"])
_paths = st.lists(_steps, min_size=0, max_size=2).flatmap(
    lambda rest: st.sampled_from(_KEYS).map(
        lambda first: _key(first) + "".join(s if s.startswith("[") else "." + s for s in rest)
    )
)
_writes = st.one_of(
    st.tuples(st.just("set"), _payloads, st.none() | _paths),
    st.tuples(st.just("delete"), st.lists(_paths, min_size=1, max_size=2), st.none()),
    st.tuples(st.just("overwrite"), _payloads, st.none()),
)


@pytest.fixture(scope="module")
def local() -> QdrantClient:
    client = QdrantClient(":memory:")
    params = models.VectorParams(size=2, distance=models.Distance.DOT)
    client.create_collection("c", vectors_config=params)
    return client


@settings(max_examples=500, deadline=None)
@given(payload=_payloads, writes=st.lists(_writes, min_size=1, max_size=4))
def test_payload_writes_agree_with_local_mode(
    local: QdrantClient, payload: dict[str, Any], writes: list[tuple[str, Any, Any]]
) -> None:
    ours = Collection(
        "c", CollectionConfig(2, Metric.DOT, IndexKind.EXACT, HnswParams(16, 100, 64))
    )
    ours.upsert([1], np.ones((1, 2), np.float32), [copy.deepcopy(payload)])
    local.upsert("c", [models.PointStruct(id=1, vector=[1.0, 1.0], payload=copy.deepcopy(payload))])
    for kind, arg, key in writes:
        if kind == "set":
            ours.set_payload([1], arg, overwrite=False, key=key)
            local.set_payload("c", copy.deepcopy(arg), points=[1], key=key)
        elif kind == "delete":
            ours.delete_payload([1], arg, json_paths=True)
            local.delete_payload("c", arg, points=[1])
        else:
            ours.set_payload([1], arg, overwrite=True)
            local.overwrite_payload("c", copy.deepcopy(arg), points=[1])
        point = ours.get(1)
        assert point is not None
        assert point.payload == local.retrieve("c", [1])[0].payload, (kind, arg, key)


def test_paths_quote_keys_as_qdrant_does() -> None:
    assert parse('meta."user.name"') == ["meta", "user.name"]
    assert parse('"a b"[0]."c[.]d"') == ["a b", 0, "c[.]d"]
    assert parse('""') == [""]


@pytest.mark.parametrize(
    ("before", "path", "after"),
    [
        ({"a": {"b": 1, "c": 2}}, "a.b", {"a": {"c": 2}}),
        ({"a": [{"b": 1}, {"b": 2, "c": 3}]}, "a[].b", {"a": [{}, {"c": 3}]}),
        ({"a": [{"b": 1}, {"b": 2}]}, "a[1].b", {"a": [{"b": 1}, {}]}),
        ({"a": [1, 2]}, "a[]", {"a": []}),  # a trailing [] empties the array
        ({"a": [1, 2]}, "a[0]", {"a": [1, 2]}),  # an index is not removed
        ({"a": 1, "a.b": 2}, '"a.b"', {"a": 1}),
        ({"a": 5}, "a.b", {"a": 5}),  # nothing there
    ],
)
def test_removed_at(before: Any, path: str, after: Any) -> None:
    kept = copy.deepcopy(before)
    assert removed_at(before, parse(path)) == after
    assert before == kept  # copied on the way, never changed in place


def test_a_null_removes_its_key_when_merged() -> None:
    assert merged({"a": 1, "b": 2}, {"a": None, "c": None, "d": 4}) == {"b": 2, "d": 4}
    assert merged_at({"o": {"a": 1}}, ["o"], {"a": None}) == {"o": {}}
    # records logged before the rule keep their nulls when replayed
    assert merged({"a": 1}, {"a": None}, nulls_remove=False) == {"a": None}
