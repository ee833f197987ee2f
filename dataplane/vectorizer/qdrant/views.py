"""Qdrant-compatible views: parse the Qdrant body, call the engine, wrap the result.

Each view returns the bare ``result``; ``qdrant_view`` adds Qdrant's envelope
(``{"result", "status": "ok", "time"}``) and turns domain errors into Qdrant's
statuses. The error middleware renders them in Qdrant's error shape.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

from aiohttp import web

from vectorizer.engine import grouping
from vectorizer.engine.collection import Collection
from vectorizer.engine.filters import Predicate, compile_filter
from vectorizer.engine.store import Store
from vectorizer.engine.validation import PointId
from vectorizer.errors import CollectionNotFound, ValidationError, VectorizerError
from vectorizer.qdrant import groups, models, names, responses, schemas
from vectorizer.qdrant.errors import collection_not_found, for_qdrant, point_not_found
from vectorizer.qdrant.searching import (
    distance_matrix,
    lookup_names,
    plain_nearest,
    run_search,
    run_searches,
    scored_points,
)
from vectorizer.security.limits import check_batch
from vectorizer.security.roles import Permission
from vectorizer.server.exchange import inserted, searched
from vectorizer.server.http import check_answer_fits, convert_as, json_response, read_as
from vectorizer.server.keys import SEARCH_BATCHER, SETTINGS, STORE
from vectorizer.server.middlewares.auth import authorize_also
from vectorizer.server.schemas import ChangeAliases
from vectorizer.server.views.aliases import alias_actions
from vectorizer.server.views.health import state_shown

T = TypeVar("T")
QdrantHandler = Callable[[web.Request], Awaitable[Any]]


def qdrant_view(handler: QdrantHandler) -> Callable[[web.Request], Awaitable[web.Response]]:
    @functools.wraps(handler)
    async def view(request: web.Request) -> web.Response:
        started = time.perf_counter()
        try:
            result = await handler(request)
        except VectorizerError as err:
            raise for_qdrant(err, request.match_info.get("name")) from None
        if result is responses.ACCEPTED:
            return json_response(responses.accepted(started), status=202)
        return json_response(responses.envelope(result, started))

    return view


def _store(request: web.Request) -> Store:
    return request.app[STORE]


def _collection(request: web.Request) -> Collection:
    return _store(request).collection(request.match_info["name"])


def _named(request: web.Request) -> str:
    """The collection (or alias) a write names, as the store takes it: resolved when the
    write commits, not before its wait for a snapshot (an alias moved meanwhile, by a
    change acknowledged first, would have had the write land in the old collection)."""
    return request.match_info["name"]


async def _body(request: web.Request, kind: type[T]) -> T:
    """The body as ``kind`` (``read_as``: absent, if ``kind`` allows it, all defaults).
    The collection's dense vector is ``""`` in it, whatever its name (``names``)."""
    return _by_default_name(request, await read_as(request, kind))


def _by_default_name(request: web.Request, body: T) -> T:
    name = request.match_info.get("name")
    if name is None:
        return body
    try:
        coll = _store(request).collection(name)
    except VectorizerError:  # (no such collection yet: the view says so, if it must)
        return body
    return names.by_default_name(coll, body)


# ---- service ----------------------------------------------------------------------------


async def root(request: web.Request) -> web.Response:
    """Server title and the Qdrant API version this layer follows (not enveloped)."""
    return json_response(responses.version_info())


async def root_slash(request: web.Request) -> web.Response:
    """The same as ``GET /qdrant`` (the client asks for both spellings)."""
    return await root(request)


async def healthz(request: web.Request) -> web.Response:
    """Qdrant's liveness probe, in plain text: the process answers; 503 once its log
    has failed (as the native ``/health``)."""
    return _alive(request, "healthz")


async def livez(request: web.Request) -> web.Response:
    """Qdrant's other name for ``/healthz``."""
    return _alive(request, "livez")


def _alive(request: web.Request, probe: str) -> web.Response:
    failure = _store(request).failure
    if failure is not None:  # (why, only where /health says it: not with auth on)
        why = f": {failure}" if state_shown(request) else ""
        return web.Response(text=f"log failed{why}", status=503)
    return web.Response(text=f"{probe} check passed")


