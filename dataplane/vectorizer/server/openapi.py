"""The OpenAPI 3 document, derived from the route tables and the request schemas."""

from __future__ import annotations

import functools
from typing import Any

import msgspec
from aiohttp import web

from vectorizer import __version__
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

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "field": {"type": ["string", "null"]},
            },
        },
        "request_id": {"type": "string"},
    },
}


# Success bodies that are not JSON.
_MEDIA_TYPES = {"/metrics": "text/plain"}

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
    paths: dict[str, dict[str, Any]] = {}
    for route in [*ROUTES, *REPLICATION_ROUTES, *QDRANT_ROUTES]:
        assert isinstance(route, web.RouteDef)
        method, path = route.method.upper(), route.path
        op: dict[str, Any] = {
            "operationId": f"{method.lower()}_{route.handler.__name__}",
            "summary": (route.handler.__doc__ or route.handler.__name__).strip().splitlines()[0],
            "responses": {
                "2XX": {
                    "description": "success",
                    "content": {_MEDIA_TYPES.get(path, "application/json"): {}},
                },
                "default": {
                    "description": "structured error",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                },
            },
        }
        params = [p.strip("{}") for p in path.split("/") if p.startswith("{")]
        if params:
            op["parameters"] = [
                {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                for p in params
            ]
        body = bodies.get((method, path))
        if body is not None:
            op["requestBody"] = {
                "required": True,
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


async def document(request: web.Request) -> web.Response:
    """This OpenAPI document."""
    return json_response(build())
