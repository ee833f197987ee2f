"""Typed application keys: every piece of shared state is named here (a request's own
state is its ``exchange.Exchange``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from vectorizer.engine.store import Store
from vectorizer.server.batching import SearchBatcher
from vectorizer.server.idlepoll import IdlePoller
from vectorizer.settings import Settings

if TYPE_CHECKING:
    from vectorizer.observability.metrics import Metrics
    from vectorizer.replication.manager import ReplicationManager
    from vectorizer.security.guard import Guard
    from vectorizer.security.tls import ServerTls

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
REPLICATION: web.AppKey[ReplicationManager] = web.AppKey("replication")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
SEARCH_BATCHER = web.AppKey("search_batcher", SearchBatcher)
GUARD: web.AppKey[Guard] = web.AppKey("guard")
TLS: web.AppKey[ServerTls | None] = web.AppKey("tls")
IDLE_POLLER: web.AppKey[IdlePoller | None] = web.AppKey("idle_poller")
