"""The operator's own Prometheus metrics, in a registry of their own, and their endpoint.

Fed by the reconcile loop (loop.py) after every pass; served at ``GET /metrics`` on
``--metrics-address``:``--metrics-port`` (0: not served) by a small aiohttp server.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from vectorizer_operator.reconcile import status as status_mod

# Every phase a cluster can report (the gauge has one series per phase, 1 for the current).
PHASES = (
    status_mod.SETTING_UP,
    status_mod.HEALTHY,
    status_mod.DEGRADED,
    status_mod.SCALING,
    status_mod.UPGRADING,
    status_mod.SWITCHOVER,
    status_mod.FAILED,
)

# ``result`` label of the reconciles counter.
RESULT_SUCCESS = "success"
RESULT_ERROR = "error"
RESULT_GONE = "gone"  # the resource was deleted (or is being deleted)

DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.reconciles = Counter(
            "vectorizer_operator_reconciles",
            "Reconcile passes of a VectorizerCluster, by result (success, error, gone).",
            ["result"],
            registry=r,
        )
        self.reconcile_errors = Counter(
            "vectorizer_operator_reconcile_errors",
            "Reconcile passes that raised (retried with backoff).",
            registry=r,
        )
        self.reconcile_duration = Histogram(
            "vectorizer_operator_reconcile_duration_seconds",
            "Duration of one reconcile pass.",
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.failovers = Counter(
            "vectorizer_operator_failovers",
            "Automatic failovers the operator performed (promotions after a primary failed).",
            registry=r,
        )
        self.cluster_phase = Gauge(
            "vectorizer_operator_cluster_phase",
            "The phase of each VectorizerCluster: 1 for the current phase, 0 for the others.",
            ["namespace", "cluster", "phase"],
            registry=r,
        )
        for result in (RESULT_SUCCESS, RESULT_ERROR, RESULT_GONE):
            self.reconciles.labels(result)  # every series exists from the start, at 0

    def observe_reconcile(
        self,
        namespace: str,
        name: str,
        duration_s: float,
        *,
        phase: str | None = None,
        error: bool = False,
        gone: bool = False,
    ) -> None:
        """Record one pass: its duration and result, and the cluster's phase."""
        self.reconcile_duration.observe(max(duration_s, 0.0))
        if error:
            self.reconciles.labels(RESULT_ERROR).inc()
            self.reconcile_errors.inc()
            return
        if gone:
            self.reconciles.labels(RESULT_GONE).inc()
            self.forget(namespace, name)
            return
        self.reconciles.labels(RESULT_SUCCESS).inc()
        if phase is not None:
            self.set_phase(namespace, name, phase)

    def set_phase(self, namespace: str, name: str, phase: str) -> None:
        phases: Iterable[str] = PHASES if phase in PHASES else (*PHASES, phase)
        for p in phases:
            self.cluster_phase.labels(namespace, name, p).set(1 if p == phase else 0)

    def forget(self, namespace: str, name: str) -> None:
        """Remove a deleted cluster's phase series."""
        for labels in list(self._phase_series()):
            if labels[0] == namespace and labels[1] == name:
                self.cluster_phase.remove(*labels)

    def _phase_series(self) -> Iterable[tuple[str, str, str]]:
        for metric in self.cluster_phase.collect():
            for sample in metric.samples:
                lb = sample.labels
                yield (lb["namespace"], lb["cluster"], lb["phase"])

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class MetricsServer:
    """``GET /metrics`` of one registry, on an aiohttp server in the operator's event loop."""

    def __init__(self, metrics: OperatorMetrics, *, host: str, port: int) -> None:
        self.metrics = metrics
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def _handle(self, _: web.Request) -> web.Response:
        response = web.Response(body=self.metrics.exposition())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        self._runner = runner
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        if self.port == 0:  # an ephemeral port (tests): report the one bound
            server = site._server
            sockets = getattr(server, "sockets", None) or []
            if sockets:
                self.port = int(sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
