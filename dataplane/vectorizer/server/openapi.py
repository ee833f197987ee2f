"""The OpenAPI 3 document, derived from the route tables and the request schemas.

The request schemas type what a request decodes into; the ranges, enums and patterns
the server checks after decoding (in its own words, see ``_constraints`` for the native
bodies and ``_qdrant_constraints`` for Qdrant's), and which fields a body must give
(``_shapes``), are added to them here, from the constants and settings those checks use.
The document depends on a few settings (the search and batch limits, whether
``/metrics`` is served and public): it is built once for each set of them.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from aiohttp import web

from vectorizer import __version__
from vectorizer.engine import validation
from vectorizer.engine.collection import WRITE_MODES, Point, ScoredPoint
from vectorizer.engine.config import EF_RANGE, HNSW_RANGES, IndexKind, Metric
from vectorizer.engine.field_index import SCHEMAS as INDEX_TYPES
from vectorizer.qdrant import schemas as qdrant
from vectorizer.qdrant.groups import DEFAULT_GROUP_SIZE
from vectorizer.qdrant.models import DEFAULT_LIMIT, METRICS
from vectorizer.qdrant.snapshots import PRIORITIES
from vectorizer.replication.state import EPOCH_MAX
from vectorizer.security import keys
from vectorizer.security.permissions import rule_for
from vectorizer.security.ratelimit import MIN_RPS
from vectorizer.security.roles import Role
from vectorizer.server import schemas
from vectorizer.server.http import json_response
from vectorizer.server.keys import SETTINGS
from vectorizer.server.middlewares.auth import is_public
from vectorizer.settings import Settings

# Request body of each native operation that takes one.
REQUEST_BODIES: dict[tuple[str, str], type[msgspec.Struct]] = {
    ("POST", "/collections"): schemas.CreateCollection,
    ("POST", "/collections/{name}/vectors"): schemas.UpsertPoints,
    ("PUT", "/collections/{name}/vectors/{id}"): schemas.UpdatePoint,
    ("POST", "/collections/{name}/vectors/delete"): schemas.DeletePoints,
    ("POST", "/collections/{name}/count"): schemas.Count,
    ("PUT", "/collections/{name}/payload_indexes/{key}"): schemas.CreatePayloadIndex,
    ("POST", "/collections/{name}/search"): schemas.Search,
    ("POST", "/batch_search"): schemas.BatchSearch,
    ("POST", "/aliases"): schemas.ChangeAliases,
    ("POST", "/auth/keys"): schemas.CreateKey,
    ("POST", "/auth/keys/{key_id}/rotate"): schemas.RotateKey,
}

# An id: an unsigned 64-bit integer, or a string of 1-256 characters not all digits
# (``validation.point_id``).
POINT_ID: dict[str, Any] = {
    "anyOf": [
        {"type": "integer", "minimum": 0, "maximum": validation.MAX_UINT64},
        {
            "type": "string",
            "minLength": 1,
            "maxLength": validation.MAX_ID_LENGTH,
            "not": {"pattern": "^[0-9]+$"},
        },
    ]
}
COLLECTION_NAME: dict[str, Any] = {
    "type": "string",
    "pattern": f"^{validation.COLLECTION_NAME_RE.pattern}$",
}

_BOOL: dict[str, Any] = {"type": "boolean"}
_RECOVERY: dict[str, dict[str, Any]] = {
    "wait": {**_BOOL, "default": True},
    "priority": {"type": "string", "enum": sorted(PRIORITIES)},
    "checksum": {"type": "string"},
}
_SNAPSHOT_FILE = "/qdrant/collections/{name}/snapshots/{snapshot_name}"
_FULL_SNAPSHOT_FILE = "/qdrant/snapshots/{snapshot_name}"
# Routes that answer a file (not enveloped), and take a ``Range``.
FILES = frozenset({("GET", _SNAPSHOT_FILE), ("GET", _FULL_SNAPSHOT_FILE)})

# Success bodies that are not JSON.
PLAIN_TEXT = frozenset({"/metrics", "/qdrant/healthz", "/qdrant/livez", "/qdrant/readyz"})

_ERROR_DETAIL: dict[str, Any] = {
    "type": "object",
    "required": ["code", "message", "field"],
    "properties": {
        "code": {"type": "string"},
        "message": {"type": "string"},
        "field": {"type": ["string", "null"]},
        "details": {"type": "object"},  # e.g. a dimension_mismatch's expected, got
    },
}
_ERROR = {
    "type": "object",
    "required": ["error", "request_id"],
    "properties": {"error": _ERROR_DETAIL, "request_id": {"type": "string"}},
}
# Errors under /qdrant, in Qdrant's shape.
_QDRANT_ERROR = {
    "type": "object",
    "required": ["status", "time"],
    "properties": {
        "status": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "string"}},
        },
        "time": {"type": "number"},
    },
}

# Qdrant's success envelope: ``result`` (each operation's own), or none for work left to
# run in the background (``wait=false``: 202, ``accepted``).
_QDRANT_RESPONSE = {
    "type": "object",
    "required": ["result", "status", "time"],
    "properties": {
        "result": {},
        "status": {"type": "string", "enum": ["ok", "accepted"]},
        "time": {"type": "number"},
    },
}

_SECURITY_SCHEMES = {
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


_INT = {"type": "integer"}
_COUNT = {"type": "integer", "minimum": 0}
_SEQUENCE = {"type": "integer", "minimum": 0, "description": "the log sequence of the change"}


# A payload index's type: a name, or Qdrant's object form (``field_index.parse_schema``).
_PAYLOAD_INDEX: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "enum": list(INDEX_TYPES)},
        {
            "type": "object",
            "required": ["type"],
            "properties": {"type": {"type": "string", "enum": list(INDEX_TYPES)}},
            "additionalProperties": True,  # (each type's options: field_index, text)
        },
    ]
}


def _response_components() -> dict[str, Any]:
    """The schemas of the native API's answers (besides the engine's result structs)."""
    hnsw = dict.fromkeys(HNSW_RANGES, _INT)
    return {
        "CollectionInfo": _object(
            ["name", "dimension", "metric", "index", "hnsw", "vector_count", "capacity"],
            name={"type": "string"},
            # 0: no dense vector of its own (a collection made through the Qdrant API)
            dimension={"type": "integer", "minimum": 0, "maximum": validation.MAX_DIMENSION},
            metric={"type": "string", "enum": [m.value for m in Metric]},
            index={"type": "string", "enum": [k.value for k in IndexKind]},
            hnsw=_object(list(hnsw), **hnsw),
            multivector={"type": "boolean"},
            payload_indexes={"type": "object", "additionalProperties": _PAYLOAD_INDEX},
            sparse_vectors={"type": "object", "additionalProperties": {"type": "object"}},
            vector_name={"type": "string"},
            named_vectors={"type": "object", "additionalProperties": {"type": "object"}},
            vector_count=_COUNT,
            capacity=_COUNT,
        ),
        "BatchSearchResult": {
            "oneOf": [
                _object(
                    ["index", "status", "results"],
                    index=_COUNT,
                    status={"const": "ok"},
                    results={"type": "array", "items": _ref("ScoredPoint")},
                ),
                _object(
                    ["index", "status", "error"],
                    index=_COUNT,
                    status={"const": "error"},
                    error=_ERROR_DETAIL,
                ),
            ]
        },
        "Stats": _object(
            [
                "version",
                "ready",
                "sequence",
                "collections",
                "vectors",
                "uptime_seconds",
                "wal",
                "disk",
                "memory",
                "snapshot",
                "snapshot_age_seconds",
            ],
            version={"type": "string"},
            ready={"type": "boolean"},
            sequence=_COUNT,
            collections=_COUNT,
            vectors=_COUNT,
            uptime_seconds={"type": "number"},
            wal=_object(
                ["first_sequence", "last_sequence", "size_bytes", "fsync", "failure"],
                first_sequence=_COUNT,
                last_sequence=_COUNT,
                size_bytes=_COUNT,
                fsync={"type": "string", "enum": ["always", "interval", "never"]},
                failure={"type": ["string", "null"]},
            ),
            disk=_object(["free_bytes", "reserve_bytes"], free_bytes=_INT, reserve_bytes=_INT),
            memory=_object(
                ["used_bytes", "limit_bytes", "high_water_bytes"],
                used_bytes=_INT,
                limit_bytes=_INT,
                high_water_bytes=_INT,
            ),
            snapshot={
                "anyOf": [
                    _object(
                        ["sequence", "created_at", "size_bytes", "name"],
                        sequence=_COUNT,
                        created_at={"type": "number"},
                        size_bytes=_COUNT,
                        name={"type": "string"},
                    ),
                    {"type": "null"},
                ]
            },
            snapshot_age_seconds={"type": ["number", "null"]},
        ),
    }


def _responses() -> dict[tuple[str, str], tuple[str, dict[str, Any]]]:
    """The success status and body of the operations whose answers are described."""
    collection = _object(["collection"], collection=_ref("CollectionInfo"))
    written = {"sequence": _SEQUENCE}
    return {
        ("GET", "/collections"): (
            "200",
            _object(
                ["collections"], collections={"type": "array", "items": _ref("CollectionInfo")}
            ),
        ),
        ("POST", "/collections"): ("201", collection),
        ("GET", "/collections/{name}"): ("200", collection),
        ("DELETE", "/collections/{name}"): (
            "200",
            _object(["deleted", "sequence"], deleted={"type": "string"}, **written),
        ),
        ("POST", "/collections/{name}/vectors"): (
            "200",
            _object(["upserted", "sequence"], upserted=_COUNT, **written),
        ),
        ("GET", "/collections/{name}/vectors"): (
            "200",
            _object(
                ["vectors", "next_offset"],
                vectors={"type": "array", "items": _ref("Point")},
                next_offset={"anyOf": [POINT_ID, {"type": "null"}]},
            ),
        ),
        ("GET", "/collections/{name}/vectors/{id}"): ("200", _ref("Point")),
        ("PUT", "/collections/{name}/vectors/{id}"): (
            "200",
            _object(["updated", "sequence"], updated=POINT_ID, **written),
        ),
        ("DELETE", "/collections/{name}/vectors/{id}"): (
            "200",
            _object(["deleted", "sequence"], deleted=POINT_ID, **written),
        ),
        ("POST", "/collections/{name}/vectors/delete"): (
            "200",
            _object(["deleted", "sequence"], deleted=_COUNT, **written),
        ),
        ("POST", "/collections/{name}/count"): ("200", _object(["count"], count=_COUNT)),
        ("POST", "/collections/{name}/search"): (
            "200",
            _object(["results"], results={"type": "array", "items": _ref("ScoredPoint")}),
        ),
        ("POST", "/batch_search"): (
            "200",
            _object(
                ["collection", "count", "succeeded", "failed", "results"],
                collection={"type": "string"},
                count=_COUNT,
                succeeded=_COUNT,
                failed=_COUNT,
                results={"type": "array", "items": _ref("BatchSearchResult")},
            ),
        ),
        ("GET", "/stats"): ("200", _ref("Stats")),
        ("GET", "/health"): (
            "200",
            _object(
                ["status", "version", "timestamp"],
                status={"const": "healthy"},
                version={"type": "string"},
                timestamp={"type": "number"},
            ),
        ),
        ("GET", "/ready"): (
            "200",
            _object(
                ["status"],
                status={"const": "ready"},
                sequence={**_COUNT, "description": "not shown with auth on"},
            ),
        ),
    }


# Refusals that are not the API's structured errors: probes that fail, as Kubernetes
# reads them.
_FAILED = {"const": "failed", "description": "the log failed: only a restart brings it back"}
_REASON = {"type": "string", "description": "why the log failed (not shown with auth on)"}
_PROBE_FAILURES: dict[str, dict[str, Any]] = {
    "/health": {
        "description": "the node's log failed",
        "content": {
            "application/json": {"schema": _object(["status"], status=_FAILED, reason=_REASON)}
        },
    },
    "/ready": {
        "description": "not ready: still recovering (not_ready), or its log failed (failed)",
        "content": {
            "application/json": {
                "schema": _object(
                    ["status"],
                    status={"type": "string", "enum": ["not_ready", "failed"]},
                    sequence={**_COUNT, "description": "not_ready only; not shown with auth on"},
                    reason=_REASON,
                )
            }
        },
    },
    **dict.fromkeys(
        ("/qdrant/healthz", "/qdrant/livez", "/qdrant/readyz"),
        {
            "description": "not alive (the log failed) or, for readyz, not ready",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
    ),
}


@dataclass(frozen=True)
class _Knobs:
    """The settings the document shows."""

    metrics_enabled: bool
    metrics_public: bool
    max_search_limit: int
    max_batch_points: int
    max_batch_searches: int
    max_batch_results: int

    @classmethod
    def of(cls, conf: Settings) -> _Knobs:
        return cls(
            conf.metrics_enabled,
            conf.metrics_public,
            conf.max_search_limit,
            conf.max_batch_points,
            conf.max_batch_searches,
            conf.max_batch_results,
        )


def _constraints(k: _Knobs) -> dict[type[msgspec.Struct], dict[str, dict[str, Any]]]:
    """What the server checks of each body's fields after decoding it, as JSON Schema
    (merged into the field's schema: into its non-null branch when it may be null)."""
    limit = k.max_search_limit
    epoch = {"type": "integer", "minimum": 0, "maximum": EPOCH_MAX}
    vector = {"minItems": 1, "items": {"type": "number"}}
    return {
        schemas.CreateCollection: {
            "name": COLLECTION_NAME,
            "dimension": {"minimum": 1, "maximum": validation.MAX_DIMENSION},
            "metric": {"enum": [m.value for m in Metric]},
            "index": {"enum": [i.value for i in IndexKind]},
            "payload_indexes": {"additionalProperties": _PAYLOAD_INDEX},
        },
        schemas.HnswIn: {
            name: {"minimum": lo, "maximum": hi} for name, (lo, hi) in HNSW_RANGES.items()
        },
        schemas.CreatePayloadIndex: {"schema": _PAYLOAD_INDEX},
        schemas.PointIn: {"id": POINT_ID, "vector": vector},
        schemas.UpsertPoints: {"vectors": {"minItems": 1, "maxItems": k.max_batch_points}},
        schemas.UpdatePoint: {"vector": vector},
        schemas.DeletePoints: {"ids": {"items": POINT_ID}},
        schemas.Search: {
            "vector": vector,
            "limit": {"minimum": 1, "maximum": limit},
            "offset": {"minimum": 0, "maximum": limit},
            "ef": {"minimum": EF_RANGE[0], "maximum": EF_RANGE[1]},
        },
        schemas.BatchSearch: {
            "collection": COLLECTION_NAME,
            "queries": {"maxItems": k.max_batch_searches},
        },
        schemas.CreateKey: {
            "name": {"pattern": f"^{keys.KEY_NAME.pattern}$"},
            "role": {"enum": [r.value for r in Role]},
            "collections": {
                "minItems": 1,
                "maxItems": keys.MAX_KEY_COLLECTIONS,
                "items": COLLECTION_NAME,
            },
            "rate_limit_rps": {"minimum": MIN_RPS, "maximum": keys.MAX_KEY_RATE},
            "rate_limit_burst": {"minimum": 1, "maximum": keys.MAX_KEY_RATE},
        },
        schemas.RotateKey: {"grace_s": {"minimum": 0, "maximum": keys.MAX_GRACE_S}},
        # The replication bodies decode their values as they come (the manager checks
        # them): their types are all here.
        schemas.Promote: {"epoch": epoch},
        schemas.Follow: {
            "primary_url": {"type": "string", "pattern": "^https?://"},
            "epoch": epoch,
        },
        schemas.Fence: {"epoch": {**epoch, "type": ["integer", "null"]}},
    }


Ref = Callable[[type[msgspec.Struct]], dict[str, str]]  # a struct's component


def _qdrant_constraints(
    k: _Knobs, ref: Ref
) -> dict[type[msgspec.Struct], dict[str, dict[str, Any]]]:
    """What the Qdrant views check of each body's fields after decoding it
    (``qdrant.models``, ``qdrant.groups``, ``views._batch``), as JSON Schema. A
    ``default`` is the value the server takes for a field left out or null."""
    limit, results = k.max_search_limit, k.max_batch_results
    batch = {
        "maxItems": k.max_batch_searches,
        "description": f"their limits and offsets (and their prefetches') add up to at most "
        f"{results}",
    }
    found = {"minimum": 1, "maximum": limit}  # (``models._search``)
    paged = {"limit": found, "offset": {"minimum": 0, "maximum": limit}}
    listed = {**found, "default": DEFAULT_LIMIT}  # (a limit the server defaults)
    # A grouped search's limit x group_size is at most max_batch_results (each is 1 at least).
    per_group = {"minimum": 1, "maximum": min(limit, results)}
    product = f"limit x group_size is at most {results}"
    groups: dict[str, dict[str, Any]] = {  # (the legacy forms': both required)
        "limit": per_group,
        "group_size": {**per_group, "description": product},
    }
    defaulted = {  # (a universal query's: the server defaults them)
        "limit": {**groups["limit"], "default": DEFAULT_LIMIT},
        "group_size": {**groups["group_size"], "default": DEFAULT_GROUP_SIZE},
    }

    # A query's prefetches (one or a list: ``models._listed_prefetches``) are searches of
    # its batch (``views._batch``) as the query is, and each asks for a result at least.
    def prefetches(most: int) -> dict[str, Any]:
        one = ref(qdrant.Prefetch)
        many = {"type": "array", "items": one, "maxItems": max(most, 0)}
        return {"anyOf": [*([one] if most > 0 else []), many, {"type": "null"}]}

    under = k.max_batch_searches - 1  # beside the query
    points = {"minItems": 1, "maxItems": k.max_batch_points}  # (``models.upsert_points``)
    hnsw_m, ef_construction = HNSW_RANGES["m"], HNSW_RANGES["ef_construction"]
    return {
        qdrant.SearchRequest: paged,
        qdrant.RecommendRequest: paged,
        qdrant.DiscoverRequest: paged,
        qdrant.QueryRequest: {
            "limit": listed,
            "offset": paged["offset"],
            "prefetch": prefetches(under),
        },
        qdrant.Prefetch: {
            "limit": {**listed, "maximum": min(limit, results - 1)},
            "prefetch": prefetches(under - 1),  # (beside the query and this prefetch)
        },
        qdrant.SearchRequestBatch: {"searches": batch},
        qdrant.RecommendRequestBatch: {"searches": batch},
        qdrant.DiscoverRequestBatch: {"searches": batch},
        qdrant.QueryRequestBatch: {"searches": batch},
        qdrant.SearchGroupsRequest: groups,
        qdrant.RecommendGroupsRequest: groups,
        qdrant.QueryGroupsRequest: {**defaulted, "prefetch": prefetches(under)},
        qdrant.SearchParams: {"hnsw_ef": {"minimum": EF_RANGE[0], "maximum": EF_RANGE[1]}},
        qdrant.ScrollRequest: {"limit": listed},
        qdrant.FacetRequest: {"limit": listed},
        # (``models.search_matrix``: a search per sampled point, as in a batch)
        qdrant.SearchMatrixRequest: {
            "sample": {"minimum": 1, "maximum": min(k.max_batch_searches, results)},
            "limit": {
                "minimum": 1,
                "maximum": results,
                "description": f"sample x limit is at most {results}",
            },
        },
        qdrant.Upsert: {"points": points, "update_mode": {"enum": list(WRITE_MODES)}},
        qdrant.Batch: {"ids": points},
        qdrant.UpdateVectors: {"points": points},
        # (``models._hnsw``: m 0 is an exact index; the engine checks the rest)
        qdrant.HnswConfigDiff: {
            "m": {"anyOf": [{"const": 0}, {"minimum": hnsw_m[0], "maximum": hnsw_m[1]}]},
            "ef_construct": {"minimum": ef_construction[0], "maximum": ef_construction[1]},
        },
        qdrant.DenseVectorConfig: {
            "size": {"minimum": 1, "maximum": validation.MAX_DIMENSION},
            "distance": {"enum": list(METRICS)},
        },
        qdrant.SnapshotRecover: {"priority": {"enum": sorted(PRIORITIES)}},
    }


def _given(name: str) -> dict[str, Any]:
    """A body with ``name``, not null (its other fields as the body's schema says: open
    here, this schema being one of several the body must pass)."""
    return {
        "required": [name],
        "properties": {name: {"not": {"type": "null"}}},
        "additionalProperties": True,
    }


def _shapes(ref: Ref) -> dict[type[msgspec.Struct], dict[str, Any]]:
    """Which fields a body must give, checked after decoding it (each may be null or left
    out, as the struct has it, but not all of them), and what the operations of a points
    batch are (``views.batch_update``), as JSON Schema merged into the body's."""
    from vectorizer.qdrant.views import BATCH_OPERATIONS

    ids_or_filter = {"anyOf": [_given("points"), _given("filter")]}  # (``models.selection``)
    return {
        # one of the three (``views.aliases.alias_actions``)
        schemas.AliasOperation: {
            "oneOf": [_given(a) for a in ("create_alias", "delete_alias", "rename_alias")]
        },
        schemas.DeletePoints: {"oneOf": [_given("ids"), _given("filter")]},
        qdrant.Upsert: {"oneOf": [_given("points"), _given("batch")]},
        qdrant.CreateVectorName: {"oneOf": [_given("dense"), _given("sparse")]},
        qdrant.PointsSelector: ids_or_filter,
        qdrant.SetPayload: ids_or_filter,
        qdrant.DeletePayload: ids_or_filter,
        qdrant.DeleteVectors: ids_or_filter,
        # an object with one key of views.BATCH_OPERATIONS, that operation's body
        qdrant.UpdateOperations: {
            "properties": {
                "operations": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "minProperties": 1,
                        "maxProperties": 1,
                        "properties": {
                            key: ref(body) for key, (body, _) in BATCH_OPERATIONS.items()
                        },
                        "additionalProperties": False,
                    },
                }
            }
        },
    }


