"""Count and time every HTTP request by route template and status; count error codes."""

from __future__ import annotations

import time

from aiohttp import web
from aiohttp.typedefs import Handler
from aiohttp.web_urldispatcher import SystemRoute

from vectorizer.observability.requests import INSERTED, SEARCHES
from vectorizer.server.keys import ERROR_CODE, METRICS

UNMATCHED = "unmatched"


def route_template(request: web.Request) -> str:
    """The route's template (``/collections/{name}``), never the raw path."""
    route = request.match_info.route
    if isinstance(route, SystemRoute) or route.resource is None:  # 404 / 405
        return UNMATCHED
    return route.resource.canonical


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
        route = route_template(request)
        metrics.http_requests.labels(request.method, route, str(status)).inc()
        metrics.http_latency.labels(route).observe(took)
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
