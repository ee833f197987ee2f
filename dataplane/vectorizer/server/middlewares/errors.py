"""Turn every failure into a structured JSON error with a stable code; never a traceback.

Native routes answer ``{"error": {code, message, field}, "request_id"}``; routes under
``/qdrant`` answer in Qdrant's shape, ``{"status": {"error": ...}, "time": ...}``.
"""

from __future__ import annotations

import logging

from aiohttp import http_exceptions, web

from vectorizer import errors
from vectorizer.server.exchange import EXCHANGE
from vectorizer.server.http import json_response

log = logging.getLogger(__name__)

QDRANT_PREFIX = "/qdrant"
CLIENT_CLOSED = 499  # the client went away before the answer (nginx's convention)

_BY_STATUS: dict[int, type[errors.VectorizerError]] = {
    400: errors.MalformedJson,
    404: errors.RouteNotFound,
    405: errors.MethodNotAllowed,
    413: errors.PayloadTooLarge,
}


def error_response(request: web.Request, err: errors.VectorizerError) -> web.Response:
    ex = request[EXCHANGE]
    ex.error_code = err.code
    resp = render(err, request.path, ex.request_id)
    if resp.headers.get("Connection") == "close":  # e.g. a body that never finished arriving
        resp.force_close()
    return resp


def render(err: errors.VectorizerError, path: str, request_id: str) -> web.Response:
    """``err`` in the shape of the API that ``path`` belongs to."""
    if path.startswith(QDRANT_PREFIX):
        body = {"status": {"error": f"{err.code}: {err.message}"}, "time": 0.0}
        return json_response(body, status=err.status, headers=err.headers())
    return json_response(
        {"error": err.to_dict(), "request_id": request_id},
        status=err.status,
        headers=err.headers(),
    )


def failure_response(request: web.Request, exc: Exception, took_s: float) -> web.Response:
    """The structured answer to what a handler raised (a redirect is re-raised as is)."""
    if isinstance(exc, errors.VectorizerError):
        return error_response(request, as_error(exc, request.method, request.path, took_s))
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            raise exc
        cls = _BY_STATUS.get(exc.status, errors.VectorizerError)
        resp = error_response(request, cls(_explain(request, exc)))
        resp.set_status(exc.status)
        for name in ("Allow", "Retry-After"):
            if name in exc.headers:
                resp.headers[name] = exc.headers[name]
        return resp
    if isinstance(exc, web.RequestPayloadError | http_exceptions.HttpProcessingError):
        # The body's bytes could not be decoded (a Content-Encoding they are not in, a
        # chunk that is not one): the client's mistake, and the rest of the
        # connection's stream cannot be trusted.
        err = errors.MalformedRequest(
            f"the request body could not be read: {_why(exc)}", field="body"
        )
        resp = error_response(request, err)
        resp.force_close()
        return resp
    if isinstance(exc, ConnectionResetError):  # hung up mid-body: no one to answer
        log.info("%s %s: the client closed the connection", request.method, _shown(request))
        err = errors.MalformedRequest("the connection closed before the request arrived")
        resp = error_response(request, err)
        resp.set_status(CLIENT_CLOSED, "Client Closed Request")
        resp.force_close()
        return resp
    return error_response(request, as_error(exc, request.method, request.path, took_s))


def as_error(exc: Exception, method: str, path: str, took_s: float) -> errors.VectorizerError:
    """What a handler raised, as the error it is answered with; logged when the node is
    at fault (a 5xx of ours, or anything else: an internal error)."""
    if isinstance(exc, errors.VectorizerError):
        if exc.status >= 500:
            level = logging.WARNING if exc.expected else logging.ERROR
            log.log(level, "request %s %s failed: %s", method, _cut(path), exc)
        return exc
    log.error("unhandled error in %s %s after %.1f ms", method, path, took_s * 1000, exc_info=exc)
    return errors.InternalError("internal error; see the server log")


def _shown(request: web.Request) -> str:
    """The path as a log line or an error names it: its first 200 characters (a client
    chose it)."""
    return _cut(request.path)


def _cut(path: str) -> str:
    return path if len(path) <= 200 else f"{path[:200]}..."


def _explain(request: web.Request, exc: web.HTTPException) -> str:
    """aiohttp's reason ("Not Found"), with the route it is about."""
    route = f"{request.method} {_shown(request)}"
    allowed = exc.headers.get("Allow", "") if exc.status == 405 else ""
    also = f" (this path answers {allowed})" if allowed else ""
    if request.path.startswith(QDRANT_PREFIX) and exc.status in (404, 405):
        return f"{route} is not part of the Qdrant API this server implements{also}"
    if exc.status == 404:
        return f"no route {route}"
    if exc.status == 405:
        return f"{route} is not allowed{also}"
    return exc.reason or "request failed"


def _why(exc: Exception) -> str:
    """aiohttp's reason for a body it could not read, without its status prefix."""
    cause = exc.__cause__ if isinstance(exc.__cause__, http_exceptions.HttpProcessingError) else exc
    text = cause.message if isinstance(cause, http_exceptions.HttpProcessingError) else str(cause)
    return " ".join(str(text).split())[:200]
