"""Tell every client how fresh this node's data is (replicas may lag their primary)."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from vectorizer.server.keys import PRINCIPAL, REPLICATION, SETTINGS


@web.middleware
async def staleness_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    if response.prepared:  # a stream (WebSocket): headers are long gone
        return response
    if request.app[SETTINGS].auth_enabled and PRINCIPAL not in request:
        return response  # strangers learn nothing about the node
    manager = request.app[REPLICATION]
    response.headers["X-Vectorizer-Role"] = manager.state.role.value
    response.headers["X-Vectorizer-Sequence"] = str(manager.store.sequence)
    ops, ms = manager.lag()
    if ops is not None and ms is not None:
        response.headers["X-Vectorizer-Lag-Operations"] = str(ops)
        response.headers["X-Vectorizer-Lag-Ms"] = f"{ms:.0f}"
    return response
