"""The Prometheus Operator resources of a cluster: whether and what to apply (pure), and
whether the API server serves them at all (discovery, cached).

A PodMonitor and a PrometheusRule (builders/monitoring.py) are applied when
``spec.monitoring`` wants them and the API server serves ``monitoring.coreos.com/v1``;
ones the spec turned off are deleted if they are ours. Without the Prometheus
Operator's CRDs nothing is applied: the status condition MonitoringReady says so and
the cluster carries on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from vectorizer_operator import naming
from vectorizer_operator.builders import ChildRef
from vectorizer_operator.builders.monitoring import build_pod_monitor, build_prometheus_rule
from vectorizer_operator.model import Cluster
from vectorizer_operator.reconcile.discovery import Discovery
from vectorizer_operator.reconcile.ports import Json, Kube

CONDITION = "MonitoringReady"
REASON_APPLIED = "Applied"
REASON_ABSENT = "PrometheusOperatorAbsent"
REASON_FAILED = "ApplyFailed"
KINDS = ("PodMonitor", "PrometheusRule")


@dataclass(frozen=True)
class MonitoringCondition:
    ready: bool
    reason: str
    message: str


@dataclass(frozen=True)
class MonitoringPlan:
    apply: tuple[Json, ...] = ()
    remove: tuple[ChildRef, ...] = ()
    condition: MonitoringCondition | None = None  # None: monitoring is off, no condition


def absent_message() -> str:
    return (
        f"the API server does not serve {naming.MONITORING_API_VERSION} "
        f"({', '.join(KINDS)}): install the Prometheus Operator's CRDs to have them applied"
    )


def plan_monitoring(cluster: Cluster, available: bool) -> MonitoringPlan:
    """What to apply and delete, and the condition to report."""
    pod_monitor = build_pod_monitor(cluster)
    rule = build_prometheus_rule(cluster)
    wanted = tuple(m for m in (pod_monitor, rule) if m is not None)
    unwanted = []
    if pod_monitor is None:
        name = naming.pod_monitor(cluster.name)
        unwanted.append(ChildRef(naming.MONITORING_API_VERSION, "PodMonitor", name))
    if rule is None:
        name = naming.prometheus_rule(cluster.name)
        unwanted.append(ChildRef(naming.MONITORING_API_VERSION, "PrometheusRule", name))
    if not available:
        # Nothing to apply, and nothing of that kind can exist to be deleted.
        if not wanted:
            return MonitoringPlan()
        return MonitoringPlan(condition=MonitoringCondition(False, REASON_ABSENT, absent_message()))
    if not wanted:
        return MonitoringPlan(remove=tuple(unwanted))
    what = ", ".join(f"{m['kind']} {m['metadata']['name']}" for m in wanted)
    return MonitoringPlan(
        apply=wanted,
        remove=tuple(unwanted),
        condition=MonitoringCondition(True, REASON_APPLIED, f"{what} applied"),
    )


class MonitoringDiscovery(Discovery):
    """Whether ``monitoring.coreos.com/v1`` serves PodMonitor and PrometheusRule."""

    def __init__(self, kube: Kube, *, recheck_s: float, clock: Callable[[], float]) -> None:
        super().__init__(
            kube, naming.MONITORING_API_VERSION, KINDS, recheck_s=recheck_s, clock=clock
        )
