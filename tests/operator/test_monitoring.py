"""The monitoring builders, and that the alerts and the dashboard only name real metrics."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.operator.conftest import make_cluster
from vectorizer import errors
from vectorizer.observability.reference import families
from vectorizer_operator import naming
from vectorizer_operator.builders.monitoring import (
    WRITE_REFUSED_CODES,
    alerts,
    build_pod_monitor,
    build_prometheus_rule,
    rule_groups,
    server_error_codes,
)
from vectorizer_operator.model import SpecError

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "charts" / "vectorizer-operator" / "dashboards" / "vectorizer.json"
METRIC = re.compile(r"\bvectorizer_\w+")
# Not a metric: the label the PodMonitor adds to every series of a cluster.
LABELS = {naming.METRICS_CLUSTER_LABEL}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def rule_names() -> set[str]:
    return {m for a in alerts(make_cluster(instances=3)) for m in METRIC.findall(a.expr)}


def dashboard_exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    exprs += [v["definition"] for v in dash["templating"]["list"] if "definition" in v]
    return exprs


def dashboard_names() -> set[str]:
    return {m for e in dashboard_exprs() for m in METRIC.findall(e)}


def unknown(names: set[str], registry: dict[str, str]) -> set[str]:
    missing = set()
    for name in names - LABELS:
        if name in registry:
            continue
        base = next((name[: -len(s)] for s in HISTOGRAM_SUFFIXES if name.endswith(s)), None)
        if base is not None and registry.get(base) == "histogram":
            continue
        missing.add(name)
    return missing


@pytest.fixture(scope="module")
def registry() -> dict[str, str]:
    return {name: kind for name, kind, _, _ in asyncio.run(families())}


def test_rules_name_only_registered_metrics(registry: dict[str, str]) -> None:
    names = rule_names()
    assert len(names) >= 9
    assert unknown(names, registry) == set()


def test_dashboard_names_only_registered_metrics(registry: dict[str, str]) -> None:
    names = dashboard_names()
    assert len(names) >= 8
    assert unknown(names, registry) == set()


def test_the_check_catches_a_misspelling(registry: dict[str, str]) -> None:
    assert unknown({"vectorizer_search_latency_bucket"}, registry) == {
        "vectorizer_search_latency_bucket"
    }
    assert unknown({"vectorizer_ready_bucket", "vectorizer_search_requests"}, registry) == {
        "vectorizer_ready_bucket",
        "vectorizer_search_requests",
    }


def test_dashboard_has_the_panels() -> None:
    dash = json.loads(DASHBOARD.read_text())
    titles = {p["title"] for p in dash["panels"]}
    assert titles >= {
        "Requests per second",
        "Search latency p50 / p99",
        "Errors by code",
        "Vectors per collection",
        "Replication lag",
        "Role",
        "WAL size",
        "Snapshot age",
    }
    assert all(naming.METRICS_CLUSTER_LABEL in e for e in dashboard_exprs() if "$cluster" in e)


# ---- builders ------------------------------------------------------------------------


def test_pod_monitor_scrapes_the_data_plane_port() -> None:
    cluster = make_cluster(instances=3, monitoring={"podMonitor": {"labels": {"team": "a"}}})
    pm = build_pod_monitor(cluster)
    assert pm is not None
    assert pm["apiVersion"] == "monitoring.coreos.com/v1" and pm["kind"] == "PodMonitor"
    assert pm["metadata"]["ownerReferences"] == [cluster.owner_reference()]
    assert pm["metadata"]["labels"]["team"] == "a"
    assert pm["spec"]["selector"] == {"matchLabels": naming.selector_labels("vz")}
    assert pm["spec"]["namespaceSelector"] == {"matchNames": ["db"]}
    (endpoint,) = pm["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == naming.HTTP_PORT_NAME and endpoint["path"] == "/metrics"
    assert endpoint["interval"] == "30s"
    (relabel,) = endpoint["relabelings"]
    assert relabel == {
        "sourceLabels": ["__meta_kubernetes_pod_label_vectorizer_io_cluster"],
        "targetLabel": "vectorizer_cluster",
    }


def test_the_named_port_is_15002() -> None:
    from tests.operator.conftest import OPTIONS
    from vectorizer_operator.builders.statefulset import build_statefulset

    sts = build_statefulset(make_cluster(), OPTIONS, replicas=1)
    ports = sts["spec"]["template"]["spec"]["containers"][0]["ports"]
    assert {"name": naming.HTTP_PORT_NAME, "port": 15002} in [
        {"name": p["name"], "port": p["containerPort"]} for p in ports
    ]


def test_prometheus_rule_carries_the_groups() -> None:
    cluster = make_cluster(instances=3, monitoring={"prometheusRule": {"labels": {"r": "1"}}})
    rule = build_prometheus_rule(cluster)
    assert rule is not None
    assert rule["kind"] == "PrometheusRule" and rule["metadata"]["labels"]["r"] == "1"
    assert rule["metadata"]["ownerReferences"] == [cluster.owner_reference()]
    assert rule["spec"]["groups"] == rule_groups(cluster)
    for r in rule["spec"]["groups"][0]["rules"]:
        assert r["labels"]["severity"] in ("critical", "warning")
        assert set(r["annotations"]) == {"summary", "description", "runbook_url"}
        assert r["annotations"]["runbook_url"].endswith(f"/docs/runbooks/{r['alert']}.md")
        assert 'namespace="db"' in r["expr"] and 'vectorizer_cluster="vz"' in r["expr"]


def test_switches() -> None:
    off = make_cluster(monitoring={"enabled": False})
    assert build_pod_monitor(off) is None and build_prometheus_rule(off) is None
    no_rule = make_cluster(monitoring={"prometheusRule": {"enabled": False}})
    assert build_pod_monitor(no_rule) is not None and build_prometheus_rule(no_rule) is None
    no_pm = make_cluster(monitoring={"podMonitor": {"enabled": False}})
    assert build_pod_monitor(no_pm) is None and build_prometheus_rule(no_pm) is not None


def test_thresholds_and_instances_reach_the_expressions() -> None:
    cluster = make_cluster(
        instances=5,
        monitoring={
            "thresholds": {
                "replicationLagMs": 1500,
                "errorRatio": 0.2,
                "searchP99Seconds": 0.25,
                "walSizeBytes": 12345,
                "snapshotAgeSeconds": 600,
            },
            "prometheusRule": {"runbookBaseUrl": "https://runbooks.example/"},
        },
    )
    by_name = {a.name: a.expr for a in alerts(cluster)}
    assert "> 1500 and" in by_name["VectorizerReplicationLagHigh"]
    assert by_name["VectorizerErrorRateHigh"].endswith("> 0.2")
    assert by_name["VectorizerSearchLatencyHigh"].endswith(">= 0.25")
    assert by_name["VectorizerWalSizeHigh"].endswith("> 12345")
    assert "> 600 and" in by_name["VectorizerSnapshotTooOld"]
    assert "[600s]" in by_name["VectorizerSnapshotTooOld"]
    assert "< 4 and" in by_name["VectorizerReplicaDisconnected"]
    urls = [r["annotations"]["runbook_url"] for r in rule_groups(cluster)[0]["rules"]]
    assert "https://runbooks.example/VectorizerNoPrimary.md" in urls


def test_server_error_codes_are_the_5xx_ones() -> None:
    codes = server_error_codes()
    assert {"internal_error", "storage_error", "replication_timeout", "not_ready"} <= set(codes)
    assert not {"not_found", "validation_error", "not_primary", "rate_limited"} & set(codes)


def test_writes_refused_selects_the_write_guards_codes() -> None:
    """The codes come from the data plane's error classes, and their series exist (at 0)
    from the start, so the first refusal is an increase."""
    assert WRITE_REFUSED_CODES == ("insufficient_storage", "insufficient_memory")
    assert set(WRITE_REFUSED_CODES) <= set(errors.all_codes())
    by_name = {a.name: a.expr for a in alerts(make_cluster(instances=3))}
    assert 'code=~"insufficient_storage|insufficient_memory"' in by_name["VectorizerWritesRefused"]


@pytest.mark.parametrize(
    ("monitoring", "message"),
    [
        ({"thresholds": {"errorRatio": 2}}, "spec.monitoring.thresholds.errorRatio"),
        ({"thresholds": {"replicationLagMs": -1}}, "spec.monitoring.thresholds.replicationLagMs"),
        ({"podMonitor": {"interval": "soon"}}, "spec.monitoring.podMonitor.interval"),
        ({"thresholds": {"walSize": 1}}, "spec.monitoring.thresholds.walSize"),
    ],
)
def test_invalid_monitoring_specs(monitoring: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=re.escape(message)):
        make_cluster(monitoring=monitoring)
