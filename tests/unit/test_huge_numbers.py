"""Integers beyond float64's range, which the JSON decoder keeps whole, are refused by
the engine's number checks as a ValidationError naming the field (``math.isfinite``
and ``float`` raise OverflowError on them, which would be a 500)."""

from __future__ import annotations

from typing import Any

import pytest

from vectorizer.engine import formula, geo, sparse
from vectorizer.engine.validation import as_float
from vectorizer.errors import ValidationError

BIG = 10**400


def refused(call: Any, *args: Any) -> ValidationError:
    with pytest.raises(ValidationError) as exc:
        call(*args)
    return exc.value


@pytest.mark.parametrize("value", [BIG, -BIG], ids=["big", "-big"])
def test_geo_points_and_radii(value: int) -> None:
    assert refused(geo.point, {"lon": value, "lat": 0}, "p").field == "p.lon"
    spec = {"center": {"lon": 0, "lat": 0}, "radius": value}
    assert refused(geo.radius, spec, "r").field == "r.radius"
    assert geo.stored_point({"lon": value, "lat": 0}) is None  # (not a geo point)


def test_sparse_values() -> None:
    err = refused(sparse.vector, {"indices": [1, 2], "values": [1, BIG]}, "v")
    assert err.field == "v.values[1]"


def test_formula_constants_and_defaults() -> None:
    assert refused(formula.parse, {"mult": ["$score", BIG]}, None, "f").field == "f.mult[1]"
    err = refused(formula.parse, {"sum": ["$score", "x"]}, {"x": -BIG}, "query.formula")
    assert err.field == "query.defaults.x"
    err = refused(formula.parse, "$score", {"$score": BIG}, "query.formula")
    assert err.field == "query.defaults.$score"
    spec = {"geo_distance": {"origin": {"lon": BIG, "lat": 0}, "to": "loc"}}
    assert refused(formula.parse, spec, None, "f").field == "f.geo_distance.origin.lon"


def test_as_float() -> None:
    assert [as_float(v) for v in (1, 2.5, -(2**64), True, "1", None, BIG, -BIG)] == [
        1.0,
        2.5,
        -(2.0**64),
        None,
        None,
        None,
        None,
        None,
    ]
