"""Sparse vectors: a few (index, weight) pairs per point, scored by dot product over the
indices a query shares with a point, through an inverted index, as Qdrant does.

A collection may hold any number of named sparse vectors beside its dense one; a point
may have each or not. A search scores only the points that share at least one index
with the query (no overlap: not a hit, as in Qdrant), exactly: the index holds every
posting. With the ``idf`` modifier each query weight is multiplied by the index's
inverse document frequency, ``ln((n - df + 0.5) / (df + 0.5) + 1)`` over the ``n``
points that have the vector, ``df`` of them holding the index (Qdrant's formula).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from vectorizer.engine.validation import FLOAT32_MAX, NORM_MAX, SQUARED_NORM_MAX, as_float
from vectorizer.errors import ValidationError

MAX_INDEX = 2**32 - 1
# Names of sparse vectors: what Qdrant's clients use ("bm25", "text-sparse-new",
# "langchain-sparse"), never "" (the dense vector's name).
NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,128}")
Modifier = Literal["none", "idf"]
MODIFIERS: tuple[Modifier, ...] = ("none", "idf")
# Per posting in memory: a dict entry holding a float, in the postings of its index.
BYTES_PER_POSTING = 100

Indices = npt.NDArray[np.uint32]
Weights = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True, eq=False)
class SparseVector:
    """Indices ascending and unique, each with its weight."""

    indices: Indices
    values: Weights

    def __len__(self) -> int:
        return int(self.indices.size)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, SparseVector)
            and np.array_equal(self.indices, other.indices)
            and np.array_equal(self.values, other.values)
        )

    __hash__ = None  # type: ignore[assignment]

    def to_json(self) -> dict[str, list[Any]]:
        """Qdrant's form, ``{"indices": [...], "values": [...]}``."""
        return {"indices": self.indices.tolist(), "values": self.values.tolist()}

    def to_record(self) -> list[list[Any]]:
        """The log's and the snapshot's form, ``[indices, values]`` (float32 values print
        as the shortest float64 that reads back to them)."""
        return [self.indices.tolist(), self.values.tolist()]

    @classmethod
    def from_record(cls, raw: list[list[Any]]) -> SparseVector:
        return cls(np.asarray(raw[0], dtype=np.uint32), np.asarray(raw[1], dtype=np.float32))


def name(raw: Any, field: str) -> str:
    if not isinstance(raw, str) or NAME_RE.fullmatch(raw) is None:
        raise ValidationError(
            "a vector's name is 1-128 characters of ASCII letters, digits, '-', '_' and '.'",
            field=field,
        )
    return raw


def vector(raw: Any, field: str) -> SparseVector:
    """A sparse vector of a request, ``{"indices": [...], "values": [...]}``: indices are
    unsigned 32-bit integers without repeats, values finite numbers, one per index.
    Sorted by index (the order it is stored and shown in)."""
    if not isinstance(raw, dict) or set(raw) != {"indices", "values"}:
        raise ValidationError("a sparse vector is {indices, values}", field=field)
    indices, values = raw["indices"], raw["values"]
    if not isinstance(indices, list) or not isinstance(values, list):
        raise ValidationError("indices and values are lists", field=field)
    if len(indices) != len(values):
        raise ValidationError("indices and values must have the same length", field=field)
    for i, x in enumerate(indices):
        if isinstance(x, bool) or not isinstance(x, int) or not 0 <= x <= MAX_INDEX:
            raise ValidationError(
                f"indices are integers in 0..{MAX_INDEX}", field=f"{field}.indices[{i}]"
            )
    for i, x in enumerate(values):
        if (number := as_float(x)) is None or not math.isfinite(number):
            raise ValidationError("values are finite numbers", field=f"{field}.values[{i}]")
    idx = np.asarray(indices, dtype=np.uint32)
    with np.errstate(over="ignore"):
        vals = np.asarray(values, dtype=np.float32)
    if not np.isfinite(vals).all():
        raise ValidationError("values must fit in 32-bit floats", field=f"{field}.values")
    if math.fsum(float(x) ** 2 for x in vals.tolist()) > SQUARED_NORM_MAX:
        raise ValidationError(
            f"a sparse vector may be at most {NORM_MAX:.2g} long: longer ones make scores "
            "overflow 32-bit floats",
            field=f"{field}.values",
        )
    order = np.argsort(idx, kind="stable")
    idx, vals = idx[order], vals[order]
    if idx.size > 1 and (idx[1:] == idx[:-1]).any():
        raise ValidationError("indices must be unique", field=f"{field}.indices")
    return SparseVector(idx, vals)


@dataclass(frozen=True)
class SparseParams:
    modifier: Modifier = "none"

    def to_dict(self) -> dict[str, Any]:
        return {} if self.modifier == "none" else {"modifier": self.modifier}

    @classmethod
    def parse(cls, raw: Any, field: str) -> SparseParams:
        if raw is None:
            return cls()
        if not isinstance(raw, dict) or set(raw) - {"modifier"}:
            raise ValidationError("a sparse vector's config is {modifier?}", field=field)
        modifier = raw.get("modifier") or "none"
        if modifier not in MODIFIERS:
            raise ValidationError("modifier is none or idf", field=f"{field}.modifier")
        return cls(modifier)


def parse_configs(raw: Any, field: str = "sparse_vectors") -> dict[str, SparseParams]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValidationError("sparse_vectors maps names to configs", field=field)
    return {
        name(key, field): SparseParams.parse(value, f"{field}.{key}") for key, value in raw.items()
    }


