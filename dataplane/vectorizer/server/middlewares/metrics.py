"""Count and time every HTTP request by route template and status; count error codes."""

from __future__ import annotations

import functools
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.typedefs import Handler
from aiohttp.web_urldispatcher import SystemRoute

from vectorizer.observability.requests import INSERTED, SEARCHES
from vectorizer.server.keys import ERROR_CODE, METRICS

if TYPE_CHECKING:
    from vectorizer.observability.metrics import Metrics

UNMATCHED = "unmatched"


def route_template(request: web.Request) -> str:
    """The route's template (``/collections/{name}``), never the raw path."""
    route = request.match_info.route
    if isinstance(route, SystemRoute) or route.resource is None:  # 404 / 405
        return UNMATCHED
    return route.resource.canonical


@functools.lru_cache(maxsize=4096)
def _children(metrics: Metrics, method: str, route: str, status: int) -> tuple[Any, Any]:
    """The labelled request counter and latency histogram of one kind of request
    (looking labels up in prometheus_client costs a lock and a few tuples each time).
    Routes are templates and methods and statuses few, so the cache stays small."""
    return (
        metrics.http_requests.labels(method, route, str(status)),
        metrics.http_latency.labels(route),
    )


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    metrics = request.app[METRICS]
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        took = time.perf_counter() - started
        requests, latency = _children(metrics, request.method, route_template(request), status)
        requests.inc()
        latency.observe(took)
        if searches := request.get(SEARCHES):
            metrics.search_requests.inc(len(searches))
            metrics.search_latency.observe(took)
            for n in searches:
                metrics.search_results.observe(n)
        if (points := request.get(INSERTED)) is not None:
            metrics.insert_requests.inc()
            metrics.insert_latency.observe(took)
            metrics.inserted_vectors.inc(points)
        code = request.get(ERROR_CODE)
        if code is not None:
            metrics.api_errors.labels(code).inc()
