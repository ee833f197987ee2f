"""Prometheus Operator resources of a cluster: a PodMonitor and a PrometheusRule.

The alert rules are data here, built from the cluster's spec (thresholds, instance
count); the same groups are checked by ``promtool`` in the tests and documented by the
runbooks in docs/runbooks/<alert>.md. Every series is selected by the cluster label the
PodMonitor adds and by namespace, so two clusters' alerts never see each other.
"""

from __future__ import annotations

from dataclasses import dataclass

from vectorizer import errors
from vectorizer_operator import naming
from vectorizer_operator.builders.common import Json, metadata
from vectorizer_operator.builders.security import tls_secret_name
from vectorizer_operator.model import Cluster

SERVER_ERROR_STATUS = 500
# The write guards' refusals: free disk below its reserve, memory past its high-water mark.
WRITE_REFUSED_CODES = (errors.InsufficientStorage.code, errors.InsufficientMemory.code)
# Warn while free disk is below this multiple of the reserve (and the reserve is on)...
DISK_RESERVE_MARGIN = 1.5
# ... and while anonymous memory is above this share of the high-water mark (guard on).
MEMORY_HIGH_WATER_SHARE = 0.9


def server_error_codes() -> list[str]:
    """Label values of vectorizer_api_errors_total that mean "the server failed" (5xx),
    as opposed to a client's mistake; read from the data plane's own error classes."""
    return [
        code
        for code in errors.all_codes()
        if errors.error_class_for(code).status >= SERVER_ERROR_STATUS
    ]


@dataclass(frozen=True)
class Alert:
    """One alerting rule; ``name`` is also the runbook's file name."""

    name: str
    expr: str
    duration: str
    severity: str
    summary: str
    description: str


def selector(cluster: Cluster, *extra: str) -> str:
    """The PromQL label matchers of one cluster's series, plus ``extra`` matchers."""
    matchers = [
        f'namespace="{cluster.namespace}"',
        f'{naming.METRICS_CLUSTER_LABEL}="{cluster.name}"',
        *extra,
    ]
    return "{" + ", ".join(matchers) + "}"


