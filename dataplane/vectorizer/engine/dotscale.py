"""Dot products kept where float32 can tell them apart, for hnswlib.

hnswlib's inner-product distance is ``1 - <a, b>`` in float32, whose steps near 1 are
6e-8 apart: where the products are small (vectors of small norm) they collapse into a
few values. 5,000 32-d points with components ~1e-4 (products ~1e-7) had recall@10 0.47
against an exact search, and scores off by a third. So in a dot-product collection the
graph and its delta buffer hold every vector times one power of two, chosen so that the
median norm of the vectors held comes near 1, and each query is scaled by its own power
of two the same way; a hit's score is ``1 - d`` divided back by both.

The factor is chosen from the first vectors, and it follows the vectors held after
that (``Norms``): when their median norm has moved ``DRIFT`` powers of two or more from
the one it was chosen for, the graph is built again at a new factor (``hnsw.py``). A
first point far from the rest (one vector of norm 1e6, then thousands of norm 3) had
put the others at norms near 3e-6 for good: recall@10 0.07, scores off by 0.12. The
products lose nothing until the norms are some 2**-10 off (recall fell at 2**-12), so
the factor is chosen again only where it matters, never for data of one magnitude.

The factor is capped so that the largest norm held stays at most 2**``MAX_HELD``
(``Norms.fitting``): products of rows then stay below float32's 2**128. Chosen from the
median alone, 3,000 norms of 2**-40 and 2,000 of 2**40 held the large ones at 2**80,
their products overflowed in hnswlib, and recall@10 was 0.35 (0.76 at 2**+-33). Where
the norms span so much that no factor keeps both ends precise, the large ones are kept
finite and the small ones lose precision: products are told apart only to some 2**-24
of the held query's norm (1) times the largest held norm over 2**``MAX_HELD``, i.e.
about 2**-80 times the largest norm times the query's.

Powers of two scale float32 exactly: the vectors read back are the ones stored, the
ranking is the one exact products give, and where norms are near 1 both factors are 1
and nothing changes. Cosine collections need none of this (unit vectors), nor Euclidean
ones (hnswlib's squared distance has no ``1 -``).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import numpy.typing as npt

from vectorizer.engine.validation import Matrix

# Factors stay within 2**-100 .. 2**100: float32 holds the products of any finite
# vector with them (its range is 2**+-126 with full precision).
_MAX_EXPONENT = 100

# How far (in powers of two) the median norm of the vectors held may move from the one
# the factor was chosen for before the graph is built again at another: products of
# norms 2**-4 (2**-8) still have 2**16 float32 steps, and recall held to 2**-10.
DRIFT = 4

# The largest norm a factor is chosen to hold a vector at, as a power of two: products
# of rows stay within float32 (2**128) even once the norms have grown ``DRIFT`` more
# before the graph is built again (2**(2 * 60) at most).
MAX_HELD = 56

# What ``Norms`` holds for a slot: a norm's exponent is within +-_MAX_EXPONENT.
_NOT_HELD = -128
_ZERO = 127


class Scale:
    """The factor a graph's vectors are held at (1 until chosen from the first vectors
    a dot-product graph holds, or given; always 1 for other metrics)."""

    def __init__(self, active: bool, exponent: int | None = None) -> None:
        """``exponent``: the factor is 2**-exponent (None: chosen from the first data)."""
        self.factor = 1.0 if exponent is None else 2.0**-exponent
        self._chosen = not active or exponent is not None
        self.active = active

    @property
    def chosen(self) -> bool:
        return self._chosen

    @property
    def exponent(self) -> int:
        """The power of two the factor undoes: a norm of 2**exponent is held near 1."""
        return -round(math.log2(self.factor))

    def data(self, vectors: Matrix) -> Matrix:
        """``vectors`` as the graph holds them (the same array when the factor is 1)."""
        if not self._chosen:
            norms = _norms(vectors)
            positive = norms[norms > 0]
            self.factor = 1.0
            if positive.size:  # (the median's, unless the largest is then held too large)
                top = _code(float(positive.max())) - MAX_HELD
                self.factor = min(_power_of_two(float(np.median(positive))), 2.0**-top)
            self._chosen = True
        if self.factor == 1.0:
            return vectors
        return vectors * np.float32(self.factor)

    def restore(self, vectors: Matrix) -> Matrix:
        """Vectors read from the graph as they were stored."""
        return vectors if self.factor == 1.0 else vectors / np.float32(self.factor)

    def adopt(self, held: Matrix, stored: Matrix) -> bool:
        """Take the factor from a loaded graph: ``held`` is a node's row in it, ``stored``
        the point's vector (a graph saved before the factor existed holds it at 1).
        False when this row cannot tell (a zero vector): ask another."""
        if self.active and not self._chosen:
            held_norm, norm = (
                float(_norms(held.reshape(1, -1))[0]),
                float(_norms(stored.reshape(1, -1))[0]),
            )
            if held_norm == 0 or norm == 0:
                return False
            self.factor = 2.0 ** round(math.log2(held_norm / norm))
            self._chosen = True
        return True

    def queries(self, queries: Matrix) -> tuple[Matrix, list[float] | None]:
        """The queries to ask the graph, and what to divide each one's ``1 - d`` by (None:
        nothing, every factor being 1)."""
        if not self.active:
            return queries, None
        norms = _norms(queries)
        factors = [_power_of_two(n) if n > 0 else 1.0 for n in norms.tolist()]
        if self.factor == 1.0 and all(f == 1.0 for f in factors):
            return queries, None
        scaled = queries * np.asarray(factors, dtype=np.float32)[:, None]
        return scaled, [self.factor * f for f in factors]


class Norms:
    """The norms of the vectors a dot-product graph and its buffer stand for (every
    point's, twins' too), each to the nearest power of two: how many there are of each,
    so that their median is at hand, and each slot's.

    ``changes`` counts vectors added and removed since the last look (``looked``) at
    the median; looking again only after as many changes as there were vectors then
    makes the rebuilds it may call for cost a few insertions per change at most."""

    def __init__(self, capacity: int) -> None:
        self._of: npt.NDArray[np.int8] = np.full(capacity, _NOT_HELD, dtype=np.int8)
        self._counts = [0] * (2 * _MAX_EXPONENT + 1)  # by exponent, from -_MAX_EXPONENT
        self.held = 0  # vectors held (zero vectors too)
        self.changes = 0
        self._basis = 0  # vectors held at the last look
        self.highest = _NOT_HELD  # the largest exponent counted since the last look

    def resize(self, capacity: int) -> None:
        grown = np.full(capacity, _NOT_HELD, dtype=np.int8)
        grown[: len(self._of)] = self._of
        self._of = grown

    def add(self, vectors: Matrix, slots: list[int]) -> None:
        """Count ``vectors`` (rows) for ``slots`` (a slot counted already: in place)."""
        if len(slots) == 1:  # (an update: a few microseconds, not twenty)
            row = vectors.reshape(-1).astype(np.float64)
            square = float(row @ row)
            self._drop(slots[0])
            code = _code(math.sqrt(square)) if square > 0 else _ZERO
            self._put(slots[0], code)
            if code != _ZERO and code > self.highest:
                self.highest = code
            return
        norms = _norms(vectors)
        codes = np.full(len(slots), _ZERO, dtype=np.int8)
        positive = norms > 0
        exponents = np.rint(np.log2(norms[positive]))
        codes[positive] = np.clip(exponents, -_MAX_EXPONENT, _MAX_EXPONENT)
        at = np.asarray(slots, dtype=np.int64)
        had = self._of[at].astype(np.int64)
        self.held += len(slots) - int(np.count_nonzero(had != _NOT_HELD))
        self.changes += len(slots)
        self._of[at] = codes
        if positive.any():
            self.highest = max(self.highest, int(codes[positive].max()))
        bins = 2 * _MAX_EXPONENT + 1
        gone = np.bincount(had[np.abs(had) <= _MAX_EXPONENT] + _MAX_EXPONENT, minlength=bins)
        came = np.bincount(codes[positive].astype(np.int64) + _MAX_EXPONENT, minlength=bins)
        self._counts = (np.asarray(self._counts) - gone + came).tolist()

    def remove(self, slot: int) -> None:
        if self._drop(slot):
            self.changes += 1

    def _put(self, slot: int, code: int) -> None:
        if code != _ZERO:
            self._counts[code + _MAX_EXPONENT] += 1
        self._of[slot] = code
        self.held += 1
        self.changes += 1

    def _drop(self, slot: int) -> bool:
        code = int(self._of[slot])
        if code == _NOT_HELD:
            return False
        if code != _ZERO:
            self._counts[code + _MAX_EXPONENT] -= 1
        self._of[slot] = _NOT_HELD
        self.held -= 1
        return True

    def slots(self) -> list[int]:
        """The slots counted, in order."""
        held: list[int] = np.flatnonzero(self._of != _NOT_HELD).tolist()
        return held

    @property
    def due(self) -> bool:
        """Whether enough has changed since the last look to look again."""
        return self.changes > 0 and self.changes >= self._basis

    def looked(self) -> None:
        self.changes, self._basis, self.highest = 0, self.held, _NOT_HELD

    def median(self) -> int | None:
        """The exponent of the median norm (the lower one of two), None for none (every
        vector held is zero)."""
        total = sum(self._counts)
        if not total:
            return None
        half = (total + 1) // 2
        for exponent, counted in enumerate(itertools.accumulate(self._counts)):
            if counted >= half:
                return exponent - _MAX_EXPONENT
        raise AssertionError("unreachable")

    def top(self) -> int | None:
        """The exponent of the largest norm (None for none)."""
        held = np.flatnonzero(self._counts)
        return None if not len(held) else int(held[-1]) - _MAX_EXPONENT

    def fitting(self) -> int | None:
        """The exponent for the factor to undo: the median norm's, unless that would hold
        the largest norm above 2**``MAX_HELD`` (None: every vector held is zero)."""
        median, top = self.median(), self.top()
        if median is None or top is None:
            return None
        return max(median, top - MAX_HELD)

    @staticmethod
    def exponent_of(vectors: Matrix) -> int | None:
        """The exponent to hold ``vectors`` at (``fitting``; None: all zero)."""
        norms = Norms(len(vectors))
        norms.add(vectors, list(range(len(vectors))))
        return norms.fitting()


def drifted(scale: Scale, exponent: int | None) -> bool:
    """Whether vectors whose factor would undo 2**``exponent`` (``Norms.fitting``) are
    held too far from it."""
    return scale.chosen and exponent is not None and abs(exponent - scale.exponent) >= DRIFT


def overflowing(scale: Scale, exponent: int) -> bool:
    """Whether a vector of norm 2**``exponent`` is held above 2**(``MAX_HELD`` +
    ``DRIFT``): the graph is looked at (and built again) at once, not once enough has
    changed (``Norms.due``), its products near float32's end."""
    return scale.chosen and exponent - scale.exponent >= MAX_HELD + DRIFT


def _norms(vectors: Matrix) -> npt.NDArray[np.float64]:
    """The rows' norms, in float64: float32's squares of components below 1e-19 vanish
    and those above 2e19 overflow (a factor of 1 was chosen for the one, none for the
    other)."""
    wide = vectors.astype(np.float64)
    norms: npt.NDArray[np.float64] = np.sqrt(np.einsum("ij,ij->i", wide, wide))
    return norms


def _code(norm: float) -> int:
    """A positive norm's exponent (to the nearest power of two, within the bounds)."""
    return max(-_MAX_EXPONENT, min(_MAX_EXPONENT, round(math.log2(norm))))


def _power_of_two(norm: float) -> float:
    """The power of two that brings ``norm`` nearest 1 (within the bounds)."""
    exponent = -round(math.log2(norm))
    return 2.0 ** max(-_MAX_EXPONENT, min(_MAX_EXPONENT, exponent))
