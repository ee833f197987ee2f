"""Pure functions that turn Qdrant request bodies into engine arguments.

Errors are ``ValidationError``s that name the offending field.

What is refused, and why: Euclidean multivectors (MaxSim takes similarities); a point
without the collection's own dense vector where it has one (named ``""`` here whatever
its name in requests: see ``names``; named vectors, dense or sparse, are optional),
which the store says; server-side inference (documents, images); shard keys and custom
sharding (one node, one shard).
Performance and storage knobs (quantization, on-disk flags, optimizer and WAL settings)
are accepted and ignored: they do not change results, and ``GET /collections/{name}``
reports the configuration actually in force.
"""

from __future__ import annotations

import dataclasses
import functools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from vectorizer.engine import paths, payloads, scoring, sparse, validation
from vectorizer.engine.collection import WRITE_MODES, NamedRows, WriteMode
from vectorizer.engine.config import EF_RANGE, CollectionConfig, IndexKind, Metric
from vectorizer.engine.datetimes import micros
from vectorizer.engine.filters import Payload, Predicate, compile_filter, payload_key
from vectorizer.engine.formula import Formula
from vectorizer.engine.formula import parse as parse_formula
from vectorizer.engine.validation import PointId
from vectorizer.errors import ValidationError
from vectorizer.qdrant.schemas import (
    Batch,
    CreateCollection,
    CreateVectorName,
    DeletePayload,
    DeleteVectors,
    DiscoverRequest,
    HnswConfigDiff,
    Prefetch,
    Query,
    QueryRequest,
    Recommended,
    RecommendRequest,
    ScrollRequest,
    Searched,
    SearchMatrixRequest,
    SearchParams,
    SearchRequest,
    SetPayload,
    UpdateCollection,
    UpdateVectors,
    Upsert,
    VectorParams,
    VectorParamsDiff,
)
from vectorizer.server.http import convert_as

DEFAULT_LIMIT = 10
MAX_PREFETCH_DEPTH = 64  # as in Qdrant
DEFAULT_RRF_K = 2  # Qdrant's: a point first in one list scores 1/2

METRICS: dict[str, Metric] = {
    "Cosine": Metric.COSINE,
    "Euclid": Metric.EUCLIDEAN,
    "Dot": Metric.DOT,
}
DISTANCES: dict[Metric, str] = {metric: name for name, metric in METRICS.items()}

# Qdrant's inference objects (Document, Image, InferenceObject): a model and its input
_INFERENCE_INPUTS = frozenset({"text", "image", "object"})
_NOT_NEAREST = (
    "relevance_feedback",
    "text",
)


# ---- ids -------------------------------------------------------------------------------


def point_id(raw: Any, field: str = "id") -> PointId:
    """An unsigned integer or a string id; UUIDs in any accepted spelling are canonicalised.

    Qdrant accepts only UUID strings; other strings are allowed too so that points
    written through the native API stay reachable.
    """
    return validation.point_id(_maybe_uuid(raw), field)


def path_point_id(raw: str) -> PointId:
    """An id from a URL path: digits are an integer (if an unsigned 64-bit one: else a
    UUID's 32 hex digits may all be decimal ones), anything else a (UUID) string; as
    Qdrant reads it."""
    if raw.isascii() and raw.isdigit() and (int(raw) <= validation.MAX_UINT64 or len(raw) != 32):
        return point_id(int(raw))
    return point_id(raw)


def point_ids(raw: list[Any], field: str) -> list[PointId]:
    return [point_id(v, f"{field}[{i}]") for i, v in enumerate(raw)]


def canonical_filter(spec: Any) -> Any:
    """``spec`` with the ids of every ``has_id`` canonicalised like stored ids.

    Anything malformed is left as it is, for the filter compiler to report.
    """
    if isinstance(spec, list):
        return [canonical_filter(c) for c in spec]
    if not isinstance(spec, dict):
        return spec
    out = {}
    for key, value in spec.items():
        if key == "has_id" and isinstance(value, list):
            out[key] = [_maybe_uuid(v) for v in value]
        elif key in ("must", "should", "must_not", "conditions", "min_should"):
            out[key] = canonical_filter(value)
        else:
            out[key] = value
    return out


