"""Response bodies in Qdrant's shapes, built from engine objects (pure functions).

Qdrant requires some fields that describe machinery we do not have (segments,
optimizers, shards); those carry fixed values that say what is true here: one segment,
one shard, no optimizer running, nothing quantized.
"""

from __future__ import annotations

import math
import time
from typing import Any

from vectorizer import __version__
from vectorizer.engine.collection import EXACT_BELOW, Collection, Point, ScoredPoint
from vectorizer.engine.config import CollectionConfig, IndexKind, VectorConfig
from vectorizer.engine.named import MultiVector
from vectorizer.engine.sparse import SparseVector
from vectorizer.engine.validation import Matrix, PointId
from vectorizer.engine.wal import FsyncPolicy
from vectorizer.qdrant.models import ALL_NAMED, DISTANCES, PayloadSelector

# The Qdrant REST API version whose wire format this layer follows; qdrant-client
# compares it with its own version (same major, minor within one) and warns otherwise.
QDRANT_API_VERSION = "1.20.0"

# Points carry no per-point version here; Qdrant's field is required, so it is constant.
POINT_VERSION = 0


def version_info() -> dict[str, Any]:
    return {
        "title": f"vectorizer {__version__} (Qdrant-compatible API)",
        "version": QDRANT_API_VERSION,
    }


def envelope(result: Any, started: float) -> dict[str, Any]:
    """Qdrant's success envelope; ``started`` is a ``time.perf_counter()`` reading."""
    return {"result": result, "status": "ok", "time": time.perf_counter() - started}


# What a view returns for work it has started and not waited for (``wait=false``).
ACCEPTED = object()


def accepted(started: float) -> dict[str, Any]:
    """Qdrant's answer to work left to run in the background (with HTTP 202)."""
    return {"result": None, "status": "accepted", "time": time.perf_counter() - started}


def aliases(names: dict[str, str]) -> dict[str, Any]:
    return {"aliases": [{"alias_name": a, "collection_name": c} for a, c in names.items()]}


def update_result(sequence: int) -> dict[str, Any]:
    """A write's result. The write is applied (and durable per the fsync policy) before we
    answer, so it is always ``completed``; the operation id is the log sequence number."""
    return {"operation_id": sequence, "status": "completed"}


