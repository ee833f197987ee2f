"""The Helm chart: lint, render, and RBAC that is exactly what the operator uses."""

from __future__ import annotations

import asyncio
import json
import subprocess
from typing import Any

import pytest
import yaml

from tests.operator.fakes import Sim
from tests.operator.helm import ROOT, find_helm
from vectorizer_operator import naming

CHART = ROOT / "charts" / "vectorizer-operator"
# The first test may build helm from the Go module proxy (minutes on a cold cache).
pytestmark = pytest.mark.timeout(2700)


@pytest.fixture(scope="module")
def helm() -> str:
    path, why = find_helm()
    if path is None:  # environmental: no Go toolchain (and no helm) on this machine
        pytest.skip(why)
    return path


def render(helm: str, *sets: str, namespace: str = "ops") -> list[dict[str, Any]]:
    args = [helm, "template", "vz", str(CHART), "--namespace", namespace]
    for s in sets:
        args += ["--set", s]
    out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=120).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def test_lint(helm: str) -> None:
    done = subprocess.run(
        [helm, "lint", "--strict", str(CHART)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_chart_carries_the_generated_crd() -> None:
    assert (CHART / "crds" / "vectorizercluster.yaml").read_text() == (
        ROOT / "crds" / "vectorizercluster.yaml"
    ).read_text()


def test_deployment_runs_vectorizer_operator(helm: str) -> None:
    docs = render(helm)
    [deploy] = by_kind(docs, "Deployment")
    pod = deploy["spec"]["template"]["spec"]
    [c] = pod["containers"]
    assert c["command"] == ["vectorizer"] and c["args"][0] == "operator"
    assert c["image"] == "vectorizer:0.1.0"
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in c["env"]}
    assert env["VECTORIZER_OPERATOR_NAMESPACES"] == ""
    assert env["VECTORIZER_OPERATOR_STANDALONE"] == "false"
    assert env["VECTORIZER_OPERATOR_DEFAULT_IMAGE"] == "vectorizer:0.1.0"
    assert env["VECTORIZER_OPERATOR_LIVENESS"] == "http://0.0.0.0:8080/healthz"
    assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["serviceAccountName"] == "vz-vectorizer-operator"


def test_every_env_var_is_an_operator_setting(helm: str) -> None:
    from vectorizer_operator.settings import ENV_PREFIX, OperatorSettings

    names = {ENV_PREFIX + f.upper() for f in OperatorSettings.__dataclass_fields__}
    [deploy] = by_kind(render(helm), "Deployment")
    ours = {
        e["name"]
        for e in deploy["spec"]["template"]["spec"]["containers"][0]["env"]
        if e["name"].startswith(ENV_PREFIX)
    }
    assert ours <= names


def test_cluster_wide_by_default(helm: str) -> None:
    docs = render(helm)
    assert len(by_kind(docs, "ClusterRole")) == 1 and len(by_kind(docs, "ClusterRoleBinding")) == 1
    roles = by_kind(docs, "Role")
    assert [r["metadata"]["name"] for r in roles] == ["vz-vectorizer-operator-leader-election"]


def test_namespaced_mode_grants_only_those_namespaces(helm: str) -> None:
    docs = render(helm, "watchNamespaces={a,b}")
    assert by_kind(docs, "ClusterRole") == []
    roles = {(r["metadata"]["namespace"], r["metadata"]["name"]) for r in by_kind(docs, "Role")}
    assert {("a", "vz-vectorizer-operator"), ("b", "vz-vectorizer-operator")} <= roles
    bindings = by_kind(docs, "RoleBinding")
    assert all(b["subjects"][0]["namespace"] == "ops" for b in bindings)
    [deploy] = by_kind(docs, "Deployment")
    env = {
        e["name"]: e.get("value")
        for e in deploy["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["VECTORIZER_OPERATOR_NAMESPACES"] == "a,b"


def test_namespace_patterns_add_namespace_reads(helm: str) -> None:
    docs = render(helm, "watchNamespaces={team-*}")
    [role] = by_kind(docs, "ClusterRole")
    assert any("namespaces" in r["resources"] for r in role["rules"])


def test_without_leader_election_there_is_no_lease_role(helm: str) -> None:
    docs = render(helm, "leaderElection.enabled=false")
    assert all("leader" not in r["metadata"]["name"] for r in by_kind(docs, "Role"))
    [deploy] = by_kind(docs, "Deployment")
    env = {
        e["name"]: e.get("value")
        for e in deploy["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["VECTORIZER_OPERATOR_STANDALONE"] == "true"


def test_values_are_validated(helm: str) -> None:
    done = subprocess.run(
        [helm, "template", "vz", str(CHART), "--set", "logFormat=xml"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0 and "logFormat" in done.stderr


# ---- least privilege: the rules are what the code uses -----------------------------------

GROUPS = {
    "Pod": ("", "pods"),
    "Service": ("", "services"),
    "ConfigMap": ("", "configmaps"),
    "ServiceAccount": ("", "serviceaccounts"),
    "PersistentVolumeClaim": ("", "persistentvolumeclaims"),
    "StatefulSet": ("apps", "statefulsets"),
    "PodDisruptionBudget": ("policy", "poddisruptionbudgets"),
    "VectorizerCluster": ("vectorizer.io", "vectorizerclusters"),
    "PodMonitor": ("monitoring.coreos.com", "podmonitors"),
    "PrometheusRule": ("monitoring.coreos.com", "prometheusrules"),
    "Secret": ("", "secrets"),
    "Certificate": ("cert-manager.io", "certificates"),
}
VERBS = {
    "get": ["get"],
    "list": ["list"],
    "apply": ["create", "patch"],
    "dry-run": ["create", "patch"],  # authorized like the apply it tries out
    "patch": ["patch"],
    "delete": ["delete"],
}
# Watched by kopf (handlers/clusters.py).
WATCHED = [
    ("vectorizer.io", "vectorizerclusters"),
    ("", "pods"),
    ("apps", "statefulsets"),
    ("", "services"),
]
# Granted on purpose beyond the calls: owner references with blockOwnerDeletion.
JUSTIFIED = {("vectorizer.io", "vectorizerclusters/finalizers", "update")}


def used_permissions() -> set[tuple[str, str, str]]:
    """Every (group, resource, verb) the reconciler used across a busy life of a cluster."""

    async def life() -> list[tuple[str, str, str]]:
        sim = Sim(instances=3, primaryUpdateMethod="switchover")
        sim.kube.served.add((naming.CERT_MANAGER_API_VERSION, "Certificate"))
        await sim.settle()
        sim.edit_spec(tls={"certManager": {"issuerRef": {"name": "ca-issuer"}}})
        await sim.settle()
        sim.edit_spec(tls={"certManager": None})
        await sim.settle()
        sim.edit_spec(image="v2", storage={"size": "2Gi"}, podDisruptionBudget={"enabled": False})
        await sim.settle(60)
        sim.edit_spec(instances=1, monitoring={"enabled": False})
        await sim.settle()
        return sim.kube.calls

    used: set[tuple[str, str, str]] = set()
    for method, kind, _ in asyncio.run(life()):
        if method == "patch_status":
            used.add(("vectorizer.io", "vectorizerclusters/status", "patch"))
            continue
        if method == "serves":
            continue  # API discovery: every account may read it (system:discovery)
        group, resource = GROUPS[kind]
        used |= {(group, resource, verb) for verb in VERBS[method]}
    used |= {(g, r, v) for g, r in WATCHED for v in ("list", "watch")}
    used.add(("", "events", "create"))  # Reconciler._event -> KubeClient.emit_event
    return used


def granted(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {
        (g, r, v)
        for rule in rules
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }


def test_rbac_grants_what_the_operator_uses_and_little_more(helm: str) -> None:
    [role] = by_kind(render(helm), "ClusterRole")
    have, need = granted(role["rules"]), used_permissions()
    assert need <= have, f"missing: {sorted(need - have)}"
    assert have - need <= JUSTIFIED, f"granted but unused: {sorted(have - need - JUSTIFIED)}"


def test_lease_rules(helm: str) -> None:
    docs = render(helm)
    [lease_role] = [
        r for r in by_kind(docs, "Role") if r["metadata"]["name"].endswith("leader-election")
    ]
    assert lease_role["metadata"]["namespace"] == "ops"
    have = granted(lease_role["rules"])
    assert have == {("coordination.k8s.io", "leases", v) for v in ("create", "get", "update")}
    assert lease_role["rules"][1]["resourceNames"] == ["vectorizer-operator"]


def test_chart_files_exist() -> None:
    for name in (
        "Chart.yaml",
        "values.yaml",
        "values.schema.json",
        "templates/deployment.yaml",
        "templates/rbac.yaml",
    ):
        assert (CHART / name).exists(), name


def test_grafana_dashboard_is_opt_in(helm: str) -> None:
    assert not [
        d for d in by_kind(render(helm), "ConfigMap") if "dashboard" in d["metadata"]["name"]
    ]
    docs = render(helm, "grafanaDashboard.enabled=true", "grafanaDashboard.namespace=grafana")
    (cm,) = by_kind(docs, "ConfigMap")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["namespace"] == "grafana"
    shipped = (CHART / "dashboards" / "vectorizer.json").read_text()
    assert json.loads(cm["data"]["vectorizer.json"]) == json.loads(shipped)


def test_metrics_port_is_exposed_and_can_be_turned_off(helm: str) -> None:
    def container(*sets: str) -> dict[str, Any]:
        [deploy] = by_kind(render(helm, *sets), "Deployment")
        c: dict[str, Any] = deploy["spec"]["template"]["spec"]["containers"][0]
        return c

    c = container()
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert ports["metrics"] == 9102 and env["VECTORIZER_OPERATOR_METRICS_PORT"] == "9102"
    c = container("metrics.port=9300")
    assert {p["name"]: p["containerPort"] for p in c["ports"]}["metrics"] == 9300
    c = container("metrics.enabled=false")
    assert "metrics" not in {p["name"] for p in c["ports"]}
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["VECTORIZER_OPERATOR_METRICS_PORT"] == "0"
