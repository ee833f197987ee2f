"""The operator's own metrics: fed by the reconcile loop, served over HTTP."""

from __future__ import annotations

import socket
from dataclasses import replace

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.operator.fakes import NS, FakeDataPlane, FakeKube, cluster_body
from vectorizer_operator.loop import ClusterLoop
from vectorizer_operator.metrics import MetricsServer, OperatorMetrics
from vectorizer_operator.reconcile.cluster import Result
from vectorizer_operator.runtime import Runtime
from vectorizer_operator.settings import OperatorSettings, load


def value(metrics: OperatorMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


async def tick(loop: ClusterLoop) -> None:
    await loop.run_once()
    await loop.drain()


def test_metrics_exist_before_any_reconcile() -> None:
    m = OperatorMetrics()
    assert value(m, "vectorizer_operator_failovers_total") == 0
    assert value(m, "vectorizer_operator_reconcile_errors_total") == 0
    for result in ("success", "error", "gone"):
        assert value(m, "vectorizer_operator_reconciles_total", result=result) == 0
    assert value(m, "vectorizer_operator_reconcile_duration_seconds_count") == 0


async def test_a_reconcile_moves_the_metrics() -> None:
    kube, dp = FakeKube(), FakeDataPlane()
    kube.put(cluster_body(instances=1))
    settings = OperatorSettings(standalone=True, identity="t", lease_namespace="ops")
    runtime = Runtime.build(settings, keys=lambda: [(NS, "vz")], kube=kube, dataplane=dp)
    m = runtime.metrics
    await tick(runtime.loop)
    assert value(m, "vectorizer_operator_reconciles_total", result="success") == 1
    assert value(m, "vectorizer_operator_reconcile_duration_seconds_count") == 1
    phases = {
        p: value(m, "vectorizer_operator_cluster_phase", namespace=NS, cluster="vz", phase=p)
        for p in ("Setting up", "Healthy", "Degraded")
    }
    assert phases == {"Setting up": 1, "Healthy": 0, "Degraded": 0}
    assert value(m, "vectorizer_operator_reconcile_errors_total") == 0


async def test_errors_and_deletions_are_counted() -> None:
    results: dict[tuple[str, str], Result | Exception] = {
        ("db", "a"): RuntimeError("boom"),
        ("db", "b"): Result(10.0, "Healthy"),
    }

    async def reconcile(namespace: str, name: str) -> Result:
        r = results[(namespace, name)]
        if isinstance(r, Exception):
            raise r
        return r

    m = OperatorMetrics()
    loop = ClusterLoop(reconcile, keys=lambda: list(results), metrics=m)
    await tick(loop)
    assert value(m, "vectorizer_operator_reconciles_total", result="error") == 1
    assert value(m, "vectorizer_operator_reconcile_errors_total") == 1
    assert value(m, "vectorizer_operator_reconciles_total", result="success") == 1
    healthy = {"namespace": "db", "cluster": "b", "phase": "Healthy"}
    assert value(m, "vectorizer_operator_cluster_phase", **healthy) == 1
    # b is deleted: its phase series go away.
    results[("db", "b")] = Result(None)
    loop.wake("db", "b")
    await tick(loop)
    assert value(m, "vectorizer_operator_reconciles_total", result="gone") == 1
    assert value(m, "vectorizer_operator_cluster_phase", **healthy) is None


async def test_the_endpoint_serves_the_registry() -> None:
    m = OperatorMetrics()
    m.observe_reconcile("db", "vz", 0.2, phase="Healthy")
    server = MetricsServer(m, host="127.0.0.1", port=0)
    await server.start()
    try:
        assert server.port != 0
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{server.port}/metrics") as response,
        ):
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain")
            text = await response.text()
    finally:
        await server.stop()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert {
        "vectorizer_operator_reconciles",
        "vectorizer_operator_reconcile_errors",
        "vectorizer_operator_reconcile_duration_seconds",
        "vectorizer_operator_failovers",
        "vectorizer_operator_cluster_phase",
    } <= set(families)
    phase = [
        s
        for s in families["vectorizer_operator_cluster_phase"].samples
        if s.labels["phase"] == "Healthy"
    ]
    assert [(s.labels["namespace"], s.labels["cluster"], s.value) for s in phase] == [
        ("db", "vz", 1.0)
    ]


async def test_runtime_serves_metrics_on_the_configured_port_or_not_at_all() -> None:
    kube, dp = FakeKube(), FakeDataPlane()
    off = OperatorSettings(standalone=True, identity="t", lease_namespace="ops", metrics_port=0)
    runtime = Runtime.build(off, keys=list, kube=kube, dataplane=dp)
    assert await runtime.serve_metrics() is None
    assert load({"metrics_port": "9200"}, env={}).metrics_port == 9200
    assert OperatorSettings().metrics_port == 9102

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    on = replace(off, metrics_port=port, metrics_address="127.0.0.1")
    runtime = Runtime.build(on, keys=list, kube=kube, dataplane=dp)
    server = await runtime.serve_metrics()
    try:
        assert server is not None and server.port == port
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/metrics") as response,
        ):
            assert "vectorizer_operator_failovers_total 0.0" in await response.text()
        # A second operator on the same port runs on, without metrics.
        other = Runtime.build(on, keys=list, kube=kube, dataplane=dp)
        assert await other.serve_metrics() is None
    finally:
        await runtime.stop()  # closes the server
    assert server._runner is None
