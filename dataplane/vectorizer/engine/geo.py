"""Qdrant's geo conditions: a radius, a bounding box and a polygon, each a test of one
payload value (a ``{"lon": x, "lat": y}`` object).

As in Qdrant (its ``types.rs``): distances are haversine distances on a sphere of the
mean earth radius, and a point matches a radius when strictly nearer than it; a box
holds a point strictly inside its edges, and wraps around the antimeridian when its
left edge is east of its right one; a polygon holds a point inside its exterior ring and
outside its interior rings, never one on any ring (the ``contains`` of the geo crate).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any

from vectorizer.engine.validation import as_float
from vectorizer.errors import ValidationError

# meters, the IUGG mean radius the geo crate (and so Qdrant) uses
EARTH_RADIUS = 6371008.8
_EPSILON = sys.float_info.epsilon  # how near a ring's ends must be, as in Qdrant

Point = tuple[float, float]  # (lon, lat)
Ring = list[Point]
Test = Callable[[Any], bool]


def radius(spec: Any, field: str) -> Test:
    if not isinstance(spec, dict) or set(spec) != {"center", "radius"}:
        raise ValidationError("geo_radius is {center: {lon, lat}, radius}", field=field)
    lon, lat = point(spec["center"], f"{field}.center")
    meters = _number(spec["radius"], f"{field}.radius")

    def test(value: Any) -> bool:
        at = stored_point(value)
        return at is not None and distance(lon, lat, at[0], at[1]) < meters

    return test


def bounding_box(spec: Any, field: str) -> Test:
    if not isinstance(spec, dict) or set(spec) != {"top_left", "bottom_right"}:
        raise ValidationError(
            "geo_bounding_box is {top_left: {lon, lat}, bottom_right: {lon, lat}}", field=field
        )
    left, top = point(spec["top_left"], f"{field}.top_left")
    right, bottom = point(spec["bottom_right"], f"{field}.bottom_right")
    wraps = left > right  # the box crosses the antimeridian

    def test(value: Any) -> bool:
        at = stored_point(value)
        if at is None:
            return False
        lon, lat = at
        inside_lon = (lon > left or lon < right) if wraps else left < lon < right
        return inside_lon and bottom < lat < top

    return test


def polygon(spec: Any, field: str) -> Test:
    if (
        not isinstance(spec, dict)
        or "exterior" not in spec
        or set(spec) - {"exterior", "interiors"}
    ):
        raise ValidationError("geo_polygon is {exterior: {points}, interiors?: [...]}", field=field)
    exterior = _ring(spec["exterior"], f"{field}.exterior")
    raw_interiors = spec.get("interiors") or []
    if not isinstance(raw_interiors, list):
        raise ValidationError("interiors is a list of rings", field=f"{field}.interiors")
    interiors = [_ring(r, f"{field}.interiors[{i}]") for i, r in enumerate(raw_interiors)]

    def test(value: Any) -> bool:
        at = stored_point(value)
        if at is None or _where(at, exterior) != _INSIDE:
            return False
        return all(_where(at, ring) == _OUTSIDE for ring in interiors)

    return test


def point(raw: Any, field: str) -> Point:
    """A query's ``{lon, lat}``, checked as Qdrant checks it."""
    if not isinstance(raw, dict) or set(raw) != {"lon", "lat"}:
        raise ValidationError("a geo point is {lon, lat}", field=field)
    lon, lat = _number(raw["lon"], f"{field}.lon"), _number(raw["lat"], f"{field}.lat")
    if not -180 <= lon <= 180:
        raise ValidationError("lon must be in [-180, 180]", field=f"{field}.lon")
    if not -90 <= lat <= 90:
        raise ValidationError("lat must be in [-90, 90]", field=f"{field}.lat")
    return lon, lat


def stored_point(value: Any) -> Point | None:
    """The (lon, lat) of a payload value, if it is a geo point (finite JSON numbers)."""
    if not isinstance(value, dict):
        return None
    lon, lat = value.get("lon"), value.get("lat")
    if not (_is_number(lon) and _is_number(lat)):
        return None
    return float(lon), float(lat)  # type: ignore[arg-type]


def distance(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Haversine distance in meters."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    d_phi, d_lambda = math.radians(lat2 - lat1), math.radians(lon2 - lon1)
    a = math.sin(d_phi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(d_lambda / 2) ** 2
    return EARTH_RADIUS * 2 * math.asin(math.sqrt(min(1.0, a)))


def _is_number(v: Any) -> bool:
    """A finite JSON number (one a float holds: ``validation.as_float``)."""
    return (number := as_float(v)) is not None and math.isfinite(number)


def _number(raw: Any, field: str) -> float:
    if not _is_number(raw):
        raise ValidationError("must be a finite number", field=field)
    return float(raw)


def _ring(raw: Any, field: str) -> Ring:
    """A closed ring of at least 4 points, as Qdrant requires."""
    if not isinstance(raw, dict) or set(raw) != {"points"} or not isinstance(raw["points"], list):
        raise ValidationError("a ring is {points: [{lon, lat}, ...]}", field=field)
    points = [point(p, f"{field}.points[{i}]") for i, p in enumerate(raw["points"])]
    if len(points) < 4:
        raise ValidationError(
            f"a polygon ring has at least 4 points, got {len(points)}", field=f"{field}.points"
        )
    (lon0, lat0), (lon1, lat1) = points[0], points[-1]
    if abs(lon0 - lon1) > _EPSILON or abs(lat0 - lat1) > _EPSILON:
        raise ValidationError(
            "a polygon ring is closed: its first and last points are the same",
            field=f"{field}.points",
        )
    return points


_INSIDE, _OUTSIDE, _ON = 1, 0, 2


def _where(at: Point, ring: Ring) -> int:
    """Whether ``at`` is inside, outside or on ``ring`` (even-odd ray casting)."""
    x, y = at
    inside = False
    for (xi, yi), (xj, yj) in zip(ring, ring[1:], strict=False):
        if (
            (x - xi) * (yj - yi) == (y - yi) * (xj - xi)
            and min(xi, xj) <= x <= max(xi, xj)
            and min(yi, yj) <= y <= max(yi, yj)
        ):
            return _ON
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            inside = not inside
    return _INSIDE if inside else _OUTSIDE