def _maybe_uuid(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return str(uuid.UUID(value))
        except ValueError:
            return value
    return value


def exclude_ids(spec: dict[str, Any] | None, ids: list[PointId]) -> dict[str, Any]:
    """A filter accepting what ``spec`` accepts except the points in ``ids``."""
    out: dict[str, Any] = {"must_not": [{"has_id": list(ids)}]}
    if spec is not None:
        out["must"] = [spec]
    return out


# ---- collections -----------------------------------------------------------------------


def collection_config(body: CreateCollection) -> dict[str, Any]:
    """The engine's collection config for a Qdrant ``CreateCollection``: an unnamed
    dense vector (or one named ``""``) is the collection's own, which every point has;
    named ones are named vectors beside it, which a point may lack. Without an unnamed
    one the collection has no vector of its own (``dimension: 0``): only named dense
    vectors, sparse ones, or none."""
    vectors = _vector_params(body.vectors)
    _no_extras(body.strict_mode_config, body.metadata)
    if body.sharding_method not in (None, "auto"):
        raise ValidationError("custom sharding is not supported", field="sharding_method")
    configs = [_dense_config(name, p, at, body.hnsw_config) for name, p, at in vectors]
    index, hnsw = _hnsw(body.hnsw_config, None)  # (the collection's defaults, as shown)
    config: dict[str, Any] = {"dimension": 0, "index": index.value, "hnsw": hnsw}
    if configs and configs[0][0] == "" and not configs[0][1].get("multivector"):
        config = configs.pop(0)[1]  # (an unnamed multivector stays a named vector "")
    if body.sparse_vectors:
        config["sparse_vectors"] = sparse_configs(body.sparse_vectors)
    if configs:
        config["named_vectors"] = dict(configs)
    return config


def _dense_config(
    name: str, params: VectorParams, at: str, collection_hnsw: HnswConfigDiff | None
) -> tuple[str, dict[str, Any]]:
    if params.distance not in METRICS:
        supported = ", ".join(METRICS)
        raise ValidationError(
            f"distance {params.distance!r} is not supported (use one of {supported})",
            field=f"{at}.distance",
        )
    index, hnsw = _hnsw(collection_hnsw, params.hnsw_config)
    config: dict[str, Any] = {
        "dimension": validation.dimension(params.size, f"{at}.size"),
        "metric": METRICS[params.distance].value,
        "index": index.value,
        "hnsw": hnsw,
    }
    if params.multivector_config is not None:
        config["multivector"] = _max_sim(params.multivector_config, f"{at}.multivector_config")
    return name, config


def _max_sim(raw: Any, field: str) -> bool:
    """Qdrant's ``multivector_config``: ``{comparator: max_sim}``, the one it has."""
    if not isinstance(raw, dict) or raw.get("comparator") != "max_sim" or len(raw) != 1:
        raise ValidationError("multivector_config is {comparator: max_sim}", field=field)
    return True


def sparse_configs(raw: Any, field: str = "sparse_vectors") -> dict[str, dict[str, Any]]:
    """The engine's sparse vector configs for Qdrant's ``SparseVectorParams`` by name:
    ``modifier`` (``idf`` or ``none``) is kept; ``index`` (its storage and search knobs)
    is accepted and ignored, like the dense vector's."""
    if not isinstance(raw, dict):
        raise ValidationError("sparse_vectors maps names to {index?, modifier?}", field=field)
    out = {}
    for name, params in raw.items():
        at = f"{field}.{name}"
        sparse.name(name, at)
        params = {} if params is None else params
        if not isinstance(params, dict) or set(params) - {"index", "modifier"}:
            raise ValidationError("a sparse vector's config is {index?, modifier?}", field=at)
        index = params.get("index")
        if index is not None and (
            not isinstance(index, dict)
            or set(index) - {"full_scan_threshold", "on_disk", "datatype"}
        ):
            raise ValidationError(
                "index is {full_scan_threshold?, on_disk?, datatype?}", field=f"{at}.index"
            )
        modifier = params.get("modifier")
        out[name] = sparse.SparseParams.parse(
            {} if modifier is None else {"modifier": modifier}, at
        ).to_dict()
    return out


def check_update(body: UpdateCollection, current: CollectionConfig) -> None:
    """Refuse an update that would change what a collection holds or how its graph is
    built (neither changes in place here: build a new collection and move an alias).
    The rest (optimizer, quantization and storage knobs) is accepted, as on create."""
    _no_extras(body.strict_mode_config, body.metadata)
    if body.sparse_vectors:
        wanted = sparse_configs(body.sparse_vectors)
        have = {k: v.to_dict() for k, v in current.sparse_vectors.items()}
        for name, params in wanted.items():
            given = body.sparse_vectors[name] or {}
            if name not in have or ("modifier" in given and params != have[name]):
                raise ValidationError(
                    "the sparse vectors of an existing collection cannot be added or changed: "
                    "create a collection with the new settings, copy the points and move "
                    "an alias to it",
                    field=f"sparse_vectors.{name}",
                )
    diffs: dict[str, HnswConfigDiff | None] = {"": None}
    for name, raw in (body.vectors or {}).items():
        at = f"vectors.{name}" if name else 'vectors[""]'
        if name and name not in current.named_vectors:
            raise ValidationError(
                f"no dense vector named {name!r} ({current.vector_names()})", field="vectors"
            )
        diffs[name] = convert_as(raw, VectorParamsDiff, at).hnsw_config
    for name, diff in diffs.items():
        was = current.named_vectors[name] if name else current.main
        index, hnsw = _hnsw(body.hnsw_config, diff)
        m_given = any(d is not None and d.m is not None for d in (body.hnsw_config, diff))
        if m_given and (index is not was.index or hnsw.get("m", was.hnsw.m) != was.hnsw.m):
            raise _fixed("m")
        if hnsw.get("ef_construction", was.hnsw.ef_construction) != was.hnsw.ef_construction:
            raise _fixed("ef_construct")


def vector_name_config(body: CreateVectorName) -> tuple[dict[str, Any] | None, Any]:
    """The engine's config of a named vector added to a collection: (dense, None) or
    (None, sparse)."""
    if (body.dense is None) == (body.sparse is None):
        raise ValidationError("give one of dense or sparse", field="dense")
    if body.sparse is not None:
        modifier = body.sparse.modifier
        given = {} if modifier is None else {"modifier": modifier.lower()}
        return None, sparse.SparseParams.parse(given, "sparse").to_dict()
    dense = body.dense
    assert dense is not None
    vector = VectorParams(
        size=dense.size, distance=dense.distance, multivector_config=dense.multivector_config
    )
    config = _dense_config("", vector, "dense", None)[1]
    del config["index"], config["hnsw"]  # (the collection's: see ``Store.add_vector``)
    return config, None


def _fixed(name: str) -> ValidationError:
    return ValidationError(
        f"{name} of an existing collection cannot change: create a collection with the new "
        "settings, copy the points and move an alias to it",
        field=f"hnsw_config.{name}",
    )


def _no_extras(strict_mode: dict[str, Any] | None, metadata: Any) -> None:
    if strict_mode and strict_mode.get("enabled"):
        raise ValidationError("strict mode is not supported", field="strict_mode_config")
    if metadata:
        raise ValidationError("collection metadata is not supported", field="metadata")


def _vector_params(raw: Any) -> list[tuple[str, VectorParams, str]]:
    """The dense vectors' names (``""``: the default vector's), params and fields, the
    default vector first."""
    if raw is None:
        return []
    if isinstance(raw, dict) and "size" not in raw and "distance" not in raw:
        out = []
        for name, params in raw.items():
            if name:
                sparse.name(name, "vectors")
            at = f"vectors.{name}" if name else 'vectors[""]'
            out.append((name, convert_as(params, VectorParams, at), at))
        if "" in raw and out[0][0] != "":  # ("" is the collection's own when given)
            out.sort(key=lambda entry: entry[0] != "")
        return out
    return [("", convert_as(raw, VectorParams, "vectors"), "vectors")]


def _hnsw(
    collection: HnswConfigDiff | None, vector: HnswConfigDiff | None
) -> tuple[IndexKind, dict[str, int]]:
    """Index kind and HNSW params; the per-vector config overrides the collection's.

    ``m = 0`` disables the graph in Qdrant: the collection is then searched exactly.
    """
    out: dict[str, int] = {}
    index = IndexKind.HNSW
    for diff in (collection, vector):
        if diff is None:
            continue
        if diff.m is not None:
            if diff.m == 0:
                index = IndexKind.EXACT
                out.pop("m", None)
            else:
                index = IndexKind.HNSW
                out["m"] = diff.m
        if diff.ef_construct is not None:
            out["ef_construction"] = diff.ef_construct
    return index, out


# ---- points -----------------------------------------------------------------------------


def dense_vector(raw: Any, field: str) -> Any:
    """The dense vector in ``raw`` (plain, or as ``""``); anything else is refused by name."""
    if isinstance(raw, dict):
        if set(raw) == {""}:
            return dense_vector(raw[""], field)
        if _inference(raw):
            raise ValidationError(
                "server-side inference is not supported: send the vector itself", field=field
            )
        if set(raw) == {"indices", "values"}:
            raise ValidationError(
                'a sparse vector goes under its name: {"": [dense], "name": {indices, values}}',
                field=field,
            )
        raise ValidationError(
            "a vector is a list of numbers (several go by name: {name: vector, ...})",
            field=field,
        )
    if isinstance(raw, list) and raw and isinstance(raw[0], list):
        raise ValidationError("multivectors are not supported", field=field)
    if not isinstance(raw, list):
        raise ValidationError("a vector is a list of numbers", field=field)
    return validation.numbers(raw, field)  # (before any write: a batch is checked whole)


def multivector(raw: Any, field: str) -> Any:
    """A multivector as given, if its vectors are lists of numbers of one length."""
    for i, row in enumerate(raw):
        if not isinstance(row, list) or len(row) != len(raw[0]):
            raise ValidationError(
                "a multivector's vectors are lists of numbers of one length",
                field=f"{field}[{i}]",
            )
        validation.numbers(row, f"{field}[{i}]")
    return raw


def point_vectors(raw: Any, field: str) -> tuple[Any, NamedRows]:
    """A point's vectors: the collection's own dense vector (``raw`` itself, or
    ``raw[""]``; None when not given) and its named vectors (sparse ones parsed, dense
    ones as given: the store checks them against the collection, and whether it has
    a vector of its own that every point needs)."""
    if raw == {}:
        return None, {}
    if is_multi(raw):  # an unnamed multivector (the store says whether it is one)
        return None, {"": multivector(raw, field)}
    if not isinstance(raw, dict) or (not _vector_map(raw) and not is_multi(raw.get(""))):
        return dense_vector(raw, field), {}
    rows = {
        sparse.name(name, f"{field}.{name}"): named_vector(value, f"{field}.{name}")
        for name, value in raw.items()
        if name != ""
    }
    if is_multi(raw.get("")):
        return None, {"": multivector(raw[""], f'{field}[""]'), **rows}
    if "" in raw:
        return dense_vector(raw[""], f'{field}[""]'), rows
    return None, rows


def named_vector(raw: Any, field: str) -> Any:
    """A named vector of a point: a sparse one (parsed), or a dense one or a multivector
    (as given)."""
    if _is_sparse(raw):
        return sparse.vector(raw, field)
    if is_multi(raw):
        return multivector(raw, field)
    return dense_vector(raw, field)


def is_multi(raw: Any) -> bool:
    """Whether ``raw`` is a list of vectors (a multivector)."""
    return isinstance(raw, list) and bool(raw) and isinstance(raw[0], list)


def _vector_map(raw: dict[str, Any]) -> bool:
    """Whether ``raw`` maps vector names to vectors (else it is refused by
    ``dense_vector``, naming what is unsupported)."""
    others = [v for k, v in raw.items() if k != ""]
    return bool(others) and not _inference(raw) and not _is_sparse(raw)


def _inference(raw: dict[str, Any]) -> bool:
    """Whether ``raw`` is an inference object (a vector a model would make from it)."""
    return "model" in raw and not raw.keys().isdisjoint(_INFERENCE_INPUTS)


@dataclass(frozen=True)
class PointsIn:
    ids: list[PointId]
    vectors: list[Any]
    payloads: list[Payload | None]
    field: str
    named: list[NamedRows] | None = None  # each point's named vectors, when any has some
    condition: Predicate | None = None  # update_filter: which existing points change
    mode: WriteMode = "upsert"  # update_mode


def upsert_points(body: Upsert, max_points: int) -> PointsIn:
    """Ids, vectors and payloads of a ``PointsList`` or ``PointsBatch``, and the
    conditions of a conditional upsert (``update_filter``, ``update_mode``)."""
    no_shard_key(body.shard_key)
    mode = body.update_mode or "upsert"
    if mode not in WRITE_MODES:
        raise ValidationError(
            f"update_mode is one of {', '.join(WRITE_MODES)}", field="update_mode"
        )
    condition = compile_filter(canonical_filter(body.update_filter), "update_filter")
    if (body.points is None) == (body.batch is None):
        raise ValidationError("give exactly one of points or batch", field="points")
    out = _points_list(body.points) if body.points is not None else _batch(body.batch)
    if not out.ids:
        raise ValidationError("no points to upsert", field=out.field)
    if len(out.ids) > max_points:
        raise ValidationError(f"at most {max_points} points per request", field=out.field)
    return dataclasses.replace(out, condition=condition, mode=mode)


def _points_list(points: list[dict[str, Any]]) -> PointsIn:
    ids, vectors, payloads, rows = [], [], [], []
    for i, p in enumerate(points):
        where = f"points[{i}]"
        unknown = set(p) - {"id", "vector", "payload"}
        if unknown:
            raise ValidationError(f"unknown field {sorted(unknown)[0]!r}", field=where)
        if "id" not in p or "vector" not in p:
            raise ValidationError("a point has an id and a vector", field=where)
        ids.append(point_id(p["id"], f"{where}.id"))
        vector, sparse_rows = point_vectors(p["vector"], f"{where}.vector")
        vectors.append(vector)
        rows.append(sparse_rows)
        payloads.append(payload(p.get("payload"), f"{where}.payload"))
    return PointsIn(ids, vectors, payloads, "points", named=rows if any(rows) else None)


def _batch(batch: Batch | None) -> PointsIn:
    assert batch is not None
    ids = point_ids(batch.ids, "batch.ids")
    raw = batch.vectors
    columns: dict[str, Any] = {}
    if isinstance(raw, dict) and all(isinstance(v, list) for v in raw.values()):
        columns = {k: v for k, v in raw.items() if k != ""}
        raw = raw.get("", [None] * len(ids))  # (none of the collection's own: the store says)
    elif isinstance(raw, dict):
        dense_vector(raw, "batch.vectors")  # raises, naming what is unsupported
    if not isinstance(raw, list):
        raise ValidationError("batch.vectors is a list of vectors", field="batch.vectors")
    if any(is_multi(v) for v in raw):  # unnamed multivectors
        columns[""], raw = raw, [None] * len(raw)
    vectors = [
        None if v is None else dense_vector(v, f"batch.vectors[{i}]") for i, v in enumerate(raw)
    ]
    payloads: list[Payload | None] = [None] * len(ids)
    if batch.payloads is not None:
        payloads = list(batch.payloads)
    if not len(ids) == len(vectors) == len(payloads):
        raise ValidationError(
            "batch.ids, batch.vectors and batch.payloads must have the same length",
            field="batch",
        )
    rows: list[NamedRows] = [{} for _ in ids]
    for name, column in columns.items():
        at = f"batch.vectors.{sparse.name(name, 'batch.vectors')}" if name else "batch.vectors"
        if len(column) != len(ids):
            raise ValidationError("one vector (or null) per id", field=at)
        for i, value in enumerate(column):
            if value is not None:
                rows[i][name] = named_vector(value, f"{at}[{i}]")
    return PointsIn(ids, vectors, payloads, "batch.vectors", named=rows if any(rows) else None)


def payload(raw: Any, field: str) -> Payload | None:
    if raw is not None and not isinstance(raw, dict):
        raise ValidationError("a payload is a JSON object", field=field)
    return raw


@dataclass(frozen=True)
class Selection:
    """Which points a delete or payload update applies to: ids, or a filter."""

    ids: list[PointId] | None
    filter: dict[str, Any] | None


def no_shard_key(shard_key: Any) -> None:
    """One node holds one shard: a request naming shard keys cannot be honoured."""
    if shard_key is not None:
        raise ValidationError("shard keys are not supported", field="shard_key")


def selection(points: list[Any] | None, filt: dict[str, Any] | None, shard_key: Any) -> Selection:
    """The points a write names: by id or by filter. Given both, the ids (as Qdrant's
    payload operations: "an explicit id list takes precedence over the filter")."""
    no_shard_key(shard_key)
    if points is None and filt is None:
        raise ValidationError("give points (a list of ids) or a filter", field="points")
    if points is not None:
        return Selection(point_ids(points, "points"), None)
    return Selection(None, canonical_filter(filt))


def set_payload(body: SetPayload, *, overwrite: bool) -> Selection:
    """The points to write; a ``key`` (a path to merge the payload under) is checked."""
    if body.key is not None:
        if overwrite:
            raise ValidationError("key is for set_payload; overwrite_payload has none", field="key")
        payloads.check_key_depth(paths.parse(body.key), body.payload)  # (as the store does)
    return selection(body.points, body.filter, body.shard_key)


def delete_payload(body: DeletePayload) -> tuple[Selection, list[str]]:
    return selection(body.points, body.filter, body.shard_key), list(_paths(body.keys, "keys"))


@dataclass(frozen=True)
class VectorsIn:
    """New vectors of existing points: each one's own dense vector (None: kept) and the
    named vectors it replaces."""

    ids: list[PointId]
    dense: list[Any]
    named: list[NamedRows] | None
    condition: Predicate | None


def update_vectors(body: UpdateVectors, max_points: int) -> VectorsIn:
    """Ids and new vectors of ``PointVectors`` entries (checked further by the store),
    and the ``update_filter`` the points must pass to change."""
    no_shard_key(body.shard_key)
    condition = compile_filter(canonical_filter(body.update_filter), "update_filter")
    if len(body.points) > max_points:
        raise ValidationError(f"at most {max_points} points per request", field="points")
    ids: list[PointId] = []
    vectors: list[Any] = []
    rows: list[NamedRows] = []
    first: dict[PointId, int] = {}
    for i, p in enumerate(body.points):
        where = f"points[{i}]"
        if set(p) != {"id", "vector"}:
            raise ValidationError("a point's vectors are {id, vector}", field=where)
        pid = point_id(p["id"], f"{where}.id")
        vector, named_rows = point_vectors(p["vector"], f"{where}.vector")
        if vector is None and not named_rows:
            raise ValidationError("give at least one vector", field=f"{where}.vector")
        if (at := first.setdefault(pid, len(ids))) < len(ids):
            # One point named twice: its entries merge in order, a later vector of a
            # name replacing an earlier one (Qdrant's "merge updates on same point ID").
            vectors[at] = vectors[at] if vector is None else vector
            rows[at] = {**rows[at], **named_rows}
            continue
        ids.append(pid)
        vectors.append(vector)
        rows.append(named_rows)
    return VectorsIn(ids, vectors, rows if any(rows) else None, condition)


def delete_vectors(body: DeleteVectors) -> tuple[Selection, list[str]]:
    """The points whose vectors ``body.vector`` names go (named vectors: the collection's
    first dense one cannot, which the store says)."""
    if not isinstance(body.vector, list) or not all(isinstance(n, str) for n in body.vector):
        raise ValidationError("vector is a list of vector names", field="vector")
    if not body.vector:  # (Qdrant's words)
        raise ValidationError("must specify vector names to delete", field="vector")
    return selection(body.points, body.filter, body.shard_key), list(dict.fromkeys(body.vector))


# ---- reads -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PayloadSelector:
    """``with_payload``: none, all, only ``include`` paths, or all but ``exclude`` paths
    (``a.b``, ``a[].b``: see ``payloads.included``)."""

    enabled: bool = False
    include: tuple[str, ...] | None = None
    exclude: tuple[str, ...] | None = None

    @functools.cached_property
    def _tree(self) -> payloads.Tree:
        return payloads.selector_tree(list(self.include or self.exclude or ()), "with_payload")

    def apply(self, stored: Payload | None) -> Payload:
        data = stored or {}
        if self.include is not None:
            shown: Payload = payloads.included(data, self._tree)
            return shown
        if self.exclude is not None:
            rest: Payload = payloads.excluded(data, self._tree)
            return rest
        return data


def payload_selector(raw: Any, default: bool, field: str = "with_payload") -> PayloadSelector:
    if raw is None:
        return PayloadSelector(default)
    if isinstance(raw, bool):
        return PayloadSelector(raw)
    if isinstance(raw, list):
        return PayloadSelector(True, include=_paths(raw, field))
    if isinstance(raw, dict) and len(raw) == 1 and "include" in raw:
        return PayloadSelector(True, include=_paths(raw["include"], f"{field}.include"))
    if isinstance(raw, dict) and len(raw) == 1 and "exclude" in raw:
        return PayloadSelector(True, exclude=_paths(raw["exclude"], f"{field}.exclude"))
    raise ValidationError(
        "with_payload is a bool, a list of keys, {include: [...]} or {exclude: [...]}", field=field
    )


def _paths(raw: Any, field: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(k, str) and k for k in raw):
        raise ValidationError("a list of payload keys", field=field)
    payloads.selector_tree(raw, field)  # a path that is not one is refused here
    return tuple(raw)


# ``named_shown`` of every named vector (``with_vector: true``)
ALL_NAMED = ("*",)


def with_vector(raw: Any, default: bool = False, field: str = "with_vector") -> bool:
    """Whether ``with_vector`` (a bool or a list of vector names) shows the dense vector."""
    if raw is None:
        return default
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, list) and all(isinstance(n, str) for n in raw):
        return "" in raw
    raise ValidationError("with_vector is a bool or a list of vector names", field=field)


