"""Named dense vectors: further dense vectors a collection's points may have beside
their own (Qdrant's named vectors: an image and a text embedding of the same item).

Each name has its own size, metric and index; a point may have it or not. Its vectors
sit in the point's slot (so a slot's payload and every vector of it go together) in
an array of their own, and, with a graph, in an HNSW graph of their own whose labels are
those slots. A search of a named vector sees only the points that have it. A named
vector may be a multivector (several rows a point, scored by MaxSim: ``MultiField``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from vectorizer.engine import exact
from vectorizer.engine.config import IndexKind, VectorConfig
from vectorizer.engine.files import save_array
from vectorizer.engine.hnsw import HnswIndex
from vectorizer.engine.validation import Matrix


class DenseField:
    """One named dense vector of a collection, by slot."""

    def __init__(self, config: VectorConfig, capacity: int) -> None:
        self.config = config
        self.vectors: Matrix = np.zeros((capacity, config.dimension), dtype=np.float32)
        self.present: npt.NDArray[np.bool_] = np.zeros(capacity, dtype=bool)
        self._count = 0
        self.index: HnswIndex | None = None
        if config.index is IndexKind.HNSW:
            self.index = HnswIndex(config.dimension, config.metric, config.hnsw, capacity)

    def __len__(self) -> int:
        return self._count

    def __contains__(self, slot: int) -> bool:
        return bool(self.present[slot])

    def get(self, slot: int) -> Matrix | None:
        """The slot's vector as a (1, dim) row (a copy), or None."""
        return self.vectors[slot : slot + 1].copy() if self.present[slot] else None

    def put(self, slots: list[int], rows: Matrix) -> None:
        """Give each of ``slots`` its row of ``rows`` (prepared as the metric wants),
        replacing what it had; a batch is linked into the graph on both cores."""
        if not slots:
            return
        self._count += len(slots) - int(self.present[slots].sum())
        if self.index is not None:  # (a slot's old vector leaves the graph's groups first)
            for slot in np.asarray(slots)[self.present[slots]].tolist():
                self.index.delete(slot)
        self.vectors[slots] = rows
        self.present[slots] = True
        if self.index is not None:
            self.index.add(rows, slots)

    def remove(self, slot: int) -> None:
        if not self.present[slot]:
            return
        self.present[slot] = False
        self._count -= 1
        if self.index is not None:
            self.index.delete(slot)

    def resize(self, capacity: int) -> None:
        old = self.vectors.shape[0]
        vectors = np.zeros((capacity, self.config.dimension), dtype=np.float32)
        vectors[:old] = self.vectors
        present = np.zeros(capacity, dtype=bool)
        present[:old] = self.present
        self.vectors, self.present = vectors, present
        if self.index is not None:
            self.index.resize(capacity)

    def export(self, directory: Path, prefix: str, high: int) -> None:
        """Write the vectors of slots below ``high`` (and the graph) into ``directory``,
        as ``<prefix>.vectors.npy``, ``<prefix>.present.npy`` and ``<prefix>.hnsw.bin``."""
        save_array(directory / f"{prefix}.vectors.npy", self.vectors[:high])
        save_array(directory / f"{prefix}.present.npy", self.present[:high])
        if self.index is not None:
            self.index.save(directory / f"{prefix}.hnsw.bin")

    @classmethod
    def restore(
        cls,
        directory: Path,
        prefix: str,
        config: VectorConfig,
        capacity: int,
        live: npt.NDArray[np.bool_],
    ) -> DenseField:
        """Read what ``export`` wrote; ``live`` (by slot) says which slots hold points."""
        vectors = np.load(directory / f"{prefix}.vectors.npy", mmap_mode="r", allow_pickle=False)
        present = np.load(directory / f"{prefix}.present.npy", allow_pickle=False)
        high = int(vectors.shape[0])
        self = cls.__new__(cls)
        self.config = config
        self.vectors = np.zeros((capacity, config.dimension), dtype=np.float32)
        self.vectors[:high] = vectors
        self.present = np.zeros(capacity, dtype=bool)
        self.present[:high] = present & live[:high]
        self._count = int(self.present.sum())
        self.index = None
        if config.index is IndexKind.HNSW:
            self.index = HnswIndex.load(
                directory / f"{prefix}.hnsw.bin",
                config.dimension,
                config.metric,
                config.hnsw,
                self.vectors,
                np.flatnonzero(self.present).tolist(),
            )
        return self


