"""The PodMonitor and PrometheusRule of a cluster: the decision, discovery, and the apply path."""

from __future__ import annotations

from tests.operator.fakes import NS, FakeKube, Sim, cluster_body
from vectorizer_operator import naming
from vectorizer_operator.model import parse_cluster
from vectorizer_operator.reconcile.monitoring import (
    REASON_ABSENT,
    REASON_APPLIED,
    MonitoringDiscovery,
    plan_monitoring,
)
from vectorizer_operator.reconcile.ports import KubeApiError

MON = naming.MONITORING_API_VERSION


def kinds(manifests: object) -> list[str]:
    return [m["kind"] for m in manifests]  # type: ignore[attr-defined]


def condition(sim: Sim) -> dict[str, str] | None:
    found = [c for c in sim.status.get("conditions") or () if c["type"] == "MonitoringReady"]
    return found[0] if found else None


# ---- the decision --------------------------------------------------------------------


def test_plan_applies_both_when_served_and_enabled() -> None:
    plan = plan_monitoring(parse_cluster(cluster_body()), available=True)
    assert kinds(plan.apply) == ["PodMonitor", "PrometheusRule"]
    assert plan.remove == ()
    assert plan.condition is not None and plan.condition.ready
    assert plan.condition.reason == REASON_APPLIED


def test_plan_without_the_prometheus_operator_applies_nothing_and_says_why() -> None:
    plan = plan_monitoring(parse_cluster(cluster_body()), available=False)
    assert plan.apply == () and plan.remove == ()
    assert plan.condition is not None and not plan.condition.ready
    assert plan.condition.reason == REASON_ABSENT


def test_plan_respects_the_switches() -> None:
    body = cluster_body(monitoring={"podMonitor": {"enabled": False}})
    plan = plan_monitoring(parse_cluster(body), available=True)
    assert kinds(plan.apply) == ["PrometheusRule"]
    assert [(r.kind, r.name) for r in plan.remove] == [("PodMonitor", "vz")]

    off = parse_cluster(cluster_body(monitoring={"enabled": False}))
    plan = plan_monitoring(off, available=True)
    assert plan.apply == () and plan.condition is None
    assert sorted(r.kind for r in plan.remove) == ["PodMonitor", "PrometheusRule"]
    # Monitoring off and no Prometheus Operator: nothing to do, nothing to report.
    assert plan_monitoring(off, available=False).condition is None


# ---- discovery -----------------------------------------------------------------------


async def test_discovery_is_cached_and_rechecked() -> None:
    kube, now = FakeKube(), [0.0]
    discovery = MonitoringDiscovery(kube, recheck_s=300.0, clock=lambda: now[0])
    assert await discovery.available() is True
    asked = len(kube.calls)
    kube.served.clear()  # the Prometheus Operator is uninstalled
    now[0] = 100.0
    assert await discovery.available() is True  # cached
    assert len(kube.calls) == asked
    now[0] = 301.0
    assert await discovery.available() is False  # rechecked
    kube.served.add((MON, "PodMonitor"))
    discovery.invalidate()
    assert await discovery.available() is False  # PrometheusRule still missing


async def test_discovery_errors_keep_the_last_answer() -> None:
    kube, now = FakeKube(), [0.0]
    discovery = MonitoringDiscovery(kube, recheck_s=10.0, clock=lambda: now[0])
    assert await discovery.available() is True
    kube.fail[("serves", "PodMonitor")] = KubeApiError(503, "unavailable")
    now[0] = 20.0
    assert await discovery.available() is True


# ---- the apply path ------------------------------------------------------------------


async def test_reconcile_applies_the_monitoring_resources_with_owner_references() -> None:
    sim = Sim(instances=3)
    await sim.settle()
    for kind in ("PodMonitor", "PrometheusRule"):
        obj = sim.kube.find(MON, kind, "vz")
        assert obj is not None, kind
        assert obj["metadata"]["ownerReferences"][0]["uid"] == "uid-vz"
    rule = sim.kube.find(MON, "PrometheusRule", "vz")
    assert rule is not None and rule["spec"]["groups"][0]["name"] == f"vectorizer.{NS}.vz"
    cond = condition(sim)
    assert cond is not None and cond["status"] == "True" and cond["reason"] == REASON_APPLIED
    # Discovery is asked once, not on every pass.
    assert len([c for c in sim.kube.calls if c == ("serves", "PodMonitor", MON)]) == 1