# Fields the server requires that the body's struct leaves to the check after it (so
# that a missing one is refused in the same words as a wrong one).
_REQUIRED: dict[type[msgspec.Struct], list[str]] = {
    schemas.Promote: ["epoch"],
    schemas.Follow: ["primary_url", "epoch"],
}


def _by_name(struct: type[msgspec.Struct]) -> dict[str, str]:
    """A reference to ``struct``'s component by its own name (only to list the structs
    the constraints are about, before msgspec names their components)."""
    return _ref(struct.__name__)


def _constrain(schema: dict[str, Any], extra: dict[str, Any]) -> None:
    """``extra`` merged into a field's ``schema`` (into its non-null branch when it may be
    null); its ``default`` and ``description`` are the field's."""
    extra = dict(extra)
    said: dict[str, Any] = {
        key: extra.pop(key) for key in ("default", "description") if key in extra
    }
    branches, into = schema.get("anyOf"), schema
    if branches is not None:
        typed = [b for b in branches if b != {"type": "null"}]
        if len(typed) == 1 and "$ref" not in typed[0]:
            into = typed[0]
    into.update(extra)
    schema.update(said)
    _default_within(schema, into.get("maximum"))


def _default_within(schema: dict[str, Any], maximum: int | None = None) -> dict[str, Any]:
    """``schema``, its default said in words when a node's limit (its ``maximum``, or
    ``maximum``) is set below it (a default must be valid): the default still applies, and
    is then refused (a search's ``limit``) or answered as it is (a listing's)."""
    default = schema.get("default")
    maximum = schema.get("maximum", maximum)
    if isinstance(default, int) and maximum is not None and default > maximum:
        given = schema.pop("default")
        said = schema.get("description")
        schema["description"] = f"{given} when not given" + (f"; {said}" if said else "")
    return schema


