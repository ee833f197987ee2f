"""A server span per request, continuing the caller's W3C trace when it sent one."""

from __future__ import annotations

import random

from aiohttp import web
from aiohttp.typedefs import Handler
from opentelemetry import context as otel_context
from opentelemetry import trace

from vectorizer.observability import tracing
from vectorizer.server.keys import REQUEST_ID, SETTINGS
from vectorizer.server.middlewares.metrics import route_template


@web.middleware
async def tracing_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if "traceparent" not in request.headers:
        ratio = request.app[SETTINGS].tracing_sample_ratio
        if ratio < 1.0 and random.random() >= ratio:
            # A new trace that will not be sampled: skip building a server span and give
            # the request an unsampled context, so its child spans are dropped cheaply too.
            token = otel_context.attach(tracing.unsampled_context())
            try:
                return await handler(request)
            finally:
                otel_context.detach(token)
    route = route_template(request)
    with tracing.tracer.start_as_current_span(
        f"{request.method} {route}",
        context=tracing.extract(request.headers),
        kind=trace.SpanKind.SERVER,
        attributes={
            "http.request.method": request.method,
            "http.route": route,
            "vectorizer.request_id": request.get(REQUEST_ID, ""),
        },
        record_exception=False,
    ) as span:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            span.set_attribute("http.response.status_code", exc.status)
            raise
        span.set_attribute("http.response.status_code", response.status)
        if response.status >= 500:
            span.set_status(trace.StatusCode.ERROR)
        return response