async def readyz(request: web.Request) -> web.Response:
    """Qdrant's readiness probe, in plain text: recovered and not shutting down (as the
    native ``/ready``)."""
    s = _store(request)
    if s.failure is not None or not s.ready:
        return web.Response(text="some shards are not ready", status=503)
    return web.Response(text="all shards are ready")


# ---- collections ------------------------------------------------------------------------


@qdrant_view
async def list_collections(request: web.Request) -> Any:
    """List collection names."""
    return {"collections": [{"name": c.name} for c in _store(request).collections()]}


@qdrant_view
async def create_collection(request: web.Request) -> Any:
    """Create a collection: its dense vectors (one unnamed, or any by name) and any
    sparse vectors."""
    body = await _body(request, schemas.CreateCollection)
    await _store(request).create_collection(
        request.match_info["name"], models.collection_config(body)
    )
    return True


@qdrant_view
async def get_collection(request: web.Request) -> Any:
    """Collection info: size, configuration and status."""
    settings = request.app[SETTINGS]
    return responses.collection_info(
        _collection(request), settings.fsync_policy, settings.wal_segment_bytes
    )


@qdrant_view
async def update_collection(request: web.Request) -> Any:
    """Accept an update that changes nothing stored (optimizer, quantization and storage
    knobs, or the settings the collection already has); refuse one that would."""
    body = await _body(request, schemas.UpdateCollection)
    models.check_update(body, _collection(request).config)
    return True


@qdrant_view
async def delete_collection(request: web.Request) -> Any:
    """Delete a collection; false when there was none."""
    try:
        await _store(request).delete_collection(request.match_info["name"])
    except CollectionNotFound:
        return False
    return True


@qdrant_view
async def update_aliases(request: web.Request) -> Any:
    """Create, delete and rename aliases: all of the actions, in order, or none."""
    body = await _body(request, ChangeAliases)
    await _store(request).update_aliases(alias_actions(body))
    return True


@qdrant_view
async def list_aliases(request: web.Request) -> Any:
    """Every alias and the collection it names."""
    return responses.aliases(_store(request).aliases())


@qdrant_view
async def collection_aliases(request: web.Request) -> Any:
    """The aliases of one collection."""
    return responses.aliases(_store(request).aliases(_collection(request).name))


@qdrant_view
async def collection_exists(request: web.Request) -> Any:
    """Whether a collection exists."""
    try:
        _collection(request)
    except CollectionNotFound:
        return {"exists": False}
    return {"exists": True}


@qdrant_view
async def create_field_index(request: web.Request) -> Any:
    """Index the values at a payload key: filters on it then read only the points it
    names (the type is inferred from the stored values when not given)."""
    body = await _body(request, schemas.CreateFieldIndex)
    seq = await _store(request).create_field_index(
        _named(request), body.field_name, body.field_schema
    )
    return responses.update_result(seq)


@qdrant_view
async def delete_field_index(request: web.Request) -> Any:
    """Drop the index at a payload key."""
    field_name = request.match_info["field_name"]
    seq = await _store(request).delete_field_index(_named(request), field_name)
    return responses.update_result(seq)


@qdrant_view
async def create_vector_name(request: web.Request) -> Any:
    """Add a named vector (dense or sparse) to a collection; its points have none yet."""
    body = await read_as(request, schemas.CreateVectorName)
    dense, sparse = models.vector_name_config(body)
    vector_name = request.match_info["vector_name"]
    seq = await _store(request).add_vector(_named(request), vector_name, dense, sparse)
    return responses.update_result(seq)


@qdrant_view
async def delete_vector_name(request: web.Request) -> Any:
    """Remove a named vector from a collection and its points (none: nothing to do)."""
    vector_name = request.match_info["vector_name"]
    seq = await _store(request).drop_vector(_named(request), vector_name)
    return responses.update_result(seq)


# ---- point writes -----------------------------------------------------------------------
# Each write is two functions: a plan, which checks everything about the operation that
# the request alone can refuse (ids, filters, keys, vectors) and changes nothing, and a
# write of that plan, which returns the sequence it committed. The single-operation
# routes and ``POST /points/batch`` share them; the batch plans every operation before
# it writes any, so a malformed one changes nothing.


