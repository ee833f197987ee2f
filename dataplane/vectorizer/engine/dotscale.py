"""Dot products kept where float32 can tell them apart, for hnswlib.

hnswlib's inner-product distance is ``1 - <a, b>`` in float32, whose steps near 1 are
6e-8 apart: where the products are small (vectors of small norm) they collapse into a
few values. 5,000 32-d points with components ~1e-4 (products ~1e-7) had recall@10 0.47
against an exact search, and scores off by a third. So in a dot-product collection the
graph and its delta buffer hold every vector times one power of two, chosen from the
first vectors so that their median norm comes near 1, and each query is scaled by its
own power of two the same way; a hit's score is ``1 - d`` divided back by both.

Powers of two scale float32 exactly: the vectors read back are the ones stored, the
ranking is the one exact products give, and where norms are near 1 both factors are 1
and nothing changes. Cosine collections need none of this (unit vectors), nor Euclidean
ones (hnswlib's squared distance has no ``1 -``).
"""

from __future__ import annotations

import math

import numpy as np

from vectorizer.engine.validation import Matrix

# Factors stay within 2**-100 .. 2**100: float32 holds the products of any finite
# vector with them (its range is 2**+-126 with full precision).
_MAX_EXPONENT = 100


class Scale:
    """The factor a graph's vectors are held at (1 until chosen, for good, from the
    first vectors a dot-product graph holds; always 1 for other metrics)."""

    def __init__(self, active: bool) -> None:
        self.factor = 1.0
        self._chosen = not active
        self.active = active

    def data(self, vectors: Matrix) -> Matrix:
        """``vectors`` as the graph holds them (the same array when the factor is 1)."""
        if not self._chosen:
            norms = np.linalg.norm(vectors, axis=1)
            self.factor = _power_of_two(float(np.median(norms[norms > 0])) if norms.any() else 1)
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
            held_norm, norm = float(np.linalg.norm(held)), float(np.linalg.norm(stored))
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
        norms = np.linalg.norm(queries, axis=1)
        factors = [_power_of_two(n) if n > 0 else 1.0 for n in norms.tolist()]
        if self.factor == 1.0 and all(f == 1.0 for f in factors):
            return queries, None
        scaled = queries * np.asarray(factors, dtype=np.float32)[:, None]
        return scaled, [self.factor * f for f in factors]


def _power_of_two(norm: float) -> float:
    """The power of two that brings ``norm`` nearest 1 (within the bounds)."""
    exponent = -round(math.log2(norm))
    return 2.0 ** max(-_MAX_EXPONENT, min(_MAX_EXPONENT, exponent))
