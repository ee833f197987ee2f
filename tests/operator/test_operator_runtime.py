"""Settings, CLI, kopf wiring and the runtime (handlers are called directly, no cluster)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf
import pytest

from tests.operator.fakes import NS, FakeDataPlane, FakeKube, cluster_body
from vectorizer_operator import main, naming
from vectorizer_operator.handlers import clusters, lifecycle
from vectorizer_operator.runtime import OperatorUnhealthy, Runtime
from vectorizer_operator.settings import OperatorSettings, load


def test_settings_defaults_env_and_flags() -> None:
    s = load({}, env={"POD_NAMESPACE": "ops", "POD_NAME": "op-0"})
    assert s.clusterwide and s.namespaces == ()
    assert (s.lease_namespace, s.identity, s.peering_name) == ("ops", "op-0", "vectorizer-operator")
    env = {
        "VECTORIZER_OPERATOR_NAMESPACES": "a, b",
        "VECTORIZER_OPERATOR_STANDALONE": "true",
        "VECTORIZER_OPERATOR_RESYNC_S": "3",
    }
    s = load({"resync_s": "4"}, env=env)
    assert s.namespaces == ("a", "b") and not s.clusterwide
    assert s.standalone is True and s.resync_s == 4.0
    with pytest.raises(ValueError):
        load({"pod_address": "carrier-pigeon"}, env={})
    with pytest.raises(ValueError):
        load({}, env={"VECTORIZER_OPERATOR_STANDALONE": "maybe"})
    for name, raw in (
        ("metrics_port", "-1"),
        ("metrics_port", "70000"),
        ("resync_s", "-5"),
        ("resync_s", "nan"),
        ("lease_duration_s", "0"),
        ("dataplane_timeout_s", "inf"),
        ("max_catchup_lag", "-1"),
        ("switchover_timeout_s", "0"),
        ("log_level", "loud"),
    ):
        with pytest.raises(ValueError, match=name):
            load({name: raw}, env={})
    assert load({"metrics_port": "0", "log_level": "debug"}, env={}).metrics_port == 0


def test_cli_flags() -> None:
    s = main.parse_settings(["-n", "a", "--namespace", "b", "--standalone", "--log-format", "text"])
    assert s.namespaces == ("a", "b") and s.standalone and s.log_format == "text"
    assert main.parse_settings(["-A"]).clusterwide


def test_run_hands_the_settings_to_kopf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VECTORIZER_OPERATOR_LIVENESS", "")
    seen: dict[str, Any] = {}
    code = main.run(
        ["-n", "db", "--peering-name", "p", "--log-format", "text"],
        runner=lambda **kw: seen.update(kw),
    )
    assert code == 0
    assert seen["standalone"] is True  # kopf peering off: the Lease elects
    assert seen["clusterwide"] is False and seen["namespaces"] == ["db"]
    assert seen["liveness_endpoint"] is None
    config: OperatorSettings = seen["memo"].config
    assert config.peering_name == "p"
    assert logging.getLogger("kopf.objects").level == logging.WARNING


def test_run_rejects_bad_settings(capsys: pytest.CaptureFixture[str]) -> None:
    assert main.run(["--pod-address", "nope"], runner=lambda **kw: None) == 2
    assert "pod_address" in capsys.readouterr().err


def test_kopf_settings() -> None:
    settings = kopf.OperatorSettings()
    lifecycle.configure_kopf(settings, OperatorSettings(namespaces=("db",)))
    assert settings.posting.enabled is False
    assert settings.scanning.disabled is True
    assert settings.watching.server_timeout == 300
    assert set(settings.watching.label_selectors.values()) == {naming.LABEL_CLUSTER}
    lifecycle.configure_kopf(settings, OperatorSettings(namespaces=("team-*",)))
    assert settings.scanning.disabled is False


class Woken:
    def __init__(self) -> None:
        self.keys: list[tuple[str | None, str | None]] = []

    def wake(self, namespace: str | None, name: str | None) -> None:
        self.keys.append((namespace, name))


def test_handlers_only_wake_the_loop() -> None:
    memo = kopf.Memo(runtime=Woken())
    assert clusters.cluster_keys(namespace="db", name="vz") == {("db", "vz"): None}
    clusters.cluster_changed(namespace="db", name="vz", memo=memo)
    clusters.pod_changed(namespace="db", labels={naming.LABEL_CLUSTER: "vz"}, memo=memo)
    clusters.statefulset_changed(namespace="db", labels={naming.LABEL_CLUSTER: "vz"}, memo=memo)
    clusters.service_changed(namespace="db", labels={naming.LABEL_CLUSTER: "other"}, memo=memo)
    assert memo.runtime.keys == [("db", "vz"), ("db", "vz"), ("db", "vz"), ("db", "other")]


def test_no_handler_can_add_a_finalizer() -> None:
    """Only watching, indexing and activity handlers: kopf adds no finalizer for those."""
    registry = kopf.get_default_registry()
    assert len(registry._watching.get_all_handlers()) == 4
    assert registry._spawning.get_all_handlers() == []  # no timers or daemons
    assert registry._changing.get_all_handlers() == []  # no create/update/delete handlers


async def test_runtime_reconciles_what_the_index_holds() -> None:
    kube, dp = FakeKube(), FakeDataPlane()
    kube.put(cluster_body(instances=1))
    settings = OperatorSettings(standalone=True, resync_s=0.05, identity="t", lease_namespace="ops")
    runtime = Runtime.build(settings, keys=lambda: [(NS, "vz")], kube=kube, dataplane=dp)
    runtime.start()
    try:
        for _ in range(100):
            await asyncio.sleep(0.02)
            if kube.find("apps/v1", "StatefulSet", "vz") is not None:
                break
        assert kube.find("apps/v1", "StatefulSet", "vz") is not None
        health = runtime.health()
        assert health["leader"] is True and health["passes"] >= 1
    finally:
        await runtime.stop()
    dead = asyncio.create_task(asyncio.sleep(0), name="reconcile loop")
    await dead
    runtime.tasks.append(dead)
    with pytest.raises(OperatorUnhealthy, match="reconcile loop"):
        runtime.health()


async def test_runtime_with_leader_election() -> None:
    kube, dp = FakeKube(), FakeDataPlane()
    settings = OperatorSettings(identity="op-a", lease_namespace="ops", peering_name="vz-op")
    runtime = Runtime.build(settings, keys=lambda: [], kube=kube, dataplane=dp, leases=kube)
    runtime.start()
    try:
        for _ in range(50):
            await asyncio.sleep(0.02)
            if runtime.health()["leader"]:
                break
        assert runtime.health() == {"leader": True, "holder": "op-a", "passes": 0}
    finally:
        await runtime.stop()
    lease = kube.find("coordination.k8s.io/v1", "Lease", "vz-op", "ops")
    assert lease is not None and lease["spec"]["holderIdentity"] is None  # released


def test_probe_reports_the_runtime() -> None:
    class Healthy:
        def health(self) -> dict[str, Any]:
            return {"leader": True}

    assert lifecycle.reconciler_health(memo=kopf.Memo(runtime=Healthy())) == {"leader": True}
