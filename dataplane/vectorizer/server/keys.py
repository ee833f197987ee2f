"""Typed application and request keys: every piece of shared state is named here."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from vectorizer.engine.store import Store
from vectorizer.server.batching import SearchBatcher
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

# Request-scoped values (aiohttp requests are plain mappings).
REQUEST_ID = "vectorizer.request_id"
ERROR_CODE = "vectorizer.error_code"  # the stable code of the error this request answered
RULE = "vectorizer.rule"  # the route's permission rule (security.permissions.Rule)
PRINCIPAL = "vectorizer.principal"  # who the request acts as, once authenticated
RATE_DECISION = "vectorizer.rate_decision"  # the rate limiter's answer, for the headers
AUDIT_REASON = "vectorizer.audit_reason"  # why a request was refused (audit log only)
AUDIT_CLAIMED = "vectorizer.audit_claimed"  # who a refused request claimed to be
AUDIT_COLLECTION = "vectorizer.audit_collection"  # collection named in the body
AUDIT_TARGET = "vectorizer.audit_target"  # the object acted on (an API key id)