def alerts(cluster: Cluster) -> list[Alert]:
    """The cluster's alerts, thresholds from ``spec.monitoring.thresholds``."""
    t = cluster.spec.monitoring.thresholds
    sel = selector(cluster)
    primary = selector(cluster, f'role="{naming.ROLE_PRIMARY}"')
    replica = selector(cluster, f'role="{naming.ROLE_REPLICA}"')
    errors_sel = selector(cluster, f'code=~"{"|".join(server_error_codes())}"')
    refused_sel = selector(cluster, f'code=~"{"|".join(WRITE_REFUSED_CODES)}"')
    where = f"{cluster.namespace}/{cluster.name}"
    return [
        Alert(
            "VectorizerInstanceDown",
            f"up{sel} == 0 or vectorizer_ready{sel} == 0",
            "5m",
            "critical",
            f"Vectorizer instance {{{{ $labels.pod }}}} of {where} is down or not ready",
            "The instance cannot be scraped or has not recovered its data for 5 minutes.",
        ),
        Alert(
            "VectorizerNoPrimary",
            f"(sum(vectorizer_replication_role{primary}) or vector(0)) == 0",
            "2m",
            "critical",
            f"Vectorizer cluster {where} has no primary",
            "No instance reports the primary role: writes fail until one is promoted.",
        ),
        Alert(
            "VectorizerMultiplePrimaries",
            f"sum(vectorizer_replication_role{primary}) > 1",
            "1m",
            "critical",
            f"Vectorizer cluster {where} has {{{{ $value }}}} primaries",
            "More than one instance reports the primary role (split brain): writes may diverge.",
        ),
        Alert(
            "VectorizerReplicationLagHigh",
            f"vectorizer_replication_lag_ms{sel} > {t.replication_lag_ms:g}"
            f" and on(namespace, pod) vectorizer_replication_role{replica} == 1",
            "5m",
            "warning",
            f"Replica {{{{ $labels.pod }}}} of {where} lags {{{{ $value }}}} ms behind",
            f"The replica has been more than {t.replication_lag_ms:g} ms behind its primary "
            "for 5 minutes; reads from it are stale and a failover to it would lose less "
            "only once it catches up.",
        ),
        Alert(
            "VectorizerReplicaDisconnected",
            f"vectorizer_replication_connected_replicas{sel} < {cluster.spec.instances - 1}"
            f" and on(namespace, pod) vectorizer_replication_role{primary} == 1",
            "5m",
            "warning",
            f"Primary {{{{ $labels.pod }}}} of {where} has {{{{ $value }}}} of "
            f"{cluster.spec.instances - 1} replicas connected",
            "Fewer replicas than the cluster has follow the primary: redundancy is reduced "
            "and sync-mode writes may time out.",
        ),
        Alert(
            "VectorizerErrorRateHigh",
            f"sum(rate(vectorizer_api_errors_total{errors_sel}[5m]))"
            f" / sum(rate(vectorizer_http_requests_total{sel}[5m])) > {t.error_ratio:g}",
            "5m",
            "warning",
            f"Vectorizer cluster {where} answers {{{{ $value | humanizePercentage }}}} "
            "of requests with server errors",
            f"More than {t.error_ratio:g} of requests failed with a server error "
            f"({', '.join(server_error_codes())}) over 5 minutes.",
        ),
        Alert(
            "VectorizerSearchLatencyHigh",
            # A p99 past the largest finite bucket reads as that bucket's bound, which is
            # the threshold's maximum (AlertThresholds): ">=", so that it too can fire.
            "histogram_quantile(0.99, sum by (namespace, pod, le) "
            f"(rate(vectorizer_search_latency_seconds_bucket{sel}[5m])))"
            f" >= {t.search_p99_seconds:g}",
            "10m",
            "warning",
            f"Search p99 latency of {{{{ $labels.pod }}}} in {where} is {{{{ $value }}}}s",
            f"The 99th percentile of search latency has been at or above "
            f"{t.search_p99_seconds:g}s for 10 minutes.",
        ),
        Alert(
            "VectorizerWalSizeHigh",
            f"vectorizer_wal_size_bytes{sel} > {t.wal_size_bytes}",
            "15m",
            "warning",
            f"Write-ahead log of {{{{ $labels.pod }}}} in {where} is "
            "{{ $value | humanize1024 }}B",
            f"The log has retained more than {t.wal_size_bytes} bytes for 15 minutes: "
            "snapshots are not truncating it, and the volume may fill up.",
        ),
        Alert(
            "VectorizerSnapshotTooOld",
            f"vectorizer_snapshot_age_seconds{sel} > {t.snapshot_age_seconds}"
            " and on(namespace, pod) "
            # "Writes arrived": the sequence at the window's end above the one at its
            # start (delta() compares the two ends; a gap between, a node recovering,
            # changes nothing). Not changes(), nor increase() (which takes a drop for a
            # counter reset): a dip to 0 and back, as data planes that exported 0 while
            # they recovered still do, counted as writes on an idle node. A dip now
            # counts only while it is the window's first sample, one evaluation, which
            # the rule's `for` absorbs.
            f"delta(vectorizer_wal_sequence{sel}[{t.snapshot_age_seconds}s]) > 0",
            "10m",
            "warning",
            f"Newest snapshot of {{{{ $labels.pod }}}} in {where} is "
            "{{ $value | humanizeDuration }} old",
            f"Writes arrived but no snapshot was taken for more than "
            f"{t.snapshot_age_seconds}s: a restart replays the whole log.",
        ),
        Alert(
            "VectorizerDiskNearReserve",
            f"vectorizer_disk_free_bytes{sel}"
            # (with no reserve, 0, free space is never below it)
            f" < {DISK_RESERVE_MARGIN:g} * vectorizer_disk_reserve_bytes{sel}",
            "10m",
            "warning",
            f"Volume of {{{{ $labels.pod }}}} in {where} has "
            "{{ $value | humanize1024 }}B free, close to its reserve",
            f"Free disk space has been below {DISK_RESERVE_MARGIN:g} times the reserve kept "
            "for the next snapshot for 10 minutes: once it is below the reserve, writes "
            "that add data are refused (insufficient_storage).",
        ),
        Alert(
            "VectorizerMemoryNearHighWater",
            f"vectorizer_memory_anonymous_bytes{sel}"
            f" > {MEMORY_HIGH_WATER_SHARE:g} * vectorizer_memory_high_water_bytes{sel}"
            f" and on(namespace, pod) vectorizer_memory_high_water_bytes{sel} > 0",
            "10m",
            "warning",
            f"Anonymous memory of {{{{ $labels.pod }}}} in {where} is "
            "{{ $value | humanize1024 }}B, close to its high-water mark",
            f"Anonymous memory has been above {MEMORY_HIGH_WATER_SHARE:.0%} of the memory "
            "guard's high-water mark for 10 minutes: past the mark, writes that add data "
            "are refused (insufficient_memory).",
        ),
        Alert(
            "VectorizerWritesRefused",
            f"increase(vectorizer_api_errors_total{refused_sel}[5m]) > 0",
            "0m",
            "critical",
            f"{{{{ $labels.pod }}}} of {where} refuses writes: {{{{ $labels.code }}}}",
            "The instance refused writes that add data in the last 5 minutes because its "
            "disk is down to the reserve (insufficient_storage) or its memory is past the "
            "high-water mark (insufficient_memory); reads and deletes go on.",
        ),
    ]


