from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from vectorizer.engine import exact, validation
from vectorizer.engine.config import Metric
from vectorizer.engine.validation import NORM_MAX
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


GOOD_VECTORS = [
    [3.0, 4.0],
    [1, 2],  # integers are numbers
    [1e-30, -1e-30],  # squares underflow float32: the norm is taken again in float64
    [3e38, -3e38],  # near the float32 limit: the sum of squares overflows, the row does not
    [0.0, 0.0],  # kept as it is for cosine too (scores 0, as in Qdrant)
    [4.6e18, -4.6e18],  # about as long as a dot product or a distance may take (NORM_MAX)
    [4.7e18, 4.7e18],  # longer: for cosine only (the others' scores could overflow)
]
BAD_VECTORS = [
    [float("nan"), 1.0],
    [float("inf"), 1.0],
    [1e39, 1.0],  # overflows float32
    [1.0],  # wrong dimension
    [],
    [1.0, "a"],
    [1.0, [2.0]],
    "12",
    None,
]


@pytest.mark.parametrize("metric", list(Metric))
@pytest.mark.parametrize("values", GOOD_VECTORS + BAD_VECTORS)
def test_metric_vector_is_prepare_of_validation_vector(metric: Metric, values: object) -> None:
    """The one-pass check-and-prepare gives what the two steps give, errors included."""

    def outcome(fn: Callable[[], np.ndarray]) -> tuple[str, object]:
        try:
            row = fn()
        except (ValidationError, DimensionMismatch) as err:
            return type(err).__name__, (err.field, err.message)
        assert row.dtype == np.float32 and row.shape == (1, 2)
        return "ok", row.tobytes()

    expected = outcome(lambda: metric.prepare(validation.vector(values, 2), single=True))
    assert outcome(lambda: metric.vector(values, 2)) == expected
    if values in GOOD_VECTORS:
        assert isinstance(values, list)
        fine = metric is Metric.COSINE or math.hypot(*values) <= NORM_MAX
        assert (expected[0] == "ok") == fine, expected


@pytest.mark.parametrize("metric", [Metric.DOT, Metric.EUCLIDEAN])
def test_vectors_too_long_to_score_are_refused_by_name(metric: Metric) -> None:
    near = 0.999 * NORM_MAX
    rows = np.array([[1.0, 2.0], [near, 0.0], [0.0, -1e19], [1.0, 1.0]], dtype=np.float32)
    with pytest.raises(ValidationError) as err:
        metric.prepare(rows, "points")
    assert err.value.field == "points[2]"
    with pytest.raises(ValidationError) as err:
        metric.vector([0.0, -1e19], 2, "query")
    assert err.value.field == "query"
    # The longest vectors allowed score finitely against each other, whichever way.
    longest = metric.prepare(rows[[1, 1, 0]] * np.float32([[1, 1], [-1, 1], [1, 1]]), "points")
    exact_scores = exact.scores_of(longest, np.arange(3), longest[1:2], metric)
    assert np.isfinite(exact_scores).all(), exact_scores


def test_cosine_normalises_vectors_near_the_float32_limits() -> None:
    rows = np.array([[3e38, -3e38], [1e-30, 1e-30], [3.0, 4.0]], dtype=np.float32)
    for prepared in (Metric.COSINE.prepare(rows), *(Metric.COSINE.prepare(r[None]) for r in rows)):
        assert np.isfinite(prepared).all()
        np.testing.assert_allclose(np.linalg.norm(prepared, axis=1), 1.0, rtol=1e-6)


def test_float32_through_float64_rounds_exactly_like_a_direct_conversion() -> None:
    rng = np.random.default_rng(0)
    scale = 10.0 ** rng.integers(-45, 39, size=(500, 64))
    rows = (rng.normal(size=(500, 64)) * scale).tolist()
    rows[0][:6] = [1.5, 2**70, True, 3e38, 1e-50, -0.0]
    with np.errstate(over="ignore"):
        direct = np.asarray(rows, dtype=np.float32)
        got = validation.as_float32(rows)
    assert got.dtype == np.float32
    assert np.array_equal(got.view(np.uint32), direct.view(np.uint32))