def named_shown(raw: Any) -> tuple[str, ...]:
    """The named vectors ``with_vector`` shows (``ALL_NAMED``: every one; ``""``, the
    collection's own, or where it has none its unnamed multivector), checked against
    the collection when shown (``responses.show_vectors``)."""
    if raw is True:
        return ALL_NAMED
    if isinstance(raw, list):
        return tuple(dict.fromkeys(n for n in raw if isinstance(n, str)))
    return ()


@dataclass(frozen=True)
class OrderBy:
    """Scroll in the order of the numbers at a payload key, or of its datetimes (see
    ``engine.ordering``): when ``start`` was given as one (it is kept in microseconds),
    or (None) when the key has a datetime index."""

    key: str
    descending: bool = False
    start: int | float | None = None
    datetimes: bool | None = None


@dataclass(frozen=True)
class Scroll:
    limit: int
    offset: PointId | None
    filter: dict[str, Any] | None
    payload: PayloadSelector
    with_vector: bool
    order_by: OrderBy | None = None
    named_shown: tuple[str, ...] = ()


def scroll(body: ScrollRequest, max_limit: int) -> Scroll:
    no_shard_key(body.shard_key)
    order = None if body.order_by is None else _order_by(body.order_by)
    if order is not None and body.offset is not None:
        raise ValidationError(
            "offset cannot be used with order_by: page with order_by.start_from and a "
            "filter that leaves out the ids already seen at that value",
            field="offset",
        )
    limit = DEFAULT_LIMIT if body.limit is None else body.limit
    return Scroll(
        limit=in_range(limit, "limit", 1, max_limit),
        offset=None if body.offset is None else point_id(body.offset, "offset"),
        filter=canonical_filter(body.filter),
        payload=payload_selector(body.with_payload, True),
        with_vector=with_vector(body.with_vector),
        order_by=order,
        named_shown=named_shown(body.with_vector),
    )