Slots = npt.NDArray[np.int64]


@dataclass
class _Arrays:
    """A posting list as a search reads it: two arrays (slots, weights) as they were
    made, and what changed since (applied when next read)."""

    slots: Slots
    weights: npt.NDArray[np.float64]
    added: dict[int, float]  # slots given the index since (absent from the arrays)
    removed: set[int]  # slots of the arrays that lost it since

    @property
    def changes(self) -> int:
        return len(self.added) + len(self.removed)


class SparseIndex:
    """One named sparse vector of a collection: each slot's vector, and postings (index ->
    slot -> weight) that find the slots sharing an index with a query. A search reads a
    posting list as two arrays (slots, weights): summing a common index's 100,000
    postings is one numpy call, not a Python loop. The arrays are made when a list is
    first read, and a write afterwards is noted beside them and merged in when it is
    next read (a mask and a concatenation), rather than having them made again."""

    def __init__(self, params: SparseParams) -> None:
        self.params = params
        self._rows: dict[int, SparseVector] = {}
        self._postings: dict[int, dict[int, float]] = {}
        self._arrays: dict[int, _Arrays] = {}
        self._slots = 0  # above every slot that has held a vector
        self.postings = 0  # entries, for memory accounting

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, slot: int) -> bool:
        return slot in self._rows

    def get(self, slot: int) -> SparseVector | None:
        return self._rows.get(slot)

    def items(self) -> Iterable[tuple[int, SparseVector]]:
        return self._rows.items()

    def put(self, slot: int, vec: SparseVector | None) -> None:
        """Give ``slot`` the vector ``vec`` (None: none), replacing what it had."""
        self.remove(slot)
        if vec is None:
            return
        self._rows[slot] = vec
        postings, arrays = self._postings, self._arrays
        for i, w in zip(vec.indices.tolist(), vec.values.tolist(), strict=True):
            postings.setdefault(i, {})[slot] = w
            cached = arrays.get(i)
            if cached is not None:
                cached.added[slot] = w
        self.postings += len(vec)
        self._slots = max(self._slots, slot + 1)

    def remove(self, slot: int) -> None:
        vec = self._rows.pop(slot, None)
        if vec is None:
            return
        postings, arrays = self._postings, self._arrays
        for i in vec.indices.tolist():
            at = postings[i]
            del at[slot]
            if not at:
                del postings[i]
                arrays.pop(i, None)
                continue
            cached = arrays.get(i)
            if cached is not None and cached.added.pop(slot, None) is None:
                cached.removed.add(slot)
        self.postings -= len(vec)

    def weighted(self, query: SparseVector) -> list[tuple[int, float]]:
        """The query's (index, weight) pairs, with the IDF modifier applied."""
        pairs = zip(query.indices.tolist(), query.values.tolist(), strict=True)
        if self.params.modifier != "idf":
            return list(pairs)
        n = len(self._rows)
        out = []
        for i, w in pairs:
            df = len(self._postings.get(i, ()))
            out.append((i, w * math.log((n - df + 0.5) / (df + 0.5) + 1)))
        return out

    def scores(self, query: SparseVector) -> tuple[npt.NDArray[np.int64], Weights]:
        """The slots sharing an index with ``query`` (ascending) and their scores (the dot
        product, summed in float64, given as float32 as Qdrant gives them: within its
        range, which only an ``idf`` weight on vectors near ``NORM_MAX`` could leave)."""
        total = np.zeros(self._slots, dtype=np.float64)
        touched = np.zeros(self._slots, dtype=bool)
        for i, w in self.weighted(query):
            posting = self._posting(i)
            if posting is not None:
                slots, weights = posting
                total[slots] += w * weights  # (a slot is once in a posting list)
                touched[slots] = True
        hit = np.flatnonzero(touched)
        return hit, np.clip(total[hit], -FLOAT32_MAX, FLOAT32_MAX).astype(np.float32)

    def _posting(self, i: int) -> tuple[Slots, npt.NDArray[np.float64]] | None:
        cached = self._arrays.get(i)
        if cached is not None and cached.changes:
            if cached.changes > max(64, cached.slots.size // 4):
                cached = None  # (many changes: made again from the postings)
            else:
                cached = self._merged(cached)
        if cached is None:
            at = self._postings.get(i)
            if at is None:
                return None
            slots = np.fromiter(at.keys(), dtype=np.int64, count=len(at))
            weights = np.fromiter(at.values(), dtype=np.float64, count=len(at))
            cached = _Arrays(slots, weights, {}, set())
        self._arrays[i] = cached
        return cached.slots, cached.weights

    def _merged(self, cached: _Arrays) -> _Arrays:
        """``cached`` with the changes noted beside it applied."""
        slots, weights = cached.slots, cached.weights
        if cached.removed:
            gone = np.zeros(self._slots, dtype=bool)
            gone[np.fromiter(cached.removed, dtype=np.int64, count=len(cached.removed))] = True
            keep = ~gone[slots]
            slots, weights = slots[keep], weights[keep]
        if cached.added:
            added = cached.added
            count = len(added)
            slots = np.concatenate([slots, np.fromiter(added.keys(), np.int64, count=count)])
            extra = np.fromiter(added.values(), np.float64, count=count)
            weights = np.concatenate([weights, extra])
        return _Arrays(slots, weights, {}, set())
