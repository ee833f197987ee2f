"""Replication requests follow no redirect.

The replication key goes to the primary URL a node was given and nowhere else. aiohttp
follows redirects by default and, when one changes the origin, strips only
``Authorization`` — not ``X-API-Key`` — and ``ws_connect`` has no ``allow_redirects``. So
the replication sessions carry this middleware: an answer that redirects is refused
(``RedirectRefused``) before aiohttp can follow it.
"""

from __future__ import annotations

import aiohttp
from aiohttp import ClientHandlerType, ClientRequest, ClientResponse

REDIRECTS = frozenset({301, 302, 303, 307, 308})


class RedirectRefused(aiohttp.ClientResponseError):
    """The primary URL answered with a redirect, which replication does not follow."""


async def refuse_redirects(request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
    response = await handler(request)
    if response.status not in REDIRECTS:
        return response
    location = response.headers.get("Location", "")
    response.release()
    raise RedirectRefused(
        response.request_info,
        (response,),
        status=response.status,
        message=f"redirected to {location!r}: replication follows no redirect",
        headers=response.headers,
    )


def session(timeout: aiohttp.ClientTimeout) -> aiohttp.ClientSession:
    """A client session for replication requests: redirects refused."""
    return aiohttp.ClientSession(timeout=timeout, middlewares=(refuse_redirects,))