def record(
    point: Point, payload: PayloadSelector, order_value: float | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {"id": point.id}
    if payload.enabled:
        out["payload"] = payload.apply(point.payload)
    if point.vector is not None:
        out["vector"] = point.vector
    if order_value is not None:  # scrolled in the order of this payload value
        out["order_value"] = order_value
    return out


def scored_point(
    hit: ScoredPoint | Point, payload: PayloadSelector, order_value: float | None = None
) -> dict[str, Any]:
    """A search hit; a plain point (listed by a query without a vector) scores 1, as
    Qdrant's listings do (its ``query_scroll``)."""
    out: dict[str, Any] = {
        "id": hit.id,
        "version": POINT_VERSION,
        "score": hit.score if isinstance(hit, ScoredPoint) else 1.0,
    }
    if payload.enabled:
        out["payload"] = payload.apply(hit.payload)
    if hit.vector is not None:
        out["vector"] = hit.vector
    if order_value is not None:  # listed in the order of this payload value
        out["order_value"] = order_value
    return out


def _named_read(coll: Collection, names: tuple[str, ...]) -> tuple[str, ...]:
    """The vectors of ``names`` read by name: not the collection's own dense vector,
    which comes with the hits as their "vector"."""
    return tuple(n for n in names if n) if coll.config.has_own else names


def reads_named(coll: Collection, names: tuple[str, ...]) -> bool:
    """Whether ``show_vectors`` reads the points' named vectors for ``names``."""
    names = _named_read(coll, names)
    if names == ALL_NAMED:
        return bool(coll.config.named_vectors or coll.config.sparse_vectors)
    return bool(names)


def show_vectors(
    coll: Collection, hits: list[dict[str, Any]], names: tuple[str, ...], field: str
) -> list[dict[str, Any]]:
    """Hits (or records) with the named vectors ``names`` asks for (``ALL_NAMED``:
    every one), and the collection's own dense vector under the name an earlier version
    created it with: a point's vectors by name; a point showing only its vector named
    ``""`` (its own, or an unnamed multivector) shows it plain (as Qdrant shows its
    default vector)."""
    names = _named_read(coll, names)
    if names:
        if names != ALL_NAMED:
            for name in names:
                coll.check_named(name, field)
        for hit in hits:
            if names == ALL_NAMED:
                found = coll.named_of(hit["id"])
            else:  # (only the vectors asked for are read)
                pid = hit["id"]
                asked = {name: coll.named_vector(pid, name) for name in names}
                found = {name: vec for name, vec in asked.items() if vec is not None}
            shown = {name: _shown(vec) for name, vec in found.items()}
            dense = hit.get("vector")
            if shown or dense is None:
                merged = ({"": dense} if dense is not None else {}) | shown
                hit["vector"] = merged[""] if set(merged) == {""} else merged
    dense_name = coll.config.vector_name
    if dense_name:
        for hit in hits:
            vector = hit.get("vector")
            if isinstance(vector, list):
                hit["vector"] = {dense_name: vector}
            elif isinstance(vector, dict) and "" in vector:
                vector[dense_name] = vector.pop("")
    return hits


def _shown(vector: SparseVector | Matrix | MultiVector) -> Any:
    if isinstance(vector, SparseVector):
        return vector.to_json()
    if isinstance(vector, MultiVector):
        return vector.rows.tolist()
    return vector[0].tolist()


def point_group(
    gid: str | int, hits: list[dict[str, Any]], lookup: dict[str, Any] | None
) -> dict[str, Any]:
    out: dict[str, Any] = {"id": gid, "hits": hits}
    if lookup is not None:
        out["lookup"] = lookup
    return out


def facet_hits(counts: list[tuple[str | int | bool, int]]) -> dict[str, Any]:
    return {"hits": [{"value": value, "count": n} for value, n in counts]}


def matrix_pairs(ids: list[PointId], rows: list[list[tuple[PointId, float]]]) -> dict[str, Any]:
    """A distance matrix as Qdrant's pairs: each sampled point ``a`` with its nearest."""
    return {
        "pairs": [
            {"a": a, "b": b, "score": score}
            for a, row in zip(ids, rows, strict=True)
            for b, score in row
        ]
    }


def matrix_offsets(ids: list[PointId], rows: list[list[tuple[PointId, float]]]) -> dict[str, Any]:
    """A distance matrix as Qdrant's sparse offsets into ``ids``."""
    at = {pid: i for i, pid in enumerate(ids)}
    cells = [(i, at[b], score) for i, row in enumerate(rows) for b, score in row]
    return {
        "offsets_row": [i for i, _, _ in cells],
        "offsets_col": [j for _, j, _ in cells],
        "scores": [score for _, _, score in cells],
        "ids": ids,
    }


def collection_info(coll: Collection, fsync: FsyncPolicy, wal_segment_bytes: int) -> dict[str, Any]:
    config = coll.config
    hnsw = config.index is IndexKind.HNSW  # (without a vector of its own: its defaults)
    return {
        # (yellow, as Qdrant's while it optimizes: a batch is being linked into a graph,
        # and searches of the collection wait for it)
        "status": "green" if coll.linking() is None else "yellow",
        "optimizer_status": "ok",
        "warnings": [],
        "indexed_vectors_count": len(coll) if hnsw else 0,
        "points_count": len(coll),
        "segments_count": 1,
        "config": {
            "params": {
                "vectors": _vector_params(config),
                "shard_number": 1,
                "replication_factor": 1,
                "write_consistency_factor": 1,
                "on_disk_payload": False,
                **sparse_params(coll),
            },
            "hnsw_config": {
                # m = 0 is Qdrant's way of saying "no graph": an exact collection.
                "m": config.hnsw.m if hnsw else 0,
                "ef_construct": config.hnsw.ef_construction,
                # Qdrant measures this in KiB of vectors; we count points.
                "full_scan_threshold": EXACT_BELOW * config.dimension * 4 // 1024,
                "max_indexing_threads": 0,
                "on_disk": False,
            },
            "optimizer_config": {
                "deleted_threshold": 0.0,
                "vacuum_min_vector_number": 0,
                "default_segment_number": 1,
                "max_segment_size": None,
                "memmap_threshold": None,
                "indexing_threshold": 0,
                "flush_interval_sec": flush_interval_s(fsync),
                "max_optimization_threads": 0,
            },
            "wal_config": {
                "wal_capacity_mb": max(1, wal_segment_bytes >> 20),
                "wal_segments_ahead": 0,
            },
            "quantization_config": None,
        },
        "payload_schema": {
            key: {
                "data_type": index["data_type"],
                "params": index["params"],
                "points": index["points"],
            }
            for key, index in coll.payload_schema().items()
        },
    }


def _vector_params(config: CollectionConfig) -> dict[str, Any]:
    """The dense vectors' params: by name, or the default vector's alone unnamed
    (Qdrant's two forms)."""
    own = _params(config.main)
    if config.has_own and not config.vector_name and not config.named_vectors:
        return own
    named = {name: _params(vector) for name, vector in config.named_vectors.items()}
    for name, vector in config.named_vectors.items():
        if vector.index is IndexKind.EXACT:  # (the collection's own: its hnsw_config)
            named[name]["hnsw_config"] = {"m": 0}
        if vector.multivector:
            named[name]["multivector_config"] = {"comparator": "max_sim"}
    if config.has_own:
        return {config.vector_name: own, **named}
    return named[""] if set(named) == {""} else named  # (an unnamed multivector alone: plain)


def _params(config: VectorConfig) -> dict[str, Any]:
    return {"size": config.dimension, "distance": DISTANCES[config.metric], "on_disk": False}


def sparse_params(coll: Collection) -> dict[str, Any]:
    """``{"sparse_vectors": {name: params}}`` when the collection has sparse vectors."""
    if not coll.config.sparse_vectors:
        return {}
    configs = coll.config.sparse_vectors
    return {"sparse_vectors": {name: params.to_dict() for name, params in configs.items()}}


def flush_interval_s(fsync: FsyncPolicy) -> int:
    """Seconds between forced log flushes (0: flushed with every write, or never forced)."""
    if fsync.mode == "interval":
        return math.ceil(fsync.interval_ms / 1000)
    return 0