def _order_by(raw: Any, field: str = "order_by") -> OrderBy:
    if isinstance(raw, str):
        return OrderBy(payload_key(raw, field))
    if not isinstance(raw, dict):
        raise ValidationError(
            "order_by is a payload key or {key, direction, start_from}", field=field
        )
    unknown = set(raw) - {"key", "direction", "start_from"}
    if unknown:
        raise ValidationError("unknown field", field=f"{field}.{sorted(unknown)[0]}")
    direction = raw.get("direction") or "asc"
    if direction not in ("asc", "desc"):
        raise ValidationError("direction is asc or desc", field=f"{field}.direction")
    start = raw.get("start_from")
    key = payload_key(raw.get("key"), f"{field}.key")
    if isinstance(start, str):
        at = micros(start)
        if at is None:
            raise ValidationError(
                "start_from is a number or an RFC 3339 datetime", field=f"{field}.start_from"
            )
        return OrderBy(key, direction == "desc", at, datetimes=True)
    if start is not None and (isinstance(start, bool) or not isinstance(start, int | float)):
        raise ValidationError(
            "start_from is a number or an RFC 3339 datetime", field=f"{field}.start_from"
        )
    return OrderBy(key, direction == "desc", start)


@dataclass(frozen=True)
class Recommend:
    """A recommendation query: examples are point ids or vectors, and example points are
    never hits. By ``average_vector`` the query is avg(positive), or with negatives
    avg(positive) + (avg(positive) - avg(negative)); by ``best_score`` or
    ``sum_scores`` each point is scored against the examples (``engine.scoring``)."""

    positive: tuple[PointId | list[Any], ...]
    negative: tuple[PointId | list[Any], ...]
    prefix: str = "query.recommend."  # of the examples' field names, for errors
    strategy: str = "average_vector"