@dataclasses.dataclass(frozen=True)
class _Targets:
    """The points a delete or payload write names: ``ids``, or those ``predicate``
    accepts (None: every point), and what it writes or removes there."""

    ids: list[PointId] | None
    predicate: Predicate | None
    payload: dict[str, Any] = dataclasses.field(default_factory=dict)
    key: str | None = None  # set_payload's path to merge the payload under
    names: list[str] = dataclasses.field(default_factory=list)  # payload keys, vector names


def _targets(sel: models.Selection, **what: Any) -> _Targets:
    """``sel`` with its filter compiled (the filter's errors are the request's)."""
    predicate = None if sel.ids is not None else compile_filter(sel.filter)
    return _Targets(sel.ids, predicate, **what)


def _everywhere(predicate: Predicate | None) -> Predicate:
    return predicate or (lambda _pid, _payload: True)


def _plan_upsert(request: web.Request, body: schemas.Upsert) -> models.PointsIn:
    return models.upsert_points(body, request.app[SETTINGS].max_batch_points)


async def _upsert(request: web.Request, points: models.PointsIn) -> int:
    seq, written = await _store(request).upsert_if(
        request.match_info["name"],
        points.ids,
        points.vectors,
        points.payloads,
        field=points.field,
        condition=points.condition,
        mode=points.mode,
        named=points.named,
    )
    inserted(request, written)
    return seq


def _plan_delete(request: web.Request, body: schemas.PointsSelector) -> _Targets:
    return _targets(models.selection(body.points, body.filter, body.shard_key))


async def _delete(request: web.Request, plan: _Targets) -> int:
    store, name = _store(request), request.match_info["name"]
    if plan.ids is not None:
        return (await store.delete_points(name, plan.ids))[1]
    assert plan.predicate is not None  # (a selection without ids has a filter)
    return (await store.delete_matching(name, plan.predicate))[1]


def _plan_set_payload(request: web.Request, body: schemas.SetPayload) -> _Targets:
    sel = models.set_payload(body, overwrite=False)
    return _targets(sel, payload=body.payload, key=body.key)


def _plan_overwrite_payload(request: web.Request, body: schemas.SetPayload) -> _Targets:
    return _targets(models.set_payload(body, overwrite=True), payload=body.payload)


def _plan_clear_payload(request: web.Request, body: schemas.PointsSelector) -> _Targets:
    return _targets(models.selection(body.points, body.filter, body.shard_key))


async def _set_payload(request: web.Request, plan: _Targets) -> int:
    return await _write_payload(request, plan, overwrite=False)


async def _overwrite_payload(request: web.Request, plan: _Targets) -> int:
    """Replace the payloads (clear_payload: with an empty one)."""
    return await _write_payload(request, plan, overwrite=True)


async def _write_payload(request: web.Request, plan: _Targets, *, overwrite: bool) -> int:
    store, name = _store(request), _named(request)
    if plan.ids is None:
        written = await store.set_payload_matching(
            name, _everywhere(plan.predicate), plan.payload, overwrite=overwrite, key=plan.key
        )
        return written[1]
    if not plan.ids:
        seq = await store.settled()  # (also before refusing: see ``Store.settled``)
        _collection(request)  # (it must exist)
        return seq
    return await store.set_payload(name, plan.ids, plan.payload, overwrite=overwrite, key=plan.key)


def _plan_delete_payload(request: web.Request, body: schemas.DeletePayload) -> _Targets:
    sel, keys = models.delete_payload(body)
    return _targets(sel, names=keys)


async def _delete_payload(request: web.Request, plan: _Targets) -> int:
    _, seq = await _store(request).delete_payload(
        request.match_info["name"], plan.ids, plan.predicate, plan.names
    )
    return seq


def _plan_update_vectors(request: web.Request, body: schemas.UpdateVectors) -> models.VectorsIn:
    return models.update_vectors(body, request.app[SETTINGS].max_batch_points)


async def _update_vectors(request: web.Request, given: models.VectorsIn) -> int:
    seq, written = await _store(request).update_vectors(
        request.match_info["name"],
        given.ids,
        given.dense,
        condition=given.condition,
        named=given.named,
    )
    inserted(request, written)
    return seq


def _plan_delete_vectors(request: web.Request, body: schemas.DeleteVectors) -> _Targets:
    sel, names = models.delete_vectors(body)
    return _targets(sel, names=names)


async def _delete_vectors(request: web.Request, plan: _Targets) -> int:
    predicate = None if plan.ids is not None else _everywhere(plan.predicate)
    _, seq = await _store(request).delete_vectors(
        request.match_info["name"], plan.ids, predicate, plan.names
    )
    return seq