async def test_a_deleted_or_edited_monitoring_resource_is_restored() -> None:
    sim = Sim(instances=1)
    await sim.settle()
    del sim.kube.objects[(MON, "PodMonitor", NS, "vz")]
    rule = sim.kube.find(MON, "PrometheusRule", "vz")
    assert rule is not None
    rule["spec"]["groups"] = []
    await sim.step()
    assert sim.kube.find(MON, "PodMonitor", "vz") is not None
    rule = sim.kube.find(MON, "PrometheusRule", "vz")
    assert rule is not None and rule["spec"]["groups"]


async def test_thresholds_follow_the_spec() -> None:
    sim = Sim(instances=1)
    await sim.settle()
    sim.edit_spec(monitoring={"thresholds": {"walSizeBytes": 12345}})
    await sim.settle()
    rule = sim.kube.find(MON, "PrometheusRule", "vz")
    assert rule is not None
    exprs = [r["expr"] for r in rule["spec"]["groups"][0]["rules"]]
    assert any("> 12345" in e for e in exprs)


async def test_switching_monitoring_off_deletes_what_is_ours() -> None:
    sim = Sim(instances=1)
    await sim.settle()
    sim.edit_spec(monitoring={"prometheusRule": {"enabled": False}})
    await sim.settle()
    assert sim.kube.find(MON, "PrometheusRule", "vz") is None
    assert sim.kube.find(MON, "PodMonitor", "vz") is not None
    sim.edit_spec(monitoring={"enabled": False})
    await sim.settle()
    assert sim.kube.find(MON, "PodMonitor", "vz") is None
    assert condition(sim) is None


async def test_a_foreign_podmonitor_of_the_same_name_is_not_deleted() -> None:
    sim = Sim(instances=1, monitoring={"enabled": False})
    sim.kube.put(
        {"apiVersion": MON, "kind": "PodMonitor", "metadata": {"name": "vz", "namespace": NS}}
    )
    await sim.settle()
    assert sim.kube.find(MON, "PodMonitor", "vz") is not None


async def test_without_the_prometheus_operator_the_cluster_carries_on() -> None:
    sim = Sim(instances=3)
    sim.kube.served.clear()
    status = await sim.settle()
    assert status["phase"] == "Healthy"
    assert sim.kube.of_kind("PodMonitor") == [] and sim.kube.of_kind("PrometheusRule") == []
    assert not [c for c in sim.kube.calls if c[0] == "apply" and c[1] == "PodMonitor"]
    cond = condition(sim)
    assert cond is not None and cond["status"] == "False" and cond["reason"] == REASON_ABSENT
    warnings = [e for e in sim.kube.events if e[1] == REASON_ABSENT]
    assert len(warnings) == 1 and warnings[0][0] == "Warning"  # once, not every pass


async def test_installing_the_prometheus_operator_later_is_noticed() -> None:
    sim = Sim(instances=1)
    sim.kube.served.clear()
    await sim.settle()
    sim.kube.served |= {(MON, "PodMonitor"), (MON, "PrometheusRule")}
    sim.time += sim.settings.discovery_recheck_s
    await sim.step()
    assert sim.kube.find(MON, "PodMonitor", "vz") is not None
    cond = condition(sim)
    assert cond is not None and cond["status"] == "True"


async def test_crds_removed_between_discoveries() -> None:
    sim = Sim(instances=1)
    await sim.settle()
    sim.kube.served.clear()  # uninstalled; the cached answer still says served
    result = await sim.step()
    assert result.phase == "Healthy"
    cond = condition(sim)
    assert cond is not None and cond["reason"] == REASON_ABSENT


async def test_an_apply_failure_is_reported_not_fatal() -> None:
    sim = Sim(instances=1)
    sim.kube.fail[("apply", "PrometheusRule")] = KubeApiError(422, "invalid", "Invalid")
    status = await sim.settle()
    assert status["phase"] == "Healthy"
    cond = condition(sim)
    assert cond is not None and cond["status"] == "False" and cond["reason"] == "ApplyFailed"
    assert any(e[1] == "ApplyFailed" for e in sim.kube.events)
