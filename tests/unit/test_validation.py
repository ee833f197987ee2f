from __future__ import annotations

import numpy as np
import pytest

from vectorizer.engine import validation
from vectorizer.errors import DimensionMismatch, ValidationError


@pytest.mark.parametrize("name", ["a", "A-b_9", "x" * 128])
def test_good_names(name: str) -> None:
    assert validation.collection_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "x" * 129, "../etc", "a/b", "a b", "café", "a\u200bb", "ａ", ".", "a\x00", 5, None]
)
def test_hostile_names(name: object) -> None:
    with pytest.raises(ValidationError):
        validation.collection_name(name)


@pytest.mark.parametrize("pid", [0, 2**64 - 1, "abc", "550e8400-e29b-41d4-a716-446655440000"])
def test_good_ids(pid: object) -> None:
    assert validation.point_id(pid) == pid


@pytest.mark.parametrize("pid", [-1, 2**64, True, 1.5, "", "x" * 257, "123", None, [1]])
def test_bad_ids(pid: object) -> None:
    with pytest.raises(ValidationError):
        validation.point_id(pid)


def test_path_ids() -> None:
    assert validation.parse_path_id("42") == 42
    assert validation.parse_path_id("abc") == "abc"


def test_matrix_checks_every_row() -> None:
    m = validation.matrix([[1, 2], [3, 4.5]], 2)
    assert m.dtype == np.float32 and m.shape == (2, 2)
    with pytest.raises(DimensionMismatch) as err:
        validation.matrix([[1, 2], [3]], 2)
    assert err.value.field == "vectors[1]"
    with pytest.raises(ValidationError) as err2:
        validation.matrix([[1, 2], [float("nan"), 1]], 2)
    assert err2.value.field == "vectors[1]"
    with pytest.raises(ValidationError):
        validation.matrix([[1e39, 1]], 2)  # overflows float32 to inf
    with pytest.raises(ValidationError):
        validation.vector([], 2)
    with pytest.raises(ValidationError) as err3:
        validation.matrix([[1, 2], [1, "a"]], 2)
    assert err3.value.field == "vectors[1]"
    with pytest.raises(ValidationError):
        validation.matrix([[1, [2]]], 2)