Plan = Callable[[web.Request, Any], Any]
Write = Callable[[web.Request, Any], Awaitable[int]]


@dataclasses.dataclass(frozen=True)
class Operation:
    """A point write: its ``plan`` of a parsed body, then the ``write`` of that plan."""

    plan: Plan
    write: Write


# The operations of ``POST /points/batch``, by their key, with their body and operation.
BATCH_OPERATIONS: dict[str, tuple[type[Any], Operation]] = {
    "upsert": (schemas.Upsert, Operation(_plan_upsert, _upsert)),
    "delete": (schemas.PointsSelector, Operation(_plan_delete, _delete)),
    "set_payload": (schemas.SetPayload, Operation(_plan_set_payload, _set_payload)),
    "overwrite_payload": (
        schemas.SetPayload,
        Operation(_plan_overwrite_payload, _overwrite_payload),
    ),
    "delete_payload": (schemas.DeletePayload, Operation(_plan_delete_payload, _delete_payload)),
    "clear_payload": (schemas.PointsSelector, Operation(_plan_clear_payload, _overwrite_payload)),
    "update_vectors": (schemas.UpdateVectors, Operation(_plan_update_vectors, _update_vectors)),
    "delete_vectors": (schemas.DeleteVectors, Operation(_plan_delete_vectors, _delete_vectors)),
}


async def _one(request: web.Request, key: str) -> Any:
    """The batch operation ``key`` on its own: its body, one update result."""
    kind, op = BATCH_OPERATIONS[key]
    body = await _body(request, kind)
    return responses.update_result(await op.write(request, op.plan(request, body)))


@qdrant_view
async def upsert_points(request: web.Request) -> Any:
    """Insert or replace points (``points`` list or ``batch`` columns)."""
    return await _one(request, "upsert")


@qdrant_view
async def delete_points(request: web.Request) -> Any:
    """Delete points by ids or by filter."""
    return await _one(request, "delete")


@qdrant_view
async def set_payload(request: web.Request) -> Any:
    """Merge keys into the payload of the selected points."""
    return await _one(request, "set_payload")


@qdrant_view
async def overwrite_payload(request: web.Request) -> Any:
    """Replace the whole payload of the selected points."""
    return await _one(request, "overwrite_payload")


@qdrant_view
async def delete_payload(request: web.Request) -> Any:
    """Remove keys (dotted paths reach into objects) from the selected payloads."""
    return await _one(request, "delete_payload")


@qdrant_view
async def clear_payload(request: web.Request) -> Any:
    """Empty the payload of the selected points."""
    return await _one(request, "clear_payload")


@qdrant_view
async def update_vectors(request: web.Request) -> Any:
    """Replace the vectors of existing points, keeping their payloads."""
    return await _one(request, "update_vectors")


@qdrant_view
async def delete_vectors(request: web.Request) -> Any:
    """Remove the named vectors of the selected points (the collection's own stays)."""
    return await _one(request, "delete_vectors")


@qdrant_view
async def batch_update(request: web.Request) -> Any:
    """Several writes in order, each committed on its own, as Qdrant applies them. The
    whole body is checked first, every operation planned as its own route would plan it
    (a malformed one changes nothing, as Qdrant parses the body whole); the first
    operation that fails as it runs stops the batch, and its error names it (the ones
    before it stay done)."""
    body = await _body(request, schemas.UpdateOperations)
    planned = []
    for i, operation in enumerate(body.operations):
        where = f"operations[{i}]"
        if len(operation) != 1 or next(iter(operation)) not in BATCH_OPERATIONS:
            raise ValidationError(
                f"an operation is an object with one key of {sorted(BATCH_OPERATIONS)}",
                field=where,
            )
        key, raw = next(iter(operation.items()))
        kind, op = BATCH_OPERATIONS[key]
        where = f"{where}.{key}"
        parsed = _by_default_name(request, convert_as(raw, kind, where))
        try:
            planned.append((where, op.write, op.plan(request, parsed)))
        except VectorizerError as err:
            raise _naming(err, where) from None
    results = []
    for i, (where, write, plan_of) in enumerate(planned):
        try:
            results.append(responses.update_result(await write(request, plan_of)))
        except VectorizerError as err:
            done = f"; the {i} operation(s) before it were applied" if i else ""
            raise _naming(err, where, done) from None
    return results