Example = PointId | list[Any]  # a point's id, or a vector


@dataclass(frozen=True)
class Context:
    """A context query (pairs of examples, each point scored by the pairs' sides it is
    on) or, with a ``target``, a discovery query (``engine.scoring``). Example points
    are never hits."""

    pairs: tuple[tuple[Example, Example], ...]
    target: Example | None = None
    field: str = "query.context"  # where the pairs are, for errors (the target: .target)


@dataclass(frozen=True)
class Mmr:
    """Maximal marginal relevance among the ``candidates`` nearest points (None: as many
    as the query's limit, as in Qdrant)."""

    diversity: float
    candidates: int | None


@dataclass(frozen=True)
class Fusion:
    """Merging the result lists of prefetches: ``rrf`` (reciprocal rank, with ``k`` and
    optional per-list ``weights``) or ``dbsf`` (distribution-based score fusion)."""

    method: str
    k: int = DEFAULT_RRF_K
    weights: tuple[float, ...] | None = None


@dataclass(frozen=True)
class Search:
    """One nearest-neighbour search (or, with neither vector nor point, an id-ordered page).
    With ``prefetch``, the query ranks only the points its sub-searches found (or, with
    ``fusion``, merges their lists, or with ``formula`` rescores those points)."""

    vector: list[Any] | None
    point: PointId | None
    filter: dict[str, Any] | None
    limit: int
    offset: int
    threshold: float | None
    ef: int | None
    exact: bool
    payload: PayloadSelector
    with_vector: bool
    field: str = "query"
    recommend: Recommend | None = None
    order_by: OrderBy | None = None  # no vector: points in the order of a payload value
    sample: bool = False  # no vector: random points
    prefetch: tuple[Search, ...] = ()
    fusion: Fusion | None = None
    formula: Formula | None = None
    mmr: Mmr | None = None
    context: Context | None = None
    lookup: str | None = None  # lookup_from: the collection ids in the query are points of
    # and the vector of theirs they stand for (None: the one searched, ``using``)
    lookup_vector: str | None = None
    # the vector searched: "" the collection's own, else a named one (dense or sparse: the
    # collection says which when the search runs)
    using: str = ""
    sparse_query: sparse.SparseVector | None = None  # a query of the sparse vector ``using``
    named_shown: tuple[str, ...] = ()  # the named vectors shown with the hits

    def tree(self) -> Iterator[Search]:
        """This search and every prefetch under it."""
        yield self
        for p in self.prefetch:
            yield from p.tree()


def search_request(body: SearchRequest, max_limit: int) -> Search:
    return vector_search(body, body.limit, body.offset or 0, max_limit)


def vector_search(body: Searched, limit: int, offset: int, max_limit: int) -> Search:
    """The search a legacy search body (plain or grouped) asks for."""
    no_shard_key(body.shard_key)
    raw = body.vector
    vector_sel = body.with_vector if body.with_vector is not None else body.with_vectors
    using = ""
    if isinstance(raw, dict) and set(raw) == {"name", "vector"}:
        name, raw = raw["name"], raw["vector"]
        using = "" if name == "" else sparse.name(name, "vector.name")
        if _is_sparse(raw):  # a NamedSparseVector
            search = _search(
                body, limit, offset, max_limit, field="vector", with_vectors=vector_sel
            )
            query = sparse.vector(raw, "vector.vector")
            return dataclasses.replace(search, using=using, sparse_query=query)
    search = _search(
        body,
        limit,
        offset,
        max_limit,
        vector=dense_vector(raw, "vector.vector" if using else "vector"),
        field="vector",
        with_vectors=vector_sel,
    )
    return dataclasses.replace(search, using=using)


def recommend_request(body: RecommendRequest, max_limit: int) -> Search:
    return recommend_search(body, body.limit, body.offset or 0, max_limit)