# The body that is not JSON: a snapshot file, as Qdrant's upload takes it.
_UPLOAD_ROUTE = ("POST", "/qdrant/collections/{name}/snapshots/upload")
_UPLOAD: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": _object(
                ["snapshot"],
                snapshot={"type": "string", "contentMediaType": "application/octet-stream"},
            ),
            "encoding": {"snapshot": {"contentType": "application/octet-stream"}},
        }
    },
}


def build(conf: Settings | None = None) -> dict[str, Any]:
    """The document for a node with these settings (by default the defaults)."""
    return _build(_Knobs.of(Settings() if conf is None else conf))


@functools.lru_cache(maxsize=8)
def _build(k: _Knobs) -> dict[str, Any]:
    from vectorizer.qdrant.routes import REQUEST_BODIES as QDRANT_BODIES
    from vectorizer.qdrant.routes import ROUTES as QDRANT_ROUTES
    from vectorizer.replication.views import REQUEST_BODIES as REPLICATION_BODIES
    from vectorizer.replication.views import ROUTES as REPLICATION_ROUTES
    from vectorizer.server.routes import ROUTES

    bodies = {**REQUEST_BODIES, **REPLICATION_BODIES, **QDRANT_BODIES}
    native = _constraints(k)
    named: list[type[msgspec.Struct]] = [
        *bodies.values(),
        *native,
        *_qdrant_constraints(k, _by_name),
        *_shapes(_by_name),
        Point,
        ScoredPoint,
    ]
    structs = sorted(set(named), key=lambda s: f"{s.__module__}.{s.__name__}")
    # msgspec names each component (qualified where two modules use one name): use its refs.
    refs, components = msgspec.json.schema_components(
        structs, ref_template="#/components/schemas/{name}"
    )
    ref_of = dict(zip(structs, refs, strict=True))

    def ref(struct: type[msgspec.Struct]) -> dict[str, str]:
        return {**ref_of[struct]}

    constraints = {**native, **_qdrant_constraints(k, ref)}
    shapes = _shapes(ref)
    for struct, fields in constraints.items():
        properties = components[ref_of[struct]["$ref"].rsplit("/", 1)[1]]["properties"]
        for name, extra in fields.items():
            if struct in _REQUIRED:  # (values taken as they come: the schema is all here)
                properties[name] = {**extra}
            else:
                _constrain(properties[name], extra)
    for struct, required in _REQUIRED.items():
        components[ref_of[struct]["$ref"].rsplit("/", 1)[1]]["required"] = required
    for struct, shape in shapes.items():
        component = components[ref_of[struct]["$ref"].rsplit("/", 1)[1]]
        for key, value in shape.items():
            if key == "properties":
                component["properties"].update(value)
            else:
                component[key] = value
    components.update(_response_components())
    components["Error"] = _ERROR
    components["QdrantError"] = _QDRANT_ERROR
    components["QdrantResponse"] = _QDRANT_RESPONSE
    components["QdrantVersion"] = _object(
        ["title", "version"], title={"type": "string"}, version={"type": "string"}
    )
    responses, query = _responses(), _query_parameters(k)
    paths: dict[str, dict[str, Any]] = {}
    tables = (("", ROUTES), ("replication_", REPLICATION_ROUTES), ("qdrant_", QDRANT_ROUTES))
    for api, routes in tables:
        for route in routes:
            assert isinstance(route, web.RouteDef)
            method, path = route.method.upper(), route.path
            if path == "/metrics" and not k.metrics_enabled:
                continue  # (not served: a 404)
            op = _operation(
                api,
                method,
                path,
                route.handler,
                responses.get((method, path)),
                query.get((method, path), {}),
            )
            body = bodies.get((method, path))
            if body is not None:
                op["requestBody"] = {
                    "required": not body.BODY_OPTIONAL,  # type: ignore[attr-defined]
                    "content": {"application/json": {"schema": ref_of[body]}},
                }
            if (method, path) == _UPLOAD_ROUTE:
                op["requestBody"] = _UPLOAD
            rule = rule_for(method, path)
            if rule is not None and is_public(rule, k.metrics_public):
                op["security"] = []
            paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Vectorizer", "version": __version__},
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": _SECURITY_SCHEMES},
        # Needed only when the node runs with auth_enabled (see SECURITY.md).
        "security": [{"apiKey": []}, {"bearer": []}],
    }


