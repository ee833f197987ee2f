"""The OpenAPI 3 document, derived from the route tables and the request schemas."""

from __future__ import annotations

import functools
from typing import Any

import msgspec
from aiohttp import web

from vectorizer import __version__
from vectorizer.qdrant.snapshots import PRIORITIES
from vectorizer.security.permissions import rule_for
from vectorizer.security.roles import Permission
from vectorizer.server import schemas
from vectorizer.server.http import json_response

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

# Query parameters the native views read (``views.common.query_int`` / ``query_bool``)
# and the Qdrant snapshot routes'.
_ID: dict[str, Any] = {"oneOf": [{"type": "integer", "minimum": 0}, {"type": "string"}]}
_BOOL: dict[str, Any] = {"type": "boolean"}
_RECOVERY: dict[str, dict[str, Any]] = {
    "wait": _BOOL,
    "priority": {"type": "string", "enum": sorted(PRIORITIES)},
    "checksum": {"type": "string"},
}
QUERY_PARAMETERS: dict[tuple[str, str], dict[str, dict[str, Any]]] = {
    ("GET", "/collections/{name}/vectors"): {
        "limit": {"type": "integer", "minimum": 1, "default": 100},
        "offset": _ID,
        "with_vector": {**_BOOL, "default": False},
        "with_payload": {**_BOOL, "default": True},
    },
    ("GET", "/collections/{name}/vectors/{id}"): {"with_vector": {**_BOOL, "default": True}},
    ("PUT", "/qdrant/collections/{name}/snapshots/recover"): {"wait": _BOOL},
    ("POST", "/qdrant/collections/{name}/snapshots/upload"): _RECOVERY,
}

_ERROR = {
    "type": "object",
    "required": ["error", "request_id"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "field"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "field": {"type": ["string", "null"]},
                "details": {"type": "object"},  # e.g. a dimension_mismatch's expected, got
            },
        },
        "request_id": {"type": "string"},
    },
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


# Success bodies that are not JSON.
PLAIN_TEXT = frozenset({"/metrics", "/qdrant/healthz", "/qdrant/livez", "/qdrant/readyz"})

_SECURITY_SCHEMES = {
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
}


@functools.cache
def build() -> dict[str, Any]:
    from vectorizer.qdrant.routes import REQUEST_BODIES as QDRANT_BODIES
    from vectorizer.qdrant.routes import ROUTES as QDRANT_ROUTES
    from vectorizer.replication.views import ROUTES as REPLICATION_ROUTES
    from vectorizer.server.routes import ROUTES

    bodies = {**REQUEST_BODIES, **QDRANT_BODIES}
    structs = sorted(set(bodies.values()), key=lambda s: f"{s.__module__}.{s.__name__}")
    # msgspec names each component (qualified where two modules use one name): use its refs.
    refs, components = msgspec.json.schema_components(
        structs, ref_template="#/components/schemas/{name}"
    )
    ref_of = dict(zip(structs, refs, strict=True))
    components["Error"] = _ERROR
    components["QdrantError"] = _QDRANT_ERROR
    paths: dict[str, dict[str, Any]] = {}
    tables = (("", ROUTES), ("replication_", REPLICATION_ROUTES), ("qdrant_", QDRANT_ROUTES))
    for api, routes in tables:
        for route in routes:
            assert isinstance(route, web.RouteDef)
            method, path = route.method.upper(), route.path
            op = _operation(api, method, path, route.handler)
            body = bodies.get((method, path))
            if body is not None:
                op["requestBody"] = {
                    "required": not body.BODY_OPTIONAL,  # type: ignore[attr-defined]
                    "content": {"application/json": {"schema": ref_of[body]}},
                }
            rule = rule_for(method, path)
            if rule is not None and rule.permission is Permission.PUBLIC:
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


def _operation(api: str, method: str, path: str, handler: Any) -> dict[str, Any]:
    """An operation without its body: id (the API's prefix, the method and the handler:
    unique, as OpenAPI wants), summary, parameters and responses."""
    error = "QdrantError" if api == "qdrant_" else "Error"
    op: dict[str, Any] = {
        "operationId": f"{api}{method.lower()}_{handler.__name__}",
        "summary": (handler.__doc__ or handler.__name__).strip().splitlines()[0],
        "responses": {
            "2XX": {
                "description": "success",
                "content": {"text/plain" if path in PLAIN_TEXT else "application/json": {}},
            },
            "default": {
                "description": "structured error",
                "content": {
                    "application/json": {"schema": {"$ref": f"#/components/schemas/{error}"}}
                },
            },
        },
    }
    parameters = [
        {"name": p.strip("{}"), "in": "path", "required": True, "schema": {"type": "string"}}
        for p in path.split("/")
        if p.startswith("{")
    ]
    for name, schema in QUERY_PARAMETERS.get((method, path), {}).items():
        parameters.append({"name": name, "in": "query", "required": False, "schema": schema})
    if parameters:
        op["parameters"] = parameters
    return op


async def document(request: web.Request) -> web.Response:
    """This OpenAPI document."""
    return json_response(build())