def recommend_search(body: Recommended, limit: int, offset: int, max_limit: int) -> Search:
    """The search a legacy recommendation body (plain or grouped) asks for."""
    no_shard_key(body.shard_key)
    lookup, lookup_vector = _vectors_from(body.lookup_from)
    spec = {"positive": body.positive, "negative": body.negative, "strategy": body.strategy}
    recommend = _recommendation(spec, "")
    search = _search(body, limit, offset, max_limit, recommend=recommend, field="positive")
    using = _using(body.using, "")
    return dataclasses.replace(search, lookup=lookup, lookup_vector=lookup_vector, using=using)


def discover_request(body: DiscoverRequest, max_limit: int) -> Search:
    """The search a legacy discovery body asks for: toward ``target`` within the context
    pairs, or (without a target) by the pairs alone."""
    no_shard_key(body.shard_key)
    lookup, lookup_vector = _vectors_from(body.lookup_from)
    if body.target is None and not body.context:
        raise ValidationError("give a target, context pairs or both", field="target")
    if body.target is None:
        found = Context(_pairs(body.context, "context"), None, "context")
    else:
        found = discovery(body.target, body.context, "")
    search = _search(body, body.limit, body.offset or 0, max_limit, field="target")
    using = _using(body.using, "")
    return dataclasses.replace(
        search, context=found, lookup=lookup, lookup_vector=lookup_vector, using=using
    )


def _vectors_from(lookup_from: Any, at: str = "") -> tuple[str | None, str | None]:
    """The collection whose points' vectors ids in the query stand for (``lookup_from``'s,
    None: the searched one) and the name of their vector (None: the one searched, as
    qdrant-client's local mode reads it; ``""``: the collection's own)."""
    if lookup_from is None:
        return None, None
    field = f"{at}lookup_from"
    if not isinstance(lookup_from, dict) or set(lookup_from) - {"collection", "vector"}:
        raise ValidationError("lookup_from is {collection, vector?}", field=field)
    name = lookup_from.get("collection")
    if not isinstance(name, str) or not name:
        raise ValidationError("lookup_from.collection is a collection name", field=field)
    vector = lookup_from.get("vector")
    if vector is not None and not isinstance(vector, str):
        raise ValidationError("lookup_from.vector is a vector name", field=f"{field}.vector")
    return name, vector


def query_request(body: QueryRequest, max_limit: int) -> Search:
    limit = DEFAULT_LIMIT if body.limit is None else body.limit
    return query_search(body, limit, body.offset or 0, max_limit)


def query_search(body: Query, limit: int, offset: int, max_limit: int) -> Search:
    """The search a universal query (plain or grouped) asks for."""
    no_shard_key(body.shard_key)
    search = _queried(body, limit, offset, max_limit, "", 1)
    if not search.prefetch:
        return search
    # As in Qdrant: the query's filter holds in every prefetch, and a point whose vector
    # is a query anywhere in the request is never a result.
    named = [pid for s in search.tree() for pid in _query_ids(s)]
    root = search.filter if not named else exclude_ids(search.filter, named)
    return _with_filter(search, root)


def _queried(
    body: Query | Prefetch, limit: int, offset: int, max_limit: int, at: str, depth: int
) -> Search:
    """The search of a query or of one of its prefetches (``at`` leads its fields' names)."""
    if depth > MAX_PREFETCH_DEPTH:
        raise ValidationError(
            f"prefetches nest at most {MAX_PREFETCH_DEPTH} deep", field=f"{at}prefetch"
        )
    using = _using(body.using, at)
    lookup, lookup_vector = _vectors_from(body.lookup_from, at)
    prefetch = tuple(
        _prefetch(raw, max_limit, f"{at}prefetch[{i}].", depth + 1)
        for i, raw in enumerate(_listed_prefetches(body.prefetch))
    )
    fusion = _fusion(body.query, len(prefetch), f"{at}query")
    formula = None if fusion else _formula(body.query, len(prefetch), at)
    if prefetch and body.query is None:
        raise ValidationError("a query is needed to merge the prefetches", field=f"{at}query")
    merging = fusion is not None or formula is not None
    recommend = None if merging else _recommend(body.query, at)
    context = None if merging else _context_query(body.query, at)
    order_by, sample = (None, False) if merging else _listing(body.query, at)
    scored = recommend or context or merging or order_by is not None or sample
    vector, point, sparse_query = (None, None, None) if scored else _query(body.query, at)
    if sparse_query is not None and not using:
        raise ValidationError(
            "a sparse query needs using: the name of the sparse vector it searches",
            field=f"{at}using",
        )
    if fusion is not None and using:  # (Qdrant's rule: a formula reads no vector either)
        raise ValidationError(
            "a fusion query cannot be combined with using: it merges its prefetches, "
            "whose own using name the vectors they search",
            field=f"{at}using",
        )
    mmr = None if scored else _mmr(body.query, max_limit, at)
    queried = vector is not None or point is not None or sparse_query is not None
    # (a random sample takes a threshold and ignores it, as Qdrant and its local mode do)
    unscored = not queried and not (recommend or context or merging or sample)
    if unscored and body.score_threshold is not None:
        raise ValidationError(
            "score_threshold needs a vector to score by", field=f"{at}score_threshold"
        )
    return _search(
        body,
        limit,
        offset,
        max_limit,
        vector=vector,
        point=point,
        recommend=recommend,
        order_by=order_by,
        sample=sample,
        field=f"{at}query",
        prefetch=prefetch,
        fusion=fusion,
        formula=formula,
        mmr=mmr,
        context=context,
        lookup=lookup,
        lookup_vector=lookup_vector,
        using="" if merging else using,
        sparse_query=sparse_query,
    )


def _using(raw: Any, at: str) -> str:
    """The vector a query searches: ``""`` (the collection's own) or a named vector's
    name (which the collection is asked for when the query runs)."""
    if raw is None or raw == "":
        return ""
    return sparse.name(raw, f"{at}using")


def _context_query(raw: Any, at: str) -> Context | None:
    """``{"context": pair | [pairs]}`` or ``{"discover": {target, context}}``."""
    if not isinstance(raw, dict) or not ({"context", "discover"} & set(raw)):
        return None
    if len(raw) != 1:
        raise ValidationError("a context or discover query has that one key", field=f"{at}query")
    if "context" in raw:
        pairs = _pairs(raw["context"], f"{at}query.context")
        if not pairs:
            raise ValidationError("needs at least one pair", field=f"{at}query.context")
        return Context(pairs, None, f"{at}query.context")  # (a single pair: its field)
    spec = raw["discover"]
    field = f"{at}query.discover"
    if not isinstance(spec, dict) or set(spec) - {"target", "context"} or "target" not in spec:
        raise ValidationError("discover is {target, context}", field=field)
    return discovery(spec["target"], spec.get("context"), field)


def discovery(target: Any, pairs: Any, field: str) -> Context:
    """A discovery query toward ``target`` within the context ``pairs`` (which may be
    none: the target alone)."""
    at = f"{field}." if field else ""
    return Context(_pairs(pairs, f"{at}context"), _example(target, f"{at}target"), f"{at}context")


