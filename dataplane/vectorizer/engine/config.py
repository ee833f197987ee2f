"""Collection configuration: metric, index kind, HNSW parameters, payload indexes, named
dense vectors and sparse vectors."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from vectorizer.engine import field_index, sparse, validation
from vectorizer.engine.filters import stored_key
from vectorizer.engine.validation import Matrix
from vectorizer.errors import ValidationError


class Metric(StrEnum):
    COSINE = "cosine"
    EUCLIDEAN = "euclidean"
    DOT = "dot"

    @property
    def higher_is_better(self) -> bool:
        return self is not Metric.EUCLIDEAN

    def vector(self, values: Any, dim: int, field: str = "vector") -> Matrix:
        """One vector of a request, checked and prepared, ``prepare(validation.vector(…),
        single=True)``, with one sum of squares serving the finiteness check, the norm
        and the bound on length."""
        # (the common case; numbers only: numpy would take "1e2" and true for some)
        if type(values) is list and len(values) == dim and validation.all_numbers(values):
            try:
                with np.errstate(over="ignore", invalid="ignore"):
                    row = np.array([values], dtype=np.float32)
                    squares = np.dot(row[0], row[0]) if row.ndim == 2 else math.nan
            except (TypeError, ValueError, OverflowError):
                squares = math.nan  # the general path below names what is wrong
            # A NaN or an infinity makes the sum non-finite (so may huge finite values:
            # the general path then decides).
            if math.isfinite(squares) and squares > 0:
                if self is Metric.COSINE:
                    row /= np.float32(math.sqrt(squares))
                    return row
                if squares <= validation.SQUARED_NORM_MAX:
                    return row
        return self.prepare(validation.vector(values, dim, field), field, single=True)

    def prepare(self, vectors: Matrix, field: str = "vector", single: bool = False) -> Matrix:
        """Vectors as stored and queried: unit length for cosine (a zero vector stays
        zero, scoring 0 against any other, as in Qdrant); for the other metrics
        unchanged, if none is longer than ``validation.NORM_MAX`` (the first that is
        names ``field``, indexed unless ``single``).

        Norms are taken in float32, and again in float64 where float32 over- or
        underflows (a finite vector near the float32 limits, or a tiny non-zero one)."""
        if self is not Metric.COSINE:
            return validation.bounded(vectors, field, single)
        if vectors.shape[0] == 1:  # a query or an update: fewer numpy calls
            with np.errstate(over="ignore", under="ignore"):
                norm = math.sqrt(np.dot(vectors[0], vectors[0]))
            if 0 < norm < validation.FLOAT32_MAX:  # else the general path below takes it in float64
                row: Matrix = vectors / np.float32(norm)
                return row
        with np.errstate(over="ignore", under="ignore"):
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        odd = (norms == 0) | ~np.isfinite(norms)
        if odd.any():
            wide = np.linalg.norm(vectors.astype(np.float64), axis=1, keepdims=True)
            norms = np.where(odd, wide, norms)
        norms[norms == 0] = 1.0  # (a zero vector)
        out: Matrix = (vectors / norms).astype(np.float32, copy=False)
        return out

    def restore(self, vectors: Matrix, field: str = "vector") -> Matrix:
        """Vectors read back from a snapshot file as they were stored (``prepare``d
        once), checked as a client's: kept bit for bit, but for cosine rows that are not
        of unit length, which are prepared again (normalizing a unit vector again would
        move it by a rounding error); for the other metrics, refused if longer than
        ``validation.NORM_MAX`` (their scores overflowed: ``null`` in answers)."""
        if self is not Metric.COSINE:
            return validation.bounded(vectors, field)
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            norms = np.linalg.norm(vectors, axis=1)
        off = ~(np.abs(norms - 1) <= _UNIT_TOLERANCE)
        if not off.any():
            return vectors
        out = vectors.copy()
        out[off] = self.prepare(vectors[off], field)
        return out


# How far from 1 the norm of a stored cosine vector may be (float32 rounding is ~1e-7).
_UNIT_TOLERANCE = 1e-5


# The keys of a collection's configuration as ``CollectionConfig.to_dict`` writes it.
CONFIG_KEYS = frozenset(
    ("dimension", "metric", "index", "hnsw", "payload_indexes", "sparse_vectors")
    + ("vector_name", "named_vectors")
)


class IndexKind(StrEnum):
    HNSW = "hnsw"
    EXACT = "exact"


# The ranges of the HNSW knobs, and of a search's ``ef`` (checked where they are given;
# the OpenAPI document states them from here).
HNSW_RANGES = {"m": (2, 128), "ef_construction": (4, 4096), "ef_search": (1, 4096)}
EF_RANGE = (1, 4096)


@dataclass(frozen=True)
class HnswParams:
    m: int = 16
    # 150 rather than the common 100: on clustered 100k x 128 data, 100 left one or two
    # queries in a thousand with none of their true top 10 (an ill-linked region of the
    # graph) in three of four data sets measured, 150 none, for about a quarter less
    # insert throughput.
    ef_construction: int = 150
    ef_search: int = 96

    def validated(self, field: str = "hnsw") -> HnswParams:
        for name, (lo, hi) in HNSW_RANGES.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise ValidationError(
                    f"{name} must be an integer in {lo}..{hi}", field=f"{field}.{name}"
                )
        return self


@dataclass(frozen=True)
class VectorConfig:
    """A dense vector's size, metric and index: a named one's beside a collection's own,
    or (``CollectionConfig.main``) the collection's own."""

    dimension: int
    metric: Metric = Metric.COSINE
    index: IndexKind = IndexKind.HNSW
    hnsw: HnswParams = field(default_factory=HnswParams)
    # several rows a point, scored by MaxSim (``named.MultiField``): named vectors only
    multivector: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "dimension": self.dimension,
            "metric": self.metric.value,
            "index": self.index.value,
            "hnsw": asdict(self.hnsw),
        }
        if self.multivector:
            out["multivector"] = True
        return out

    @classmethod
    def parse(cls, raw: Any, defaults: HnswParams, at: str = "") -> VectorConfig:
        """Build from wire or log form; errors name the offending field (under ``at``)."""
        if not isinstance(raw, dict):
            raise ValidationError("a vector's config is an object", field=at or "vectors")
        unknown = set(raw) - {"dimension", "metric", "index", "hnsw", "multivector"}
        if unknown:
            raise ValidationError("unknown field", field=f"{at}{sorted(unknown)[0]}")
        dim = validation.dimension(raw.get("dimension"), f"{at}dimension")
        try:
            metric = Metric(raw.get("metric", Metric.COSINE))
        except ValueError:
            raise ValidationError(
                "metric must be cosine, euclidean or dot", field=f"{at}metric"
            ) from None
        try:
            index = IndexKind(raw.get("index", IndexKind.HNSW))
        except ValueError:
            raise ValidationError("index must be hnsw or exact", field=f"{at}index") from None
        hnsw_raw = raw.get("hnsw") or {}
        if not isinstance(hnsw_raw, dict):
            raise ValidationError("hnsw is an object", field=f"{at}hnsw")
        unknown = set(hnsw_raw) - {"m", "ef_construction", "ef_search"}
        if unknown:
            raise ValidationError("unknown HNSW parameter", field=f"{at}hnsw.{sorted(unknown)[0]}")
        hnsw = HnswParams(**{**asdict(defaults), **hnsw_raw}).validated(f"{at}hnsw")
        multivector = raw.get("multivector", False)
        if not isinstance(multivector, bool):
            raise ValidationError("multivector is true or false", field=f"{at}multivector")
        if multivector and metric is Metric.EUCLIDEAN:
            raise ValidationError(
                "a multivector is scored by similarity: cosine or dot", field=f"{at}metric"
            )
        return cls(dim, metric, index, hnsw, multivector)


