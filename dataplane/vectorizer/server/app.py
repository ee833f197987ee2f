"""Build the aiohttp application: state keys, lifetimes, middlewares, routes."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterable

from aiohttp import web

from vectorizer.engine.store import Store
from vectorizer.observability.metrics import Metrics
from vectorizer.qdrant.routes import ROUTES as QDRANT_ROUTES
from vectorizer.replication.manager import ReplicationManager
from vectorizer.replication.views import ROUTES as REPLICATION_ROUTES
from vectorizer.security.guard import Guard
from vectorizer.security.tls import ServerTls, ServerTlsConfig
from vectorizer.server.batching import SearchBatcher
from vectorizer.server.http import expect_continue
from vectorizer.server.idlepoll import idle_poller
from vectorizer.server.keys import (
    GUARD,
    IDLE_POLLER,
    METRICS,
    REPLICATION,
    SEARCH_BATCHER,
    SETTINGS,
    STORE,
    TLS,
)
from vectorizer.server.middlewares.pipeline import pipeline
from vectorizer.server.routes import ROUTES
from vectorizer.settings import Settings
from vectorizer.tasks import stop


def create_app(settings: Settings, store: Store | None = None) -> web.Application:
    """The app; ``serve`` opens the store and starts replication once it listens."""
    app = web.Application(client_max_size=settings.max_body_bytes)
    store = store or Store(settings.data_dir, settings.store_options())
    app[SETTINGS] = settings
    app[STORE] = store
    app[GUARD] = Guard.from_settings(settings)
    app[TLS] = ServerTls(tls_config(settings)) if settings.tls_enabled else None
    app[REPLICATION] = ReplicationManager(store, settings, app[GUARD].keys)
    app[SEARCH_BATCHER] = SearchBatcher()
    app[IDLE_POLLER] = idle_poller(settings.idle_poll_us)
    app[METRICS] = Metrics()
    app[METRICS].attach(store, app[REPLICATION])
    app.on_shutdown.append(_stop_replication)  # before aiohttp waits for open streams
    app.cleanup_ctx.append(_security)
    app.cleanup_ctx.append(_close_store)
    for routes in (ROUTES, REPLICATION_ROUTES, QDRANT_ROUTES):
        app.router.add_routes(_registered(routes))
    app.middlewares.append(pipeline(app))
    return app


_VARIABLE = re.compile(r"\{(\w+)\}")


def _registered(routes: Iterable[web.RouteDef]) -> list[web.RouteDef]:
    """``routes`` as the app registers them: each path variable matching any one segment
    (aiohttp's default pattern, ``[^{}/]+``, refuses braces, which point ids, payload
    keys and key ids may hold; the tables keep the plain templates, as the route's
    ``canonical`` shows them), and ``Expect`` headers answered by ``expect_continue``."""
    return [
        web.RouteDef(
            route.method,
            _VARIABLE.sub(r"{\1:[^/]+}", route.path),
            route.handler,
            {"expect_handler": expect_continue, **route.kwargs},
        )
        for route in routes
    ]


async def open_node(app: web.Application) -> None:
    """Recover the store, then take up the replication role. (Stopped during recovery,
    the store writes a snapshot of what it replayed only where one is taken at shutdown.)"""
    await app[STORE].open(snapshot_if_stopped=app[SETTINGS].snapshot_on_shutdown)
    await app[REPLICATION].start()


async def _stop_replication(app: web.Application) -> None:
    await app[REPLICATION].stop()


async def _security(app: web.Application) -> AsyncIterator[None]:
    """Keys loaded and the audit log open before the first request; TLS files watched."""
    guard = app[GUARD]
    guard.open()
    tls = app[TLS]
    watcher = asyncio.create_task(tls.watch(app[SETTINGS].tls_reload_interval_s)) if tls else None
    yield
    if watcher is not None:
        await stop(watcher)
    guard.close()


def tls_config(settings: Settings) -> ServerTlsConfig:
    return ServerTlsConfig(
        cert_file=settings.tls_cert_file,
        key_file=settings.tls_key_file,
        client_ca_file=settings.tls_client_ca_file,
        client_auth=settings.tls_client_auth,
    )


async def _close_store(app: web.Application) -> AsyncIterator[None]:
    yield
    store = app[STORE]
    if store.ready:
        await store.close(take_snapshot=app[SETTINGS].snapshot_on_shutdown)
