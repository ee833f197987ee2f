"""OpenTelemetry tracing: exporter (none, console, otlp) and sampling from the settings.

With the exporter ``none`` (the default) no tracer provider is installed: every span is
the API's no-op span and costs next to nothing. W3C ``traceparent`` headers are read on
every request and written by the SDK, and log records carried across replication keep
their trace as the parent of the replica's apply span.

Sampling is decided once per trace. A request without a (valid) trace context is
sampled by the tracing middleware, before any span work (an unsampled request then
costs a few microseconds, not a span): its server span is a root the sampler always
keeps. Every other root (a snapshot, a replication send) is sampled here by its trace
id at ``sample_ratio``; every span with a parent follows its parent's decision.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.sampling import Sampler

log = logging.getLogger(__name__)
tracer = trace.get_tracer("vectorizer")
_PROPAGATOR = TraceContextTextMapPropagator()
_installed = False


def installed() -> bool:
    """Whether ``setup`` installed a tracer provider (a global read, where asking
    OpenTelemetry costs an environment look-up)."""
    return _installed


def setup(exporter: str, sample_ratio: float, otlp_endpoint: str, service: str) -> bool:
    """Install a tracer provider; False (nothing installed) for the exporter ``none``."""
    if exporter == "none":
        return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    span_exporter: SpanExporter
    if exporter == "console":
        span_exporter = ConsoleSpanExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        span_exporter = OTLPSpanExporter(endpoint=otlp_endpoint)
    provider = TracerProvider(
        resource=Resource.create({"service.name": service}),
        sampler=sampler(sample_ratio),
        shutdown_on_exit=False,  # (``shutdown`` stops it, in bounded time; not atexit)
    )
    provider.add_span_processor(BatchSpanProcessor(span_exporter))
    trace.set_tracer_provider(provider)
    global _installed
    _installed = True
    return True


def sampler(sample_ratio: float) -> Sampler:
    """Parent-based; for roots, ``sample_ratio`` by trace id, except server spans: the
    middleware sampled those requests already (at ``sample_ratio``), and a second draw
    here made the real rate its square."""
    from opentelemetry.sdk.trace.sampling import (
        Decision,
        ParentBased,
        SamplingResult,
        TraceIdRatioBased,
    )

    class RootSampler(TraceIdRatioBased):
        def should_sample(
            self,
            parent_context: otel_context.Context | None,
            trace_id: int,
            name: str,
            kind: trace.SpanKind | None = None,
            attributes: Any = None,
            links: Any = None,
            trace_state: trace.TraceState | None = None,
        ) -> SamplingResult:
            if kind is trace.SpanKind.SERVER:
                return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes, trace_state)
            return super().should_sample(
                parent_context, trace_id, name, kind, attributes, links, trace_state
            )

        def get_description(self) -> str:
            return f"ServerSpansOrTraceIdRatioBased{{{self.rate}}}"

    return ParentBased(RootSampler(sample_ratio))


def unsampled_context() -> otel_context.Context:
    """A context whose current span is a fresh trace marked not sampled: spans started
    under it are dropped by the parent-based sampler without being built."""
    span_context = trace.SpanContext(
        trace_id=random.getrandbits(128) or 1,
        span_id=random.getrandbits(64) or 1,
        is_remote=False,
        trace_flags=trace.TraceFlags(trace.TraceFlags.DEFAULT),
    )
    return trace.set_span_in_context(trace.NonRecordingSpan(span_context))


SHUTDOWN_S = 2.0  # what a stopping node waits for its last spans to be exported


def shutdown(timeout_s: float = SHUTDOWN_S) -> None:
    """Export the spans still queued and stop, waiting at most ``timeout_s``: a collector
    that does not answer held a stopping node for ~10 s of the exporter's retries (the
    spans are then dropped; the node's data is safe by then)."""
    provider = trace.get_tracer_provider()
    if not hasattr(provider, "shutdown"):
        return
    stopping = threading.Thread(target=provider.shutdown, name="tracing-shutdown", daemon=True)
    stopping.start()
    stopping.join(timeout_s)
    if stopping.is_alive():
        log.warning("tracing: spans not exported within %.0fs of stopping were dropped", timeout_s)


def root() -> otel_context.Context:
    """A context without a span: one started under it begins a trace of its own (where
    no context is given, a span takes whatever context is current)."""
    return otel_context.Context()


def extract(headers: Mapping[str, str]) -> otel_context.Context:
    """The caller's trace context; ``headers`` may be aiohttp's case-insensitive mapping
    (read in place, no copy)."""
    return _PROPAGATOR.extract(carrier=headers)


def inject(headers: dict[str, str]) -> None:
    _PROPAGATOR.inject(carrier=headers)


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span, or None (cheaply) when nothing is traced."""
    if not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, Any] = {}
    _PROPAGATOR.inject(carrier=carrier)
    return carrier.get("traceparent")
