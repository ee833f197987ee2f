"""Histogram bucket bounds, in one module without side effects so that the operator can
import them too (``metrics`` disables prometheus_client's *_created series on import).

``histogram_quantile`` never returns more than the largest finite bound: a quantile that
falls in the +Inf bucket reads as that bound. The operator therefore bounds the search
latency alert's threshold (``searchP99Seconds``) below ``LATENCY[-1]``, read from here.
"""

from __future__ import annotations

# Seconds. Up to 30 s: a slow search, and a write that waits out the sync replicas'
# timeout (``sync_timeout_ms``, 5 s by default) and more, stay measurable.
LATENCY = (
    0.0002,
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
RESULTS = (0, 1, 5, 10, 20, 50, 100, 500, 1000, 10000)
FSYNC = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