def _query_parameters(k: _Knobs) -> dict[tuple[str, str], dict[str, dict[str, Any]]]:
    """The query parameters the native views read (``views.common.query_int`` and
    ``query_bool``) and the Qdrant snapshot routes'."""
    wait = _RECOVERY["wait"]
    return {
        ("GET", "/collections/{name}/vectors"): {
            "limit": _default_within(
                {"type": "integer", "minimum": 1, "maximum": k.max_search_limit, "default": 100}
            ),
            "offset": POINT_ID,
            "with_vector": {**_BOOL, "default": False},
            "with_payload": {**_BOOL, "default": True},
        },
        ("GET", "/collections/{name}/vectors/{id}"): {"with_vector": {**_BOOL, "default": True}},
        ("POST", "/qdrant/collections/{name}/snapshots"): {"wait": wait},
        ("PUT", "/qdrant/collections/{name}/snapshots/recover"): {"wait": wait},
        ("POST", "/qdrant/collections/{name}/snapshots/upload"): _RECOVERY,
        ("POST", "/qdrant/snapshots"): {"wait": wait},
    }


_SENTENCE = re.compile(r"(.+?\.)(?=\s|$)")


def _summary(handler: Any) -> tuple[str, str | None]:
    """The operation's summary (its view's docstring's first sentence, whole) and, when
    the docstring says more, the docstring as its description."""
    doc = inspect.getdoc(handler) or handler.__name__.replace("_", " ")
    doc = doc.replace("``", "`")
    first = " ".join(doc.split("\n\n", 1)[0].split())
    m = _SENTENCE.match(first)
    summary = m.group(1) if m else first
    return summary, (doc if summary != " ".join(doc.split()) else None)


