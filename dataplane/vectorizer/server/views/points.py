"""Points: batch upsert, get, atomic update, delete, list, count."""

from __future__ import annotations

from aiohttp import web

from vectorizer.engine.filters import compile_filter
from vectorizer.engine.validation import PointId, parse_path_id
from vectorizer.errors import ValidationError, VectorNotFound
from vectorizer.server.exchange import inserted
from vectorizer.server.http import check_answer_fits, json_response, read_as, struct_response
from vectorizer.server.schemas import Count, DeletePoints, UpdatePoint, UpsertPoints
from vectorizer.server.views.common import (
    path_id,
    query_bool,
    query_int,
    settings,
    store,
)


async def upsert(request: web.Request) -> web.Response:
    """Insert or replace points (a batch of them); the last of an id given twice wins."""
    name = request.match_info["name"]
    body = await read_as(request, UpsertPoints)
    limit = settings(request).max_batch_points
    if not body.vectors:
        raise ValidationError("vectors must not be empty", field="vectors")
    if len(body.vectors) > limit:
        raise ValidationError(f"at most {limit} points per request", field="vectors")
    seq = await store(request).upsert(
        name,
        [p.id for p in body.vectors],
        [p.vector for p in body.vectors],
        [p.payload for p in body.vectors],
    )
    written = len({p.id for p in body.vectors})  # (an id given twice: the last one wins)
    inserted(request, written)
    return json_response({"upserted": written, "sequence": seq})


async def get_point(request: web.Request) -> web.Response:
    """One point: its id, payload and (unless ``?with_vector=false``) vector."""
    coll = store(request).collection(request.match_info["name"])
    pid = path_id(request)
    point = coll.get(pid, with_vector=query_bool(request, "with_vector", True))
    if point is None:
        raise VectorNotFound(f"no point with id {pid!r} in {coll.name!r}", field="id")
    return struct_response(point)


async def update_point(request: web.Request) -> web.Response:
    """Replace the vector, the payload or both of an existing point, atomically."""
    body = await read_as(request, UpdatePoint)
    pid = path_id(request)
    seq = await store(request).update_point(
        request.match_info["name"], pid, body.vector, body.payload
    )
    inserted(request, 1)
    return json_response({"updated": pid, "sequence": seq})


async def delete_point(request: web.Request) -> web.Response:
    """Delete one point."""
    pid, name = path_id(request), request.match_info["name"]
    deleted, seq = await store(request).delete_points(name, [pid])
    if not deleted:
        raise VectorNotFound(f"no point with id {pid!r} in {name!r}", field="id")
    return json_response({"deleted": pid, "sequence": seq})


async def delete_points(request: web.Request) -> web.Response:
    """Delete by ``ids`` or by ``filter`` (exactly one)."""
    body = await read_as(request, DeletePoints)
    name = request.match_info["name"]
    if (body.ids is None) == (body.filter is None):
        raise ValidationError("give exactly one of ids or filter", field="ids")
    if body.ids is not None:
        deleted, seq = await store(request).delete_points(name, body.ids)
    else:
        predicate = compile_filter(body.filter)
        assert predicate is not None
        deleted, seq = await store(request).delete_matching(name, predicate)
    return json_response({"deleted": deleted, "sequence": seq})


async def list_points(request: web.Request) -> web.Response:
    """Page through points in id order: ``?limit=&offset=<id>&with_vector=``."""
    coll = store(request).collection(request.match_info["name"])
    limit = query_int(request, "limit", 100, 1, settings(request).max_search_limit)
    raw_offset = request.query.get("offset")
    offset = None if raw_offset is None else _offset(raw_offset)
    with_vector = query_bool(request, "with_vector", False)
    if with_vector:
        check_answer_fits(request, limit, coll.config.dimension)
    points, next_offset = coll.scroll(
        limit,
        offset,
        with_payload=query_bool(request, "with_payload", True),
        with_vector=with_vector,
    )
    return struct_response({"vectors": points, "next_offset": next_offset})


def _offset(raw: str) -> PointId:
    """The ``offset`` query parameter: an id, written as in a path (its errors name it)."""
    try:
        return parse_path_id(raw)
    except ValidationError as err:
        raise ValidationError(err.message, field="offset") from None


async def count(request: web.Request) -> web.Response:
    """Count the points matching a filter (all of them without one): in the collection
    of that name once the body is in (one deleted while it came is not counted)."""
    body = await read_as(request, Count)
    coll = store(request).collection(request.match_info["name"])
    return json_response({"count": coll.count(compile_filter(body.filter))})