def _naming(err: VectorizerError, where: str, done: str = "") -> VectorizerError:
    """``err`` of the batch's operation at ``where``: its field under it, ``done`` (what
    was applied before it) said after its message."""
    field = f"{where}.{err.field}" if err.field else where
    return type(err)(f"{err.message}{done}", field=field, **err.details)


# ---- point reads ------------------------------------------------------------------------


@qdrant_view
async def get_point(request: web.Request) -> Any:
    """One point with its payload and vector."""
    coll = _collection(request)
    pid = models.path_point_id(request.match_info["id"])
    point = coll.get(pid, with_vector=True)
    if point is None:
        raise point_not_found(pid)
    record = [responses.record(point, models.PayloadSelector(True))]
    return responses.show_vectors(coll, record, models.ALL_NAMED, "with_vector")[0]


@qdrant_view
async def retrieve_points(request: web.Request) -> Any:
    """The points with the given ids (missing ids are skipped)."""
    body = await _body(request, schemas.PointRequest)
    models.no_shard_key(body.shard_key)
    ids = models.point_ids(body.ids, "ids")
    payload = models.payload_selector(body.with_payload, True)
    vector = models.with_vector(body.with_vector)
    coll = _collection(request)
    unique = dict.fromkeys(ids)
    if vector:
        check_answer_fits(request, len(unique), coll.floats_per_point)
    found = (coll.get(pid, with_vector=vector) for pid in unique)
    records = [responses.record(p, payload) for p in found if p is not None]
    return responses.show_vectors(
        coll, records, models.named_shown(body.with_vector), "with_vector"
    )


@qdrant_view
async def scroll_points(request: web.Request) -> Any:
    """A page of points in id order, optionally filtered; ``next_page_offset`` continues."""
    body = await _body(request, schemas.ScrollRequest)
    page = models.scroll(body, request.app[SETTINGS].max_search_limit)
    coll = _collection(request)
    if page.with_vector:
        check_answer_fits(request, page.limit, coll.floats_per_point)
    if page.order_by is not None:  # no next offset: pages go by order_by.start_from
        order = page.order_by
        rows = coll.ordered(
            order.key,
            page.limit,
            compile_filter(page.filter),
            descending=order.descending,
            start=order.start,
            datetimes=order.datetimes,
            with_payload=page.payload.enabled,
            with_vector=page.with_vector,
        )
        records = [responses.record(p, page.payload, value) for p, value in rows]
        return {
            "points": responses.show_vectors(coll, records, page.named_shown, "with_vector"),
            "next_page_offset": None,
        }
    points, next_offset = coll.scroll(
        page.limit,
        page.offset,
        compile_filter(page.filter),
        with_payload=page.payload.enabled,
        with_vector=page.with_vector,
    )
    records = [responses.record(p, page.payload) for p in points]
    return {
        "points": responses.show_vectors(coll, records, page.named_shown, "with_vector"),
        "next_page_offset": next_offset,
    }


@qdrant_view
async def facet(request: web.Request) -> Any:
    """The number of points for each value at a payload key, most frequent first."""
    body = await _body(request, schemas.FacetRequest)
    asked = groups.facet(body, request.app[SETTINGS].max_search_limit)
    counts = _collection(request).facet(asked.key, asked.limit, compile_filter(asked.filter))
    return responses.facet_hits(counts)


@qdrant_view
async def search_matrix_pairs(request: web.Request) -> Any:
    """Sampled points and each one's nearest among them, as (a, b, score) pairs."""
    return responses.matrix_pairs(*await _distance_matrix(request))


@qdrant_view
async def search_matrix_offsets(request: web.Request) -> Any:
    """Sampled points and each one's nearest among them, as offsets into their ids."""
    return responses.matrix_offsets(*await _distance_matrix(request))


async def _distance_matrix(
    request: web.Request,
) -> tuple[list[PointId], list[list[tuple[PointId, float]]]]:
    body = await _body(request, schemas.SearchMatrixRequest)
    conf = request.app[SETTINGS]
    ask = models.search_matrix(body, conf.max_batch_searches, conf.max_batch_results)
    coll = _collection(request)
    await coll.graphs_settled()
    ids, rows = distance_matrix(coll, ask)
    searched(request, *map(len, rows))
    return ids, rows


