"""Pure validation of names, ids and vectors shared by every entry point."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any, TypeGuard

import numpy as np
import numpy.typing as npt

from vectorizer.errors import DimensionMismatch, ValidationError

PointId = int | str
Matrix = npt.NDArray[np.float32]

FLOAT32_MAX = float(np.finfo(np.float32).max)
# Vectors no longer than this score finitely in float32 against each other, with room
# for rounding: a dot product is at most the product of two lengths (FLOAT32_MAX / 8), a
# squared distance the square of their sum (FLOAT32_MAX / 2).
NORM_MAX = math.sqrt(FLOAT32_MAX / 8)  # ~6.5e18
SQUARED_NORM_MAX = np.float32(FLOAT32_MAX / 8)  # (compared in float32, as computed)

COLLECTION_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")
MAX_DIMENSION = 65536
# The types of a vector's components as JSON decodes them (a bool is neither; numpy
# would have taken true, and "1e2", for numbers).
_NUMBERS = frozenset((float, int))
MAX_ID_LENGTH = 256
MAX_UINT64 = 2**64 - 1


def as_float(value: Any) -> float | None:
    """A JSON number as a float; None for what is no number (a bool neither), and for an
    integer beyond a double's range (the decoders keep integers whole, of any size:
    ``float`` and ``math.isfinite`` raise OverflowError on those, an answer 500)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return float(value)
    except OverflowError:
        return None


def collection_name(name: Any, field: str = "name") -> str:
    if not isinstance(name, str) or COLLECTION_NAME_RE.fullmatch(name) is None:
        raise ValidationError(
            "collection names are 1-128 characters of ASCII letters, digits, '-' and '_'",
            field=field,
        )
    return name


def plain_name(name: Any) -> TypeGuard[str]:
    """Whether ``name`` names a file (or folder) right in its folder: one path component,
    never the folder itself, its parent, an absolute path or another path (files named in
    a snapshot's manifest)."""
    return (
        isinstance(name, str)
        and 0 < len(name) <= 255
        and name not in (".", "..")
        and not any(c in name for c in "/\\\0")
    )


def dimension(value: Any, field: str = "dimension") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DIMENSION:
        raise ValidationError(f"dimension must be an integer in 1..{MAX_DIMENSION}", field=field)
    return value


def id_order(pid: PointId) -> tuple[int, int | str]:
    """The sort key of an id: integers first, then strings (Qdrant's order of ids)."""
    return (0, pid) if isinstance(pid, int) else (1, pid)


def point_id(value: Any, field: str = "id") -> PointId:
    """An id is an unsigned 64-bit integer or a non-numeric string of 1-256 characters.

    Purely numeric strings are refused so that ids in URL paths are never ambiguous.
    """
    if isinstance(value, bool):
        raise ValidationError("id must be an unsigned integer or a string", field=field)
    if isinstance(value, int):
        if not 0 <= value <= MAX_UINT64:
            raise ValidationError("integer ids must be in 0..2^64-1", field=field)
        return value
    if isinstance(value, str):
        if not 1 <= len(value) <= MAX_ID_LENGTH:
            raise ValidationError(f"string ids must be 1-{MAX_ID_LENGTH} characters", field=field)
        if value.isascii() and value.isdigit():
            raise ValidationError("numeric ids must be sent as integers, not strings", field=field)
        return value
    raise ValidationError("id must be an unsigned integer or a string", field=field)


def parse_path_id(raw: str) -> PointId:
    """An id as it appears in a URL path: digits are an integer id, anything else a string."""
    if raw.isascii() and raw.isdigit():
        return point_id(int(raw))
    return point_id(raw)


def all_numbers(values: Any) -> bool:
    """Whether the list ``values`` holds numbers only (~2.4 us for 128)."""
    return _NUMBERS.issuperset(map(type, values))


def numbers(values: list[Any], field: str) -> list[Any]:
    """``values``, a vector of a request, if it holds numbers, at least one: checked
    before its collection is known (its length is checked against it later)."""
    if not values:
        raise ValidationError("a vector must not be empty", field=field)
    if not all_numbers(values):
        raise ValidationError("vector components must be numbers", field=field)
    return values


def vector(values: Any, dim: int, field: str = "vector") -> Matrix:
    """One vector as a (1, dim) float32 row, finite and of the right length."""
    return matrix([values], dim, field=field, single=True)


def matrix(
    rows: Sequence[Any], dim: int, *, field: str = "vectors", single: bool = False
) -> Matrix:
    """Many vectors as an (n, dim) float32 matrix; the first bad row names the field."""

    def where(i: int) -> str:
        return field if single else f"{field}[{i}]"

    if isinstance(rows, np.ndarray) and rows.ndim == 2 and rows.shape[1] == dim and dim > 0:
        return _finite(rows.astype(np.float32, copy=False), where)
    for i, row in enumerate(rows):
        if not isinstance(row, list | tuple | np.ndarray):
            raise ValidationError("a vector is a list of numbers", field=where(i))
        if len(row) == 0:
            raise ValidationError("a vector must not be empty", field=where(i))
        if len(row) != dim:
            raise DimensionMismatch(
                f"expected a vector of dimension {dim}, got {len(row)}",
                field=where(i),
                expected=dim,
                got=len(row),
            )
        if type(row) is not np.ndarray and not all_numbers(row):
            raise ValidationError("vector components must be numbers", field=where(i))
    if len(rows) == 0:
        return np.empty((0, dim), dtype=np.float32)
    try:
        with np.errstate(over="ignore"):  # overflow becomes inf, refused just below
            out = as_float32(rows)
    except (TypeError, ValueError, OverflowError):
        bad = _first_non_numeric(rows)
        raise ValidationError("vector components must be numbers", field=where(bad)) from None
    if out.ndim != 2:  # nested lists inside a vector
        raise ValidationError(
            "vector components must be numbers", field=where(_first_non_numeric(rows))
        )
    return _finite(out, where)


def bounded(rows: Matrix, field: str, single: bool = False) -> Matrix:
    """``rows`` if none is longer than ``NORM_MAX`` (a vector scored as it is, by dot
    product or distance: longer ones make scores overflow to infinity)."""
    with np.errstate(over="ignore"):
        squares = np.einsum("ij,ij->i", rows, rows)
    fits = squares <= SQUARED_NORM_MAX
    if not fits.all():
        bad = int(np.argmin(fits))
        raise ValidationError(
            f"a vector may be at most {NORM_MAX:.2g} long for this metric: longer ones "
            "make scores overflow 32-bit floats",
            field=field if single else f"{field}[{bad}]",
        )
    return rows


def as_float32(values: Any) -> Matrix:
    """Python numbers (nested lists) as float32: through float64, which numpy converts
    Python floats to about five times faster (a 1,000 x 128 batch: 6.9 -> 1.4 ms); the
    rounding is the same (a Python float is a double either way). For one query vector
    the gain is lost in cold caches (~25 us either way in situ), so ``Metric.vector``
    keeps its single call."""
    out: Matrix = np.asarray(values, dtype=np.float64).astype(np.float32)
    return out


def _finite(out: Matrix, where: Callable[[int], str]) -> Matrix:
    finite = np.isfinite(out).all(axis=1)
    if not finite.all():
        bad = int(np.argmin(finite))
        raise ValidationError(
            "vector components must be finite float32 numbers (no NaN or Infinity)",
            field=where(bad),
        )
    return out


def _first_non_numeric(rows: Sequence[Any]) -> int:
    for i, row in enumerate(rows):
        for x in row:
            if isinstance(x, bool) or not isinstance(x, int | float):
                return i
    return 0
