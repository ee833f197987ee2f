"""Turn every failure into a structured JSON error with a stable code; never a traceback.

Native routes answer ``{"error": {code, message, field}, "request_id"}``; routes under
``/qdrant`` answer in Qdrant's shape, ``{"status": {"error": ...}, "time": ...}``.
"""

from __future__ import annotations

import logging
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from vectorizer import errors
from vectorizer.server.http import json_response
from vectorizer.server.keys import ERROR_CODE, REQUEST_ID

log = logging.getLogger(__name__)

QDRANT_PREFIX = "/qdrant"

_BY_STATUS: dict[int, type[errors.VectorizerError]] = {
    400: errors.MalformedJson,
    404: errors.RouteNotFound,
    405: errors.MethodNotAllowed,
    413: errors.PayloadTooLarge,
}


def error_response(request: web.Request, err: errors.VectorizerError) -> web.Response:
    request[ERROR_CODE] = err.code
    headers = err.headers()
    if request.path.startswith(QDRANT_PREFIX):
        body = {"status": {"error": f"{err.code}: {err.message}"}, "time": 0.0}
        resp = json_response(body, status=err.status, headers=headers)
    else:
        resp = json_response(
            {"error": err.to_dict(), "request_id": request.get(REQUEST_ID)},
            status=err.status,
            headers=headers,
        )
    if headers.get("Connection") == "close":  # e.g. a body that never finished arriving
        resp.force_close()
    return resp


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    try:
        return await handler(request)
    except errors.VectorizerError as err:
        if err.status >= 500:
            log.error("request %s %s failed: %s", request.method, request.path, err)
        return error_response(request, err)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        cls = _BY_STATUS.get(exc.status, errors.VectorizerError)
        resp = error_response(request, cls(exc.reason or "request failed"))
        resp.set_status(exc.status)
        for name in ("Allow", "Retry-After"):
            if name in exc.headers:
                resp.headers[name] = exc.headers[name]
        return resp
    except Exception:
        log.exception(
            "unhandled error in %s %s after %.1f ms",
            request.method,
            request.path,
            (time.perf_counter() - started) * 1000,
        )
        return error_response(request, errors.InternalError("internal error; see the server log"))