def _pairs(raw: Any, field: str) -> tuple[tuple[Example, Example], ...]:
    """One ``{positive, negative}`` pair or a list of them."""
    if raw is None:
        return ()
    items = raw if isinstance(raw, list) else [raw]
    out = []
    for i, pair in enumerate(items):
        where = field if not isinstance(raw, list) else f"{field}[{i}]"
        if not isinstance(pair, dict) or set(pair) != {"positive", "negative"}:
            raise ValidationError("a context pair is {positive, negative}", field=where)
        out.append(
            (
                _example(pair["positive"], f"{where}.positive"),
                _example(pair["negative"], f"{where}.negative"),
            )
        )
    return tuple(out)


def _example(raw: Any, field: str) -> Example:
    """A point id or a vector."""
    if isinstance(raw, int | str) and not isinstance(raw, bool):
        return point_id(raw, field)
    vector: list[Any] = dense_vector(raw, field)
    return vector


MAX_MMR_CANDIDATES = 16_384  # as in Qdrant
DEFAULT_DIVERSITY = 0.5


def _mmr(raw: Any, max_limit: int, at: str) -> Mmr | None:
    """``{"nearest": ..., "mmr": {diversity?, candidates_limit?}}``."""
    if not isinstance(raw, dict) or "mmr" not in raw:
        return None
    spec, field = raw["mmr"], f"{at}query.mmr"
    if not isinstance(spec, dict) or set(spec) - {"diversity", "candidates_limit"}:
        raise ValidationError("mmr is {diversity?, candidates_limit?}", field=field)
    diversity = spec.get("diversity")
    if diversity is None:
        diversity = DEFAULT_DIVERSITY
    number = isinstance(diversity, int | float) and not isinstance(diversity, bool)
    if not number or not 0 <= diversity <= 1:
        raise ValidationError("diversity is a number in 0..1", field=f"{field}.diversity")
    candidates = spec.get("candidates_limit")
    if candidates is not None:
        if isinstance(candidates, bool) or not isinstance(candidates, int):
            raise ValidationError("an integer", field=f"{field}.candidates_limit")
        in_range(candidates, f"{field}.candidates_limit", 1, MAX_MMR_CANDIDATES)
    return Mmr(float(diversity), candidates)


def _formula(raw: Any, prefetches: int, at: str) -> Formula | None:
    """``{"formula": expression, "defaults": {variable: value}}``: the points the
    prefetches found, rescored (``engine.formula``)."""
    if not isinstance(raw, dict) or "formula" not in raw:
        return None
    field = f"{at}query"
    extra = set(raw) - {"formula", "defaults"}
    if extra:
        raise ValidationError(
            "a formula query is {formula, defaults?}", field=f"{field}.{min(extra)}"
        )
    if not prefetches:
        raise ValidationError(
            "a formula rescores what prefetches find: give some (as in Qdrant)", field=field
        )
    return parse_formula(raw["formula"], raw.get("defaults"), f"{field}.formula", canonical_filter)


def _listed_prefetches(raw: Any) -> list[Any]:
    """``prefetch``: one or a list."""
    return [] if raw is None else raw if isinstance(raw, list) else [raw]


def _prefetch(raw: Any, max_limit: int, at: str, depth: int) -> Search:
    """A prefetch: scores and ids only; its limit defaults to 10, as in Qdrant."""
    body = convert_as(raw, Prefetch, at.rstrip("."))
    limit = DEFAULT_LIMIT if body.limit is None else body.limit
    search = _queried(body, limit, 0, max_limit, at, depth)
    return dataclasses.replace(search, payload=PayloadSelector(False), with_vector=False)


def _fusion(raw: Any, prefetches: int, field: str) -> Fusion | None:
    """``{"fusion": "rrf" | "dbsf"}`` or ``{"rrf": {k?, weights?}}``, over prefetches."""
    if not isinstance(raw, dict) or not ({"fusion", "rrf"} & set(raw)):
        return None
    if len(raw) != 1:
        raise ValidationError("a fusion query has that one key", field=field)
    if not prefetches:
        raise ValidationError("a fusion merges prefetches: give some", field=field)
    if "fusion" in raw:
        if raw["fusion"] not in ("rrf", "dbsf"):
            raise ValidationError("fusion is rrf or dbsf", field=f"{field}.fusion")
        return Fusion(raw["fusion"])
    spec = raw["rrf"]
    if not isinstance(spec, dict) or set(spec) - {"k", "weights"}:
        raise ValidationError("rrf is {k?, weights?}", field=f"{field}.rrf")
    k = spec.get("k")
    if k is None:
        k = DEFAULT_RRF_K
    elif isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= validation.MAX_UINT64:
        raise ValidationError("k is an integer in 1..2^64-1", field=f"{field}.rrf.k")
    weights = spec.get("weights")
    if weights is not None:
        if not isinstance(weights, list) or not all(
            validation.as_float(w) is not None for w in weights
        ):
            raise ValidationError(
                "weights is a list of numbers (within a double's range)",
                field=f"{field}.rrf.weights",
            )
        if len(weights) != prefetches:
            raise ValidationError(
                f"one weight per prefetch: got {len(weights)}, expected {prefetches}",
                field=f"{field}.rrf.weights",
            )
        weights = tuple(float(w) for w in weights)
    return Fusion("rrf", k, weights)


def _query_ids(search: Search) -> list[PointId]:
    """The points of the searched collection whose vectors ``search`` queries by."""
    if search.lookup is not None:  # (another collection's points)
        return []
    ids = [search.point] if search.point is not None else []
    examples: tuple[Example, ...] = ()
    if search.recommend is not None:
        examples = search.recommend.positive + search.recommend.negative
    if search.context is not None:
        examples = tuple(e for pair in search.context.pairs for e in pair)
        if search.context.target is not None:
            examples += (search.context.target,)
    return ids + [e for e in examples if not isinstance(e, list)]


def _with_filter(search: Search, spec: dict[str, Any] | None) -> Search:
    """``search`` under ``spec``: its prefetches under it and their own filters."""
    prefetch = tuple(_with_filter(p, _both(spec, p.filter)) for p in search.prefetch)
    return dataclasses.replace(search, filter=spec, prefetch=prefetch)


def _both(a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, Any] | None:
    if a is None or b is None:
        return a if b is None else b
    return {"must": [a, b]}


def _listing(raw: Any, at: str = "") -> tuple[OrderBy | None, bool]:
    """A query that lists points rather than scoring them: ``{"order_by": ...}`` (the
    scroll's ``order_by``) or ``{"sample": "random"}``."""
    if not isinstance(raw, dict) or not ({"order_by", "sample"} & set(raw)):
        return None, False
    if len(raw) != 1:
        extra = sorted(set(raw) - {"order_by", "sample"})
        where = f"{at}query.{extra[0]}" if extra else f"{at}query"
        raise ValidationError("an order_by or sample query has that one key", field=where)
    if "sample" in raw:
        if raw["sample"] != "random":
            raise ValidationError("the only sample is random", field=f"{at}query.sample")
        return None, True
    return _order_by(raw["order_by"], f"{at}query.order_by"), False


