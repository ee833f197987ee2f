"""A server span per request, continuing the caller's W3C trace when it sent one."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

from aiohttp import web
from opentelemetry import context as otel_context
from opentelemetry import trace

from vectorizer.observability import tracing
from vectorizer.server.exchange import Exchange

_NEW_TRACE = otel_context.Context()


@contextlib.contextmanager
def server_span(
    request: web.Request, ex: Exchange, template: str, sample_ratio: float
) -> Iterator[trace.Span | None]:
    """The request's span; None for a new trace that will not be sampled.

    A new trace (no valid ``traceparent``) is sampled here and only here: the tracer's
    sampler keeps every server span that starts a trace (``tracing.sampler``), so the
    rate is ``sample_ratio`` and an unsampled request skips the span's cost."""
    parent = _NEW_TRACE
    if "traceparent" in request.headers:
        parent = tracing.extract(request.headers)
        if not trace.get_current_span(parent).get_span_context().is_valid:
            parent = _NEW_TRACE  # (unparsable: a new trace, sampled like one)
    if parent is _NEW_TRACE and sample_ratio < 1.0 and random.random() >= sample_ratio:
        # Skip building a server span and give the request an unsampled context, so its
        # child spans are dropped cheaply too.
        token = otel_context.attach(tracing.unsampled_context())
        try:
            yield None
        finally:
            otel_context.detach(token)
        return
    with tracing.tracer.start_as_current_span(
        f"{request.method} {template}",
        context=parent,
        kind=trace.SpanKind.SERVER,
        attributes={
            "http.request.method": request.method,
            "http.route": template,
            "vectorizer.request_id": ex.request_id,
        },
        record_exception=False,
    ) as span:
        yield span


def finish_span(span: trace.Span, status: int) -> None:
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(trace.StatusCode.ERROR)
