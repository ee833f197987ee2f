"""with_payload's include and exclude paths, array projections included: worked cases,
and qdrant-client's own reimplementation of the server's selectors (its local mode) as
an oracle over random payloads and paths."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from qdrant_client.local.payload_value_extractor import exclude_payload, include_payload

from vectorizer.errors import ValidationError
from vectorizer.qdrant.models import payload_selector

DOC = {"a": [{"b": 1, "c": 2}, {"b": 3}], "x": 1}


@pytest.mark.parametrize(
    ("selector", "shown"),
    [
        (["a[].b"], {"a": [{"b": 1}, {"b": 3}]}),
        ({"exclude": ["a[].b"]}, {"a": [{"c": 2}, {}], "x": 1}),
        (["a[0]"], {"a": []}),  # an index reaches nothing, as in Qdrant
        (["a[0].b"], {"a": []}),
        ({"exclude": ["a[0]"]}, DOC),
        ({"exclude": ["a[]"]}, {"a": [], "x": 1}),
        (["x", "a"], DOC),
        (["x.y"], {"x": 1}),  # a scalar a path goes past is kept whole
        (["missing"], {}),
        ({"exclude": ["x", "a[].c"]}, {"a": [{"b": 1}, {"b": 3}]}),
    ],
)
def test_selectors_show_what_qdrant_shows(selector: Any, shown: Any) -> None:
    assert payload_selector(selector, True).apply(DOC) == shown


def test_a_path_that_is_not_one_is_refused() -> None:
    with pytest.raises(ValidationError) as err:
        payload_selector({"include": ["a", "b[x]"]}, True)
    assert err.value.field == "with_payload.include[1]"


_keys = st.sampled_from(["a", "b", "c"])
_values = st.recursive(
    st.integers(0, 3) | st.sampled_from(["s", None]),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(_keys, kids, max_size=3),
    max_leaves=10,
)
_paths = st.lists(
    st.lists(_keys | st.sampled_from(["[]", "[0]"]), min_size=1, max_size=3)
    .map(lambda steps: ".".join(steps).replace(".[", "["))
    .filter(lambda path: not path.startswith("[")),
    min_size=1,
    max_size=3,
)


@settings(max_examples=400, deadline=None)
@given(payload=st.dictionaries(_keys, _values, max_size=3), paths=_paths)
def test_selectors_agree_with_qdrant_clients_local_mode(payload: Any, paths: list[str]) -> None:
    assert payload_selector(paths, True).apply(payload) == include_payload(payload, paths)
    excluding = payload_selector({"exclude": paths}, True)
    assert excluding.apply(payload) == exclude_payload(payload, paths)
