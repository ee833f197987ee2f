"""Build the aiohttp application: state keys, lifetimes, middlewares, routes."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from vectorizer.engine.store import Store
from vectorizer.observability.metrics import Metrics
from vectorizer.qdrant.routes import ROUTES as QDRANT_ROUTES
from vectorizer.replication.manager import ReplicationManager
from vectorizer.replication.views import ROUTES as REPLICATION_ROUTES
from vectorizer.server.keys import METRICS, REPLICATION, SETTINGS, STORE
from vectorizer.server.middlewares.errors import error_middleware
from vectorizer.server.middlewares.metrics import metrics_middleware
from vectorizer.server.middlewares.replication import staleness_middleware
from vectorizer.server.middlewares.request_id import request_id_middleware
from vectorizer.server.middlewares.tracing import tracing_middleware
from vectorizer.server.routes import ROUTES
from vectorizer.settings import Settings


def create_app(settings: Settings, store: Store | None = None) -> web.Application:
    """The app; ``serve`` opens the store and starts replication once it listens."""
    # Outermost first: the request id exists before anything can fail; metrics see every
    # request with its final status; staleness headers go on every response, errors
    # included; every error below (auth and rate limits will sit here too) becomes
    # structured JSON.
    # Tracing wraps the rest when an exporter is configured (with none it is left out).
    tracing = [tracing_middleware] if settings.tracing_exporter != "none" else []
    metrics = [metrics_middleware] if settings.metrics_enabled else []
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[
            request_id_middleware,
            *tracing,
            *metrics,
            staleness_middleware,
            error_middleware,
        ],
    )
    store = store or Store(settings.data_dir, settings.store_options())
    app[SETTINGS] = settings
    app[STORE] = store
    app[REPLICATION] = ReplicationManager(store, settings)
    app[METRICS] = Metrics()
    app[METRICS].attach(store, app[REPLICATION])
    app.on_shutdown.append(_stop_replication)  # before aiohttp waits for open streams
    app.cleanup_ctx.append(_close_store)
    app.router.add_routes(ROUTES)
    app.router.add_routes(REPLICATION_ROUTES)
    app.router.add_routes(QDRANT_ROUTES)
    return app


async def open_node(app: web.Application) -> None:
    """Recover the store, then take up the replication role."""
    await app[STORE].open()
    await app[REPLICATION].start()


async def _stop_replication(app: web.Application) -> None:
    await app[REPLICATION].stop()


async def _close_store(app: web.Application) -> AsyncIterator[None]:
    yield
    store = app[STORE]
    if store.ready:
        await store.close(take_snapshot=app[SETTINGS].snapshot_on_shutdown)
