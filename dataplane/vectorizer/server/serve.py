"""Run the server until SIGTERM/SIGINT, then shut down cleanly (flush, snapshot, exit 0)."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from vectorizer import stopsignals
from vectorizer.engine.dirlock import DirLock
from vectorizer.engine.store import Store
from vectorizer.errors import DataDirInUse, VectorizerError
from vectorizer.server.app import create_app, open_node
from vectorizer.server.keys import GUARD, TLS
from vectorizer.server.protocol import Runner
from vectorizer.server.tls_site import TlsSite
from vectorizer.settings import Settings, not_defaults
from vectorizer.stopsignals import STOP_SIGNALS
from vectorizer.tasks import stop as stop_tasks

log = logging.getLogger(__name__)

LINGER_S = 2.0


def make_site(runner: web.AppRunner, app: web.Application, settings: Settings) -> web.BaseSite:
    tls = app[TLS]
    if tls is None:
        return web.TCPSite(runner, settings.host, settings.port, reuse_address=True)
    guard = app[GUARD]

    def audit(event: str, source: str, reason: str) -> None:
        if guard.audit is not None:
            guard.audit.record(event, source=source, reason=reason)

    return TlsSite(
        runner,
        settings.host,
        settings.port,
        tls,
        handshake_timeout_s=settings.tls_handshake_timeout_s,
        on_reject=audit,
    )


async def serve(settings: Settings) -> int:
    try:
        lock = DirLock(settings.data_dir)  # before anything reads or writes there
    except DataDirInUse as err:
        log.critical("cannot start: %s", err.message)
        return 1
    except OSError as exc:  # not a directory, not writable, …
        log.critical("cannot start: the data directory %s: %s", settings.data_dir, exc)
        return 1
    try:
        return await _serve(settings)
    finally:
        lock.release()


async def _serve(settings: Settings) -> int:
    store = Store(settings.data_dir, settings.store_options())
    runner: Runner | None = None
    try:  # what the settings name must exist and work: files, the address, the port
        app = create_app(settings, store)
        runner = Runner(
            app,
            handle_signals=False,
            access_log=None,
            # After an answer that left the body unread (401, 408, 413, …) aiohttp keeps
            # reading it for this long so the client sees the answer; a slow client must
            # not hold the connection longer than that.
            lingering_time=min(LINGER_S, settings.request_body_timeout_s),
        )
        await runner.setup()
        site = make_site(runner, app, settings)
        await site.start()
    except (OSError, VectorizerError) as exc:  # (a port in use, a host unknown, a bad file)
        log.critical("cannot start: %s", getattr(exc, "message", exc))
        if runner is not None:
            await runner.cleanup()
        return 1
    log.info("listening on %s (data in %s)", site.name, settings.data_dir)
    log.info("settings other than the defaults: %s", not_defaults(settings))

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    if stopsignals.noted():  # (one came while the server started)
        stop.set()
    opening = asyncio.create_task(open_node(app))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({opening, stopping}, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if opening.done() and opening.exception() is not None:
        log.critical("cannot start: %s", opening.exception())
        code = 1
    elif not stop.is_set():
        await stopping
    log.info("shutting down")
    stopping.cancel()
    if not opening.done():
        await stop_tasks(opening)  # (a recovery under way ends first: see Store.open)
    await runner.cleanup()
    if store.failure is not None:  # (logged when it happened; the exit says it too)
        log.critical("stopped with the write-ahead log failed: %s", store.failure)
        code = 1
    log.info("stopped")
    for sig in STOP_SIGNALS:  # (the loop's teardown is no time to die of one: exit 0)
        loop.remove_signal_handler(sig)
        signal.signal(sig, signal.SIG_IGN)
    return code
