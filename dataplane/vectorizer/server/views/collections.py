"""Collections: create, list, inspect, delete, snapshot."""

from __future__ import annotations

import msgspec
from aiohttp import web

from vectorizer.engine import validation
from vectorizer.server.http import json_response, read_as
from vectorizer.server.schemas import CreateCollection, CreatePayloadIndex
from vectorizer.server.views.common import store


async def list_collections(request: web.Request) -> web.Response:
    """Every collection, described."""
    return json_response({"collections": [c.info() for c in store(request).collections()]})


async def create_collection(request: web.Request) -> web.Response:
    """Create a collection."""
    body = await read_as(request, CreateCollection)
    validation.dimension(body.dimension)  # (0, no vector of its own, is for Qdrant's routes)
    raw = msgspec.to_builtins(body)
    coll = await store(request).create_collection(body.name, raw)
    return json_response({"collection": coll.info()}, status=201)


async def get_collection(request: web.Request) -> web.Response:
    """One collection, described."""
    return json_response(
        {"collection": store(request).collection(request.match_info["name"]).info()}
    )


async def delete_collection(request: web.Request) -> web.Response:
    """Delete a collection and its points."""
    name = request.match_info["name"]
    seq = await store(request).delete_collection(name)
    return json_response({"deleted": name, "sequence": seq})


async def create_payload_index(request: web.Request) -> web.Response:
    """Index the values at a payload key (creating it again with another type replaces it)."""
    body = await read_as(request, CreatePayloadIndex)
    name, key = request.match_info["name"], request.match_info["key"]
    seq = await store(request).create_field_index(name, key, body.schema, fields=("key", "schema"))
    index = {"key": key, "schema": body.schema, "sequence": seq}
    return json_response({"payload_index": index}, status=201)


async def delete_payload_index(request: web.Request) -> web.Response:
    """Drop the index at a payload key."""
    name, key = request.match_info["name"], request.match_info["key"]
    seq = await store(request).delete_field_index(name, key)
    return json_response({"deleted": key, "sequence": seq})


async def snapshot(request: web.Request) -> web.Response:
    """A snapshot of the node (all collections, one sequence); the collection must exist."""
    s = store(request)
    coll = s.collection(request.match_info["name"])
    info = await s.snapshot()
    return json_response({"snapshot": {**info.to_dict(), "collection": coll.name}}, status=201)