@dataclass(frozen=True)
class CollectionConfig:
    # the size of the collection's own dense vector; 0: it has none (a collection
    # created over the Qdrant API with named vectors only, or sparse ones only: every
    # vector of a point is then optional, as in Qdrant)
    dimension: int
    metric: Metric = Metric.COSINE
    index: IndexKind = IndexKind.HNSW
    hnsw: HnswParams = field(default_factory=HnswParams)
    # payload key -> index schema (a type of ``field_index.SCHEMAS``, or a text index's
    # parameters)
    payload_indexes: dict[str, field_index.Schema] = field(default_factory=dict)
    # name -> params of the sparse vectors its points may have beside the dense one
    sparse_vectors: dict[str, sparse.SparseParams] = field(default_factory=dict)
    # name -> config of further dense vectors its points may have (Qdrant's named vectors)
    named_vectors: dict[str, VectorConfig] = field(default_factory=dict)
    # the dense vector's name in Qdrant's API ("" unless it was given one, as
    # LlamaIndex's "text-dense")
    vector_name: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Its wire and log form (keys among ``CONFIG_KEYS``)."""
        out = self.main.to_dict()
        if self.payload_indexes:
            out["payload_indexes"] = dict(self.payload_indexes)
        if self.sparse_vectors:
            out["sparse_vectors"] = {k: v.to_dict() for k, v in self.sparse_vectors.items()}
        if self.vector_name:
            out["vector_name"] = self.vector_name
        if self.named_vectors:
            out["named_vectors"] = {k: v.to_dict() for k, v in self.named_vectors.items()}
        return out

    def vector_names(self) -> str:
        """The collection's vectors by name, for errors naming one it lacks: its own
        first (by the name it was created with, or ``''``), then its named dense
        vectors, then its sparse ones."""
        names = [repr(self.vector_name)] if self.has_own else []
        names += map(repr, self.named_vectors)
        if self.sparse_vectors:
            names.append("sparse: " + ", ".join(map(repr, self.sparse_vectors)))
        return "it has " + ", ".join(names) if names else "it has no vectors"

    @property
    def has_own(self) -> bool:
        """Whether the collection has a dense vector of its own (every point has it)."""
        return self.dimension > 0

    @property
    def main(self) -> VectorConfig:
        """The collection's own dense vector, as a named one's config."""
        return VectorConfig(self.dimension, self.metric, self.index, self.hnsw)

    @classmethod
    def parse(cls, raw: dict[str, Any], defaults: HnswParams) -> CollectionConfig:
        """Build from wire or log form; errors name the offending field. ``dimension: 0``
        is a collection without a dense vector of its own (its index knobs are the
        collection's defaults, as Qdrant shows them)."""
        own = {k: raw[k] for k in ("dimension", "metric", "index", "hnsw") if k in raw}
        if type(own.get("dimension")) is int and own["dimension"] == 0:
            main = dataclasses.replace(
                VectorConfig.parse({**own, "dimension": 1}, defaults), dimension=0
            )
        else:
            main = VectorConfig.parse(own, defaults)
        indexes = _payload_indexes(raw.get("payload_indexes"))
        sparse_vectors = sparse.parse_configs(raw.get("sparse_vectors"))
        vector_name = raw.get("vector_name") or ""
        if vector_name:
            sparse.name(vector_name, "vector_name")
        if vector_name in sparse_vectors:
            raise ValidationError(
                f"{vector_name!r} names both the dense vector and a sparse one",
                field=f"sparse_vectors.{vector_name}",
            )
        if vector_name and not main.dimension:
            raise ValidationError(
                "a collection without a dense vector of its own names none", field="vector_name"
            )
        named = _named_vectors(raw.get("named_vectors"), defaults, unnamed=not main.dimension)
        for key in named:
            if (key and key == vector_name) or key in sparse_vectors:
                raise ValidationError(
                    f"{key!r} names two of the collection's vectors",
                    field=f"sparse_vectors.{key}"
                    if key in sparse_vectors
                    else f"named_vectors.{key}",
                )
        return cls(
            dimension=main.dimension,
            metric=main.metric,
            index=main.index,
            hnsw=main.hnsw,
            payload_indexes=indexes,
            sparse_vectors=sparse_vectors,
            vector_name=vector_name,
            named_vectors=named,
        )


def _named_vectors(raw: Any, defaults: HnswParams, unnamed: bool) -> dict[str, VectorConfig]:
    """Named vectors by name; ``unnamed``: one may be named ``""`` (a collection without
    a vector of its own, whose default vector is a multivector)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValidationError("named_vectors maps names to configs", field="named_vectors")
    out = {}
    for key, value in raw.items():
        config = VectorConfig.parse(value, defaults, f"named_vectors.{key}.")
        if key != "" or not unnamed or not config.multivector:
            sparse.name(key, "named_vectors")
        out[key] = config
    return out


def _payload_indexes(raw: Any) -> dict[str, field_index.Schema]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValidationError(
            "payload_indexes maps payload keys to index types", field="payload_indexes"
        )
    return {
        stored_key(key, "payload_indexes"): field_index.parse_schema(
            schema, f"payload_indexes.{key}"
        )
        for key, schema in raw.items()
    }
