"""Count and time every HTTP request by route template and status; count error codes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.web_urldispatcher import SystemRoute

from vectorizer.server.exchange import Exchange

if TYPE_CHECKING:
    from vectorizer.observability.metrics import RequestMetrics

UNMATCHED = "unmatched"


def route_template(request: web.Request) -> str:
    """The route's template (``/collections/{name}``), never the raw path."""
    route = request.match_info.route
    if isinstance(route, SystemRoute) or route.resource is None:  # 404 / 405
        return UNMATCHED
    return route.resource.canonical


def observe_request(
    metrics: RequestMetrics, method: str, ex: Exchange, template: str, status: int, took: float
) -> None:
    metrics.request(method, template, status, took)
    if ex.searches:
        metrics.searched(ex.searches, took)
    if ex.inserted is not None:
        metrics.inserted(ex.inserted, took)
    if ex.error_code is not None:
        metrics.error(ex.error_code)
