"""Liveness, readiness and node statistics."""

from __future__ import annotations

import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from vectorizer import __version__
from vectorizer.errors import RouteNotFound
from vectorizer.server.http import json_response
from vectorizer.server.keys import METRICS, SETTINGS
from vectorizer.server.views.common import store


def state_shown(request: web.Request) -> bool:
    """Whether the answer may tell the node's state (its sequence, why it failed): not
    with auth on. These routes answer everyone (probes carry no credentials) and
    authenticate no one, and strangers learn nothing of the node, as from the headers;
    callers with a credential read it at /stats and /replication/status."""
    return not request.app[SETTINGS].auth_enabled


def _failed(request: web.Request, failure: str) -> web.Response:
    told = {"reason": failure} if state_shown(request) else {}
    return json_response({"status": "failed", **told}, status=503)


async def health(request: web.Request) -> web.Response:
    """Liveness: the process answers. Recovery in progress is still alive; a node whose
    log failed is not (only a restart, recovering from disk, brings it back)."""
    failure = store(request).failure
    if failure is not None:
        return _failed(request, failure)
    return json_response({"status": "healthy", "version": __version__, "timestamp": time.time()})


async def ready(request: web.Request) -> web.Response:
    """Readiness: recovered and not shutting down."""
    s = store(request)
    if s.failure is not None:
        return _failed(request, s.failure)
    told = {"sequence": s.sequence} if state_shown(request) else {}
    if not s.ready:
        return json_response({"status": "not_ready", **told}, status=503)
    return json_response({"status": "ready", **told})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus metrics of this node."""
    if not request.app[SETTINGS].metrics_enabled:
        raise RouteNotFound("metrics are disabled on this node (metrics_enabled)")
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def stats(request: web.Request) -> web.Response:
    """Node figures: sequence, collections, vectors, log, disk, memory and snapshot."""
    return json_response({"version": __version__, **store(request).stats()})