@qdrant_view
async def count_points(request: web.Request) -> Any:
    """Count the points matching a filter (always exact)."""
    body = await _body(request, schemas.CountRequest)
    models.no_shard_key(body.shard_key)
    coll = _collection(request)
    return {"count": coll.count(compile_filter(models.canonical_filter(body.filter)))}


# ---- search -----------------------------------------------------------------------------


@qdrant_view
async def search_points(request: web.Request) -> Any:
    """Nearest neighbours of a vector (the legacy search API)."""
    return await _search_one(request, schemas.SearchRequest, models.search_request)


@qdrant_view
async def search_batch(request: web.Request) -> Any:
    """Several legacy searches in one request; one bad search fails the whole batch."""
    return await _search_many(request, schemas.SearchRequestBatch, models.search_request)


@qdrant_view
async def recommend_points(request: web.Request) -> Any:
    """Points like the positive examples and unlike the negative ones (legacy form)."""
    return await _search_one(request, schemas.RecommendRequest, models.recommend_request)


@qdrant_view
async def recommend_batch(request: web.Request) -> Any:
    """Several legacy recommendations in one request; one bad one fails the whole batch."""
    return await _search_many(request, schemas.RecommendRequestBatch, models.recommend_request)


@qdrant_view
async def discover_points(request: web.Request) -> Any:
    """Legacy discovery (clients before 1.13): toward a target, within context pairs."""
    return await _search_one(request, schemas.DiscoverRequest, models.discover_request)


@qdrant_view
async def discover_batch(request: web.Request) -> Any:
    """Several legacy discoveries in one request; one bad one fails the whole batch."""
    return await _search_many(request, schemas.DiscoverRequestBatch, models.discover_request)


@qdrant_view
async def query_points(request: web.Request) -> Any:
    """Universal query, nearest-neighbour form: by vector, by point id, or no query."""
    return {"points": await _search_one(request, schemas.QueryRequest, models.query_request)}


@qdrant_view
async def query_batch(request: web.Request) -> Any:
    """Several universal queries in one request; one bad query fails the whole batch."""
    results = await _search_many(request, schemas.QueryRequestBatch, models.query_request)
    return [{"points": hits} for hits in results]


Hits = list[dict[str, Any]]
SearchOf = Callable[[Any, int], models.Search]  # a request body (and the limit cap)


class _Batch(Protocol):
    @property
    def searches(self) -> Sequence[Any]: ...


async def _search_one(request: web.Request, kind: type[Any], search_of: SearchOf) -> Hits:
    """The hits of the one search a body of ``kind`` asks for."""
    body = await _body(request, kind)
    search = search_of(body, request.app[SETTINGS].max_search_limit)
    if search.prefetch:
        _batch([search], request, "prefetch")
    coll = _searched_collection(request, [search])
    plain = plain_nearest(coll, search)
    if plain is not None:  # answered together with other searches in flight
        query, params = plain
        found = await request.app[SEARCH_BATCHER].search(coll, query, **params)
        hits = scored_points(found, search)
        if responses.reads_named(coll, search.named_shown):
            # A named vector added since (writes come between a batch's pass and this
            # turn): hits read beside the named vectors they show, in this turn.
            hits = run_search(coll, search, _lookups(request, [search]))
    else:
        await coll.graphs_settled()
        hits = run_search(coll, search, _lookups(request, [search]))
    searched(request, len(hits))
    return responses.show_vectors(coll, hits, search.named_shown, "with_vector")


async def _search_many(request: web.Request, kind: type[_Batch], search_of: SearchOf) -> list[Hits]:
    """The hits of each search in a batch body of ``kind``."""
    body = await _body(request, kind)
    max_limit = request.app[SETTINGS].max_search_limit
    searches = _batch([search_of(s, max_limit) for s in body.searches], request)
    coll = _searched_collection(request, searches)
    lookups = _lookups(request, searches)
    await coll.graphs_settled()
    results = run_searches(coll, searches, lookups)
    searched(request, *map(len, results))
    for s, hits in zip(searches, results, strict=True):
        responses.show_vectors(coll, hits, s.named_shown, "with_vector")
    return results


@qdrant_view
async def query_groups(request: web.Request) -> Any:
    """Universal query, grouped by a payload value: the best hits of the best groups."""
    return await _grouped(request, schemas.QueryGroupsRequest, groups.query_groups)


