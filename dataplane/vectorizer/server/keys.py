"""Typed application and request keys: every piece of shared state is named here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from vectorizer.engine.store import Store
from vectorizer.settings import Settings

if TYPE_CHECKING:
    from vectorizer.observability.metrics import Metrics
    from vectorizer.replication.manager import ReplicationManager

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
REPLICATION: web.AppKey[ReplicationManager] = web.AppKey("replication")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")

# Request-scoped values (aiohttp requests are plain mappings).
REQUEST_ID = "vectorizer.request_id"
ERROR_CODE = "vectorizer.error_code"  # the stable code of the error this request answered
