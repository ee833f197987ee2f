"""HTTP views of the replication control and observation API, and the stream endpoint."""

from __future__ import annotations

import msgspec
from aiohttp import web

from vectorizer.errors import MalformedRequest, NotReady
from vectorizer.replication.manager import ReplicationManager
from vectorizer.server.http import json_response, read_as
from vectorizer.server.keys import REPLICATION
from vectorizer.server.middlewares.audit import audit_stream_opened
from vectorizer.server.middlewares.auth import still_admitted
from vectorizer.server.schemas import Fence, Follow, Promote


def _manager(request: web.Request) -> ReplicationManager:
    """The node's replication manager, once it has loaded its persisted role and epoch
    (while the store recovers it has not, and every answer or transition would be wrong)."""
    manager = request.app[REPLICATION]
    if not manager.started:
        raise NotReady("the node is still recovering; its replication state is not loaded")
    return manager


async def status(request: web.Request) -> web.Response:
    """Role, epoch, sequence, primary and history of this node."""
    return json_response(_manager(request).status())


async def stats(request: web.Request) -> web.Response:
    """Replication figures: lag, bytes, pending operations, connected replicas."""
    return json_response(_manager(request).stats())


async def replicas(request: web.Request) -> web.Response:
    """Every replica this primary has seen, with its status and lag."""
    described = _manager(request).hub.describe()
    return json_response({"replicas": described, "count": len(described)})


async def promote(request: web.Request) -> web.Response:
    """Become primary at a higher epoch."""
    body = await read_as(request, Promote)
    return json_response(await _manager(request).promote(body.epoch))


async def follow(request: web.Request) -> web.Response:
    """Become a replica of the given primary."""
    body = await read_as(request, Follow)
    return json_response(await _manager(request).follow(body.primary_url, body.epoch))


async def fence(request: web.Request) -> web.Response:
    """Stop taking writes at once."""
    body = await read_as(request, Fence)
    return json_response(await _manager(request).fence(body.epoch))


async def stream(request: web.Request) -> web.StreamResponse:
    """The replication stream (WebSocket): a replica follows this primary's log."""
    manager = _manager(request)  # refused before the upgrade; the replica retries
    ws = web.WebSocketResponse(max_msg_size=1 << 20)  # replicas send only small messages
    if not ws.can_prepare(request).ok:
        raise MalformedRequest("the replication stream is a WebSocket: send an upgrade request")
    await ws.prepare(request)
    audit_stream_opened(request)
    await manager.hub.serve(ws, still_admitted(request))
    await ws.close()
    return ws


ROUTES: list[web.RouteDef] = [
    web.get("/replication/status", status),
    web.get("/replication/stats", stats),
    web.get("/replication/replicas", replicas),
    web.post("/replication/promote", promote),
    web.post("/replication/follow", follow),
    web.post("/replication/fence", fence),
    web.get("/replication/stream", stream),
]

# Request body of each operation that takes one, for the OpenAPI document.
REQUEST_BODIES: dict[tuple[str, str], type[msgspec.Struct]] = {
    ("POST", "/replication/promote"): Promote,
    ("POST", "/replication/follow"): Follow,
    ("POST", "/replication/fence"): Fence,
}