@qdrant_view
async def search_groups(request: web.Request) -> Any:
    """Legacy search, grouped by a payload value."""
    return await _grouped(request, schemas.SearchGroupsRequest, groups.search_groups)


@qdrant_view
async def recommend_groups(request: web.Request) -> Any:
    """Legacy recommendation, grouped by a payload value."""
    return await _grouped(request, schemas.RecommendGroupsRequest, groups.recommend_groups)


GroupsOf = Callable[[Any, int, int], groups.QueryGroups]  # a body, the limit cap, max hits


async def _grouped(request: web.Request, kind: type[Any], groups_of: GroupsOf) -> dict[str, Any]:
    body = await _body(request, kind)
    conf = request.app[SETTINGS]
    asked = groups_of(body, conf.max_search_limit, conf.max_batch_results)
    if asked.search.prefetch:
        _batch([asked.search], request, "prefetch")
    await _collection(request).graphs_settled()
    return _groups(request, asked)


def _groups(request: web.Request, asked: groups.QueryGroups) -> dict[str, Any]:
    """The best ``asked.limit`` groups, each with its best hits (and its lookup)."""
    conf = request.app[SETTINGS]
    shown = asked.search
    coll = _searched_collection(
        request, [dataclasses.replace(shown, limit=asked.limit * asked.group_size)]
    )
    lookup = asked.lookup
    if lookup is not None:
        looked_in = _also_read(request, lookup.collection)
    lookups = _lookups(request, [shown])
    found = grouping.search_groups(
        lambda k: run_search(coll, asked.hits(k), lookups),
        lambda hit: hit["payload"],
        asked.group_by,
        asked.group_size,
        asked.limit,
        conf.max_batch_results,
    )
    hits = {id(hit): hit for group in found for hit in group.hits}  # a hit may be in several
    for hit in hits.values():  # shown as asked (grouping needed whole payloads, no vectors)
        full = hit.pop("payload")
        if shown.payload.enabled:
            hit["payload"] = shown.payload.apply(full)
        if shown.with_vector:
            point = coll.get(hit["id"], with_vector=True)
            hit["vector"] = None if point is None else point.vector
    responses.show_vectors(coll, list(hits.values()), shown.named_shown, "with_vector")
    searched(request, len(hits))
    out = []
    for group in found:
        record = None
        if lookup is not None:
            pid = _lookup_id(group.id)
            point = None if pid is None else looked_in.get(pid, with_vector=lookup.with_vector)
            if point is not None:  # (its dense vector under its collection's name for it)
                looked = [responses.record(point, lookup.payload)]
                record = responses.show_vectors(looked_in, looked, (), "with_lookup")[0]
        out.append(responses.point_group(group.id, group.hits, record))
    return {"groups": out}


def _lookup_id(gid: str | int) -> PointId | None:
    """The point id a group's value names, if it can name one."""
    try:
        return models.point_id(gid, "id")
    except ValidationError:
        return None


def _batch(
    searches: list[models.Search], request: web.Request, field: str = "searches"
) -> list[models.Search]:
    """``searches``, once their number (prefetches count) and their results in all are
    within bounds."""
    conf = request.app[SETTINGS]
    check_batch(
        (x.limit + x.offset for s in searches for x in s.tree()),
        conf.max_batch_searches,
        conf.max_batch_results,
        conf.max_search_limit,
        field,
    )
    return searches


def _also_read(request: web.Request, name: str) -> Collection:
    """Another collection a request reads (a group lookup, a ``lookup_from``): the
    caller must be allowed to, and it must exist."""
    authorize_also(request, Permission.READ, name)
    try:
        return _store(request).collection(name)
    except CollectionNotFound:
        raise collection_not_found(name) from None


def _lookups(request: web.Request, searches: list[models.Search]) -> dict[str, Collection]:
    """The collections the ``lookup_from``s of ``searches`` name, by name."""
    return {name: _also_read(request, name) for name in lookup_names(searches)}


def _searched_collection(request: web.Request, searches: list[models.Search]) -> Collection:
    """The collection ``searches`` go to, once their answers' vectors fit in memory."""
    coll = _collection(request)
    vectors = sum(s.limit for s in searches if s.with_vector)
    check_answer_fits(request, vectors, coll.floats_per_point)
    return coll