class _Options(Protocol):
    """What every search body says besides its query."""

    @property
    def filter(self) -> dict[str, Any] | None: ...
    @property
    def params(self) -> SearchParams | None: ...
    @property
    def score_threshold(self) -> float | None: ...
    @property
    def with_payload(self) -> Any: ...
    @property
    def with_vector(self) -> Any: ...


def _search(
    body: _Options,
    limit: int,
    offset: int,
    max_limit: int,
    *,
    vector: list[Any] | None = None,
    point: PointId | None = None,
    recommend: Recommend | None = None,
    field: str = "query",
    with_vectors: Any = None,
    order_by: OrderBy | None = None,
    sample: bool = False,
    **more: Any,
) -> Search:
    """A search with ``body``'s options; ``with_vectors`` stands for ``with_vector``;
    ``more`` are further fields of the search (one constructor call: a
    ``dataclasses.replace`` after it cost a query ~5 us)."""
    ef, exact = _params(body.params)
    return Search(
        vector=vector,
        point=point,
        filter=canonical_filter(body.filter),
        limit=in_range(limit, "limit", 1, max_limit),
        offset=in_range(offset, "offset", 0, max_limit),
        threshold=body.score_threshold,
        ef=ef,
        exact=exact,
        payload=payload_selector(body.with_payload, False),
        with_vector=with_vector(body.with_vector if with_vectors is None else with_vectors),
        named_shown=named_shown(body.with_vector if with_vectors is None else with_vectors),
        field=field,
        recommend=recommend,
        order_by=order_by,
        sample=sample,
        **more,
    )


def _recommend(raw: Any, at: str = "") -> Recommend | None:
    """The recommendation in a query (``{"recommend": {positive, negative, strategy}}``)."""
    if not isinstance(raw, dict) or "recommend" not in raw:
        return None
    if set(raw) != {"recommend"}:
        extra = sorted(set(raw) - {"recommend"})[0]
        raise ValidationError(f"{extra} is not supported", field=f"{at}query.{extra}")
    return _recommendation(raw["recommend"], f"{at}query.recommend.")


def _recommendation(spec: Any, prefix: str) -> Recommend:
    """``{positive, negative, strategy}``; ``prefix`` leads the names of its fields."""
    if not isinstance(spec, dict):
        raise ValidationError("must be an object", field=prefix.rstrip("."))
    unknown = set(spec) - {"positive", "negative", "strategy"}
    if unknown:
        raise ValidationError("unknown field", field=f"{prefix}{sorted(unknown)[0]}")
    strategy = spec.get("strategy")
    if strategy is None:
        strategy = "average_vector"
    if strategy not in ("average_vector", *scoring.STRATEGIES):
        raise ValidationError(
            "strategy is average_vector, best_score or sum_scores", field=f"{prefix}strategy"
        )
    positive = _examples(spec.get("positive"), f"{prefix}positive")
    negative = _examples(spec.get("negative"), f"{prefix}negative")
    if not positive and (strategy == "average_vector" or not negative):
        # (best_score and sum_scores take negative examples alone)
        raise ValidationError("needs at least one example", field=f"{prefix}positive")
    return Recommend(positive, negative, prefix, strategy)


def _examples(raw: Any, field: str) -> tuple[PointId | list[Any], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ValidationError("must be a list of point ids or vectors", field=field)
    out: list[PointId | list[Any]] = []
    for i, item in enumerate(raw):
        vector, point, _ = _query_input(item, f"{field}[{i}]", sparse_allowed=False)
        if point is not None:
            out.append(point)
        elif vector is not None:
            out.append(vector)
    return tuple(out)


QueryInput = tuple[list[Any] | None, PointId | None, sparse.SparseVector | None]


def _query(raw: Any, at: str = "") -> QueryInput:
    """(vector, point id, sparse vector) of a nearest query; all None without a query."""
    if raw is None:
        return None, None, None
    if isinstance(raw, dict):
        if "nearest" in raw:
            if set(raw) - {"nearest", "mmr"}:
                extra = sorted(set(raw) - {"nearest", "mmr"})[0]
                raise ValidationError(f"{extra} is not supported", field=f"{at}query.{extra}")
            return _query_input(raw["nearest"], f"{at}query.nearest")
        kind = next((k for k in _NOT_NEAREST if k in raw), None)
        if kind is not None:
            raise ValidationError(
                f"{kind} queries are not supported; nearest, recommend, discover, "
                "context, order_by, sample, fusion and formula queries are",
                field=f"{at}query",
            )
    return _query_input(raw, f"{at}query")


def _query_input(raw: Any, field: str, sparse_allowed: bool = True) -> QueryInput:
    if isinstance(raw, int | str) and not isinstance(raw, bool):
        return None, point_id(raw, field), None
    if sparse_allowed and _is_sparse(raw):
        return None, None, sparse.vector(raw, field)
    if sparse_allowed and is_multi(raw):  # (a multivector's query: its using says)
        return raw, None, None
    return dense_vector(raw, field), None, None


def _is_sparse(raw: Any) -> bool:
    return isinstance(raw, dict) and set(raw) == {"indices", "values"}


def _params(params: SearchParams | None) -> tuple[int | None, bool]:
    if params is None:
        return None, False
    ef = params.hnsw_ef
    if ef is not None:
        in_range(ef, "params.hnsw_ef", *EF_RANGE)
    return ef, params.exact


@dataclass(frozen=True)
class MatrixAsk:
    """A distance matrix: ``sample`` points drawn among those ``filter`` accepts (that
    have the dense vector ``using``), and for each its ``limit`` nearest among the
    others drawn."""

    filter: Any
    sample: int
    limit: int
    using: str = ""


def search_matrix(body: SearchMatrixRequest, max_sample: int, max_results: int) -> MatrixAsk:
    """What a ``search/matrix`` body asks for: a search per sampled point, so the sample
    is bounded like a batch (``max_batch_searches``, and its hits ``max_batch_results``)."""
    no_shard_key(body.shard_key)
    sample = in_range(10 if body.sample is None else body.sample, "sample", 1, max_sample)
    limit = in_range(3 if body.limit is None else body.limit, "limit", 1, max_results)
    if sample * limit > max_results:
        raise ValidationError(
            f"sample x limit is at most {max_results} neighbours in all", field="limit"
        )
    return MatrixAsk(canonical_filter(body.filter), sample, limit, _using(body.using, ""))


def in_range(value: int, field: str, lo: int, hi: int) -> int:
    if not lo <= value <= hi:
        raise ValidationError(f"must be in {lo}..{hi}", field=field)
    return value