def runbook_url(cluster: Cluster, alert: str) -> str:
    base = cluster.spec.monitoring.prometheus_rule.runbook_base_url.rstrip("/")
    return f"{base}/{alert}.md"


def rule_groups(cluster: Cluster) -> list[Json]:
    """The ``groups`` of a Prometheus rules file (also the PrometheusRule's spec)."""
    rules = [
        {
            "alert": a.name,
            "expr": a.expr,
            "for": a.duration,
            "labels": {"severity": a.severity},
            "annotations": {
                "summary": a.summary,
                "description": a.description,
                "runbook_url": runbook_url(cluster, a.name),
            },
        }
        for a in alerts(cluster)
    ]
    return [{"name": f"vectorizer.{cluster.namespace}.{cluster.name}", "rules": rules}]


def build_prometheus_rule(cluster: Cluster) -> Json | None:
    mon = cluster.spec.monitoring
    if not (mon.enabled and mon.prometheus_rule.enabled):
        return None
    return {
        "apiVersion": naming.MONITORING_API_VERSION,
        "kind": "PrometheusRule",
        "metadata": metadata(
            cluster, naming.prometheus_rule(cluster.name), labels=mon.prometheus_rule.labels
        ),
        "spec": {"groups": rule_groups(cluster)},
    }


def _scrape_tls(cluster: Cluster) -> Json:
    """HTTPS scraping that verifies the pods against the cluster's CA bundle.

    Prometheus scrapes pod IPs, which no certificate names: it verifies the name of
    the cluster's -r Service instead, which every server certificate carries.
    """
    if not cluster.spec.tls.enabled:
        return {}
    return {
        "scheme": "https",
        "tlsConfig": {
            "ca": {"secret": {"name": tls_secret_name(cluster), "key": naming.CA_CERT_KEY}},
            "serverName": f"{naming.r_service(cluster.name)}.{cluster.namespace}.svc",
        },
    }


def _scrape_auth(cluster: Cluster) -> Json:
    """The API key Prometheus presents, as a bearer token (the data plane takes a key
    there too); the spec refuses a PodMonitor without one where /metrics needs one."""
    secret = cluster.spec.monitoring.pod_monitor.api_key_secret
    if secret is None:
        return {}
    return {
        "authorization": {
            "type": "Bearer",
            "credentials": {"name": secret.name, "key": secret.key},
        }
    }


def build_pod_monitor(cluster: Cluster) -> Json | None:
    """Scrapes every instance's data-plane port; adds the cluster label the rules select."""
    mon = cluster.spec.monitoring
    if not (mon.enabled and mon.pod_monitor.enabled):
        return None
    cluster_label = naming.LABEL_CLUSTER.replace(".", "_").replace("/", "_")
    return {
        "apiVersion": naming.MONITORING_API_VERSION,
        "kind": "PodMonitor",
        "metadata": metadata(
            cluster, naming.pod_monitor(cluster.name), labels=mon.pod_monitor.labels
        ),
        "spec": {
            "selector": {"matchLabels": naming.selector_labels(cluster.name)},
            "namespaceSelector": {"matchNames": [cluster.namespace]},
            "podMetricsEndpoints": [
                {
                    "port": naming.HTTP_PORT_NAME,
                    "path": naming.METRICS_PATH,
                    "interval": mon.pod_monitor.interval,
                    **_scrape_tls(cluster),
                    **_scrape_auth(cluster),
                    "relabelings": [
                        {
                            "sourceLabels": [f"__meta_kubernetes_pod_label_{cluster_label}"],
                            "targetLabel": naming.METRICS_CLUSTER_LABEL,
                        }
                    ],
                }
            ],
        },
    }