def _operation(
    api: str,
    method: str,
    path: str,
    handler: Any,
    success: tuple[str, dict[str, Any]] | None,
    query: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """An operation without its body: id (the API's prefix, the method and the handler:
    unique, as OpenAPI wants), summary, parameters and responses."""
    error = "QdrantError" if api == "qdrant_" else "Error"
    summary, description = _summary(handler)
    if path in PLAIN_TEXT:
        content: dict[str, Any] = {"text/plain": {"schema": {"type": "string"}}}
    elif (method, path) in FILES:
        content = {"application/octet-stream": {}}
    elif api == "qdrant_":  # Qdrant's envelope (its root is not enveloped)
        shape = "QdrantVersion" if path in ("/qdrant", "/qdrant/") else "QdrantResponse"
        content = {"application/json": {"schema": _ref(shape)}}
    else:
        content = {"application/json": {}}
    status = "2XX"
    if success is not None:
        status, schema = success
        content = {"application/json": {"schema": schema}}
    responses: dict[str, Any] = {"description": "success", "content": content}
    op: dict[str, Any] = {
        "operationId": f"{api}{method.lower()}_{handler.__name__}",
        "summary": summary,
        "responses": {status: responses},
    }
    if description is not None:
        op["description"] = description
    if path in _PROBE_FAILURES:
        op["responses"]["503"] = _PROBE_FAILURES[path]
    if (method, path) in FILES:
        op["responses"]["416"] = _UNSATISFIABLE
    op["responses"]["default"] = {
        "description": "structured error",
        "content": {"application/json": {"schema": _ref(error)}},
    }
    parameters = [
        {"name": p.strip("{}"), "in": "path", "required": True, "schema": {"type": "string"}}
        for p in path.split("/")
        if p.startswith("{")
    ]
    for name, schema in query.items():
        parameters.append({"name": name, "in": "query", "required": False, "schema": schema})
    if (method, path) in FILES:
        parameters.append(_RANGE)
    if parameters:
        op["parameters"] = parameters
    return op


# A file download takes a byte range (RFC 9110, served by aiohttp's FileResponse): 206
# with that part, or 416 when the range is past the file's end, with no body (not a
# Qdrant error: the answer a client's range logic expects, the file's size in
# Content-Range).
_RANGE: dict[str, Any] = {
    "name": "Range",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "examples": ["bytes=0-1023"]},
}
_UNSATISFIABLE: dict[str, Any] = {
    "description": "the range is not within the file: an empty body, and the file's size "
    "in Content-Range",
    "headers": {
        "Content-Range": {"schema": {"type": "string", "examples": ["bytes */4096"]}},
    },
}


async def document(request: web.Request) -> web.Response:
    """This OpenAPI document."""
    return json_response(build(request.app[SETTINGS]))
