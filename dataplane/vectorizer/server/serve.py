"""Run the server until SIGTERM/SIGINT, then shut down cleanly (flush, snapshot, exit 0)."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from vectorizer.engine.store import Store
from vectorizer.server.app import create_app, open_node
from vectorizer.settings import Settings

log = logging.getLogger(__name__)


async def serve(settings: Settings) -> int:
    store = Store(settings.data_dir, settings.store_options())
    app = create_app(settings, store)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, reuse_address=True)
    await site.start()
    log.info(
        "listening on http://%s:%d (data in %s)", settings.host, settings.port, settings.data_dir
    )

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
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
        opening.cancel()
    await runner.cleanup()
    log.info("stopped")
    return code
