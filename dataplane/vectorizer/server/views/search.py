"""k-NN search, single and batched."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from vectorizer.engine.collection import Collection, ScoredPoint
from vectorizer.engine.config import EF_RANGE
from vectorizer.engine.filters import compile_filter
from vectorizer.engine.validation import Matrix
from vectorizer.errors import VectorizerError
from vectorizer.security.limits import check_batch
from vectorizer.server.batching import answer_together
from vectorizer.server.exchange import searched
from vectorizer.server.http import check_answer_fits, read_as, struct_response
from vectorizer.server.keys import SEARCH_BATCHER
from vectorizer.server.schemas import BatchSearch, Search
from vectorizer.server.views.common import check_range, settings, store


def checked_query(coll: Collection, q: Search, max_limit: int) -> Matrix:
    check_range(q.limit, "limit", 1, max_limit)
    check_range(q.offset, "offset", 0, max_limit)
    if q.ef is not None:
        check_range(q.ef, "ef", *EF_RANGE)
    coll.require_own("vector")
    return coll.config.metric.vector(q.vector, coll.config.dimension)


def search_params(q: Search) -> dict[str, Any]:
    return {
        "limit": q.limit,
        "offset": q.offset,
        "ef": q.ef,
        "exact_search": q.exact,
        "threshold": q.threshold,
        "with_payload": q.with_payload,
        "with_vector": q.with_vector,
        "using": "",  # (the native API searches the collection's own vector)
    }


def _check_answers_fit(
    request: web.Request, coll: Collection, queries: list[Search], max_limit: int
) -> None:
    # (a limit over max_limit fails its own search: it counts as max_limit here)
    vectors = sum(min(q.limit, max_limit) for q in queries if q.with_vector)
    check_answer_fits(request, vectors, coll.config.dimension)


def run_search(coll: Collection, q: Search, max_limit: int) -> list[ScoredPoint]:
    query = checked_query(coll, q, max_limit)
    return coll.search(query, predicate=compile_filter(q.filter), **search_params(q))


async def search(request: web.Request) -> web.Response:
    """The nearest points to a vector."""
    body = await read_as(request, Search)
    coll = store(request).collection(request.match_info["name"])
    max_limit = settings(request).max_search_limit
    query = checked_query(coll, body, max_limit)
    if body.with_vector:
        _check_answers_fit(request, coll, [body], max_limit)
    if body.filter is None:  # answered together with other searches in flight
        results = await request.app[SEARCH_BATCHER].search(coll, query, **search_params(body))
    else:
        await coll.graphs_settled()
        results = coll.search(query, predicate=compile_filter(body.filter), **search_params(body))
    searched(request, len(results))
    return struct_response({"results": results})


async def batch_search(request: web.Request) -> web.Response:
    """Several searches in one collection; each query succeeds or fails on its own."""
    body = await read_as(request, BatchSearch)
    coll = store(request).collection(body.collection)
    conf = settings(request)
    max_limit = conf.max_search_limit
    check_batch(
        (q.limit + q.offset for q in body.queries),
        conf.max_batch_searches,
        conf.max_batch_results,
        max_limit,
        "queries",
    )
    _check_answers_fit(request, coll, body.queries, max_limit)
    await coll.graphs_settled()
    answers: dict[int, list[ScoredPoint] | VectorizerError] = {}
    plain: dict[int, tuple[Matrix, dict[str, Any]]] = {}  # answered together after
    for i, q in enumerate(body.queries):
        try:
            if q.filter is None:
                plain[i] = (checked_query(coll, q, max_limit), search_params(q))
            else:
                answers[i] = run_search(coll, q, max_limit)
        except VectorizerError as err:
            answers[i] = err
    answers.update(answer_together(coll, plain))
    results: list[dict[str, Any]] = [
        {"index": i, "status": "error", "error": found.to_dict()}
        if isinstance(found, VectorizerError)
        else {"index": i, "status": "ok", "results": found}
        for i, found in sorted(answers.items())
    ]
    searched(request, *(len(r["results"]) for r in results if r["status"] == "ok"))
    failed = sum(1 for r in results if r["status"] == "error")
    return struct_response(
        {
            "collection": coll.name,
            "count": len(results),
            "succeeded": len(results) - failed,
            "failed": failed,
            "results": results,
        }
    )
