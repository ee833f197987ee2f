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
    from vectorizer.security.permissions import Rule
    from vectorizer.security.ratelimit import Decision
    from vectorizer.security.roles import Principal
    from vectorizer.security.tls import ServerTls

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
REPLICATION: web.AppKey[ReplicationManager] = web.AppKey("replication")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
SEARCH_BATCHER = web.AppKey("search_batcher", SearchBatcher)
GUARD: web.AppKey[Guard] = web.AppKey("guard")
TLS: web.AppKey[ServerTls | None] = web.AppKey("tls")

# Request-scoped values.
REQUEST_ID = web.RequestKey("vectorizer.request_id", str)
# The stable code of the error this request answered.
ERROR_CODE = web.RequestKey("vectorizer.error_code", str)
# The route's permission rule.
RULE: web.RequestKey[Rule] = web.RequestKey("vectorizer.rule")
# Who the request acts as, once authenticated.
PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("vectorizer.principal")
# The rate limiter's answer, for the headers.
RATE_DECISION: web.RequestKey[Decision] = web.RequestKey("vectorizer.rate_decision")
AUDIT_REASON = web.RequestKey("vectorizer.audit_reason", str)  # why it was refused
AUDIT_CLAIMED = web.RequestKey("vectorizer.audit_claimed", str)  # who a refused one claimed to be
AUDIT_COLLECTION = web.RequestKey("vectorizer.audit_collection", str)  # named in the body
AUDIT_TARGET = web.RequestKey("vectorizer.audit_target", str)  # the object acted on (a key id)