@dataclass(frozen=True, eq=False)
class MultiVector:
    """A point's (or a query's) multivector: several rows of one named vector, scored by
    MaxSim (see ``MultiField``)."""

    rows: Matrix  # (n, dim), prepared as the metric wants them

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MultiVector) and np.array_equal(self.rows, other.rows)

    __hash__ = None  # type: ignore[assignment]


class MultiField:
    """One named multivector of a collection (Qdrant's ``multivector_config`` with the
    ``max_sim`` comparator, as ColBERT's late interaction): a point has any number of
    rows, and its score for a query of several rows is the sum over the query's rows of
    the best similarity among the point's rows. Searched exactly: such vectors mostly
    rerank what a prefetch found."""

    def __init__(self, config: VectorConfig, capacity: int) -> None:
        self.config = config
        self.present: npt.NDArray[np.bool_] = np.zeros(capacity, dtype=bool)
        self._rows: dict[int, Matrix] = {}

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, slot: int) -> bool:
        return slot in self._rows

    def get(self, slot: int) -> MultiVector | None:
        rows = self._rows.get(slot)
        return None if rows is None else MultiVector(rows)

    def put(self, slots: list[int], given: list[MultiVector]) -> None:
        for slot, vector in zip(slots, given, strict=True):
            self._rows[slot] = vector.rows
            self.present[slot] = True

    def remove(self, slot: int) -> None:
        if self._rows.pop(slot, None) is not None:
            self.present[slot] = False

    def resize(self, capacity: int) -> None:
        present = np.zeros(capacity, dtype=bool)
        present[: self.present.size] = self.present
        self.present = present

    def scores(self, query: Matrix, slots: exact.Slots) -> exact.Scores:
        """MaxSim of ``query`` (rows prepared as the metric wants) with each of ``slots``
        (each must have the vector): higher is better."""
        rows = self._rows
        out = np.empty(slots.size, dtype=np.float32)
        q = query.T
        for i, slot in enumerate(slots.tolist()):
            out[i] = (rows[slot] @ q).max(axis=0).sum()
        return out

    def export(self, directory: Path, prefix: str, high: int) -> None:
        """Write the rows of slots below ``high`` into ``directory``: how many each slot
        has (``<prefix>.counts.npy``, 0: none) and all of them in slot order
        (``<prefix>.vectors.npy``)."""
        counts = np.zeros(high, dtype=np.int64)
        parts = []
        for slot in range(high):
            rows = self._rows.get(slot)
            if rows is not None:
                counts[slot] = rows.shape[0]
                parts.append(rows)
        dim = self.config.dimension
        vectors = np.concatenate(parts) if parts else np.zeros((0, dim), dtype=np.float32)
        save_array(directory / f"{prefix}.counts.npy", counts)
        save_array(directory / f"{prefix}.vectors.npy", vectors)

    @classmethod
    def restore(
        cls,
        directory: Path,
        prefix: str,
        config: VectorConfig,
        capacity: int,
        live: npt.NDArray[np.bool_],
    ) -> MultiField:
        counts = np.load(directory / f"{prefix}.counts.npy", allow_pickle=False)
        vectors = np.load(directory / f"{prefix}.vectors.npy", allow_pickle=False)
        self = cls(config, capacity)
        at = 0
        for slot, n in enumerate(counts.tolist()):
            if n and live[slot]:
                self._rows[slot] = np.array(vectors[at : at + n], dtype=np.float32)
                self.present[slot] = True
            at += n
        return self
