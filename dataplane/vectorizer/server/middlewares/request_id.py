"""Give every request an id: the client's ``X-Request-ID`` when sane, else a new one."""

from __future__ import annotations

import os
import re

from aiohttp import web
from aiohttp.typedefs import Handler

from vectorizer.observability import context
from vectorizer.server.keys import REQUEST_ID

HEADER = "X-Request-ID"
_SANE = re.compile(r"[A-Za-z0-9._:-]{1,128}")


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    given = request.headers.get(HEADER)
    # 32 random hex digits, as uuid4().hex but without building a UUID per request.
    rid = given if given and _SANE.fullmatch(given) else os.urandom(16).hex()
    request[REQUEST_ID] = rid
    token = context.request_id.set(rid)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers[HEADER] = rid
        raise
    finally:
        context.request_id.reset(token)
    response.headers[HEADER] = rid
    return response
