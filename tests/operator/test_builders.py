"""Every builder: pure functions from a parsed cluster to manifests."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from tests.operator.conftest import OPTIONS, make_cluster
from vectorizer.settings import ENV_PREFIX, Settings
from vectorizer_operator import naming
from vectorizer_operator.builders import absent_children, desired_children
from vectorizer_operator.builders.configmap import build_configmap, config_hash
from vectorizer_operator.builders.pdb import build_pdb
from vectorizer_operator.builders.serviceaccount import build_serviceaccount
from vectorizer_operator.builders.services import (
    build_headless_service,
    build_r_service,
    build_ro_service,
    build_rw_service,
)
from vectorizer_operator.builders.statefulset import (
    build_affinity,
    build_statefulset,
    preserve_immutable,
)

Json = dict[str, Any]


def sts(**spec: Any) -> Json:
    return build_statefulset(make_cluster(**spec), OPTIONS, replicas=spec.get("instances", 1))


def container(manifest: Json) -> Json:
    containers = manifest["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def env(manifest: Json) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(manifest)["env"]}


def test_every_child_is_owned_and_labelled() -> None:
    cluster = make_cluster(instances=3)
    children = desired_children(cluster, OPTIONS, replicas=3)
    kinds = [c["kind"] for c in children]
    assert kinds == [
        "ServiceAccount",
        "ConfigMap",
        "Service",
        "Service",
        "Service",
        "Service",
        "StatefulSet",
        "PodDisruptionBudget",
    ]
    for child in children:
        meta = child["metadata"]
        assert meta["namespace"] == "db"
        assert meta["ownerReferences"] == [cluster.owner_reference()]
        assert meta["labels"][naming.LABEL_CLUSTER] == "vz"
        assert meta["labels"][naming.LABEL_MANAGED_BY] == naming.MANAGED_BY
    assert len({(c["kind"], c["metadata"]["name"]) for c in children}) == len(children)


def test_statefulset_shape() -> None:
    m = sts(instances=3)
    spec = m["spec"]
    assert m["metadata"]["name"] == "vz"
    assert spec["replicas"] == 3
    assert spec["updateStrategy"] == {"type": "OnDelete"}
    assert spec["podManagementPolicy"] == "Parallel"
    assert spec["serviceName"] == "vz-headless"
    assert spec["selector"] == {"matchLabels": {naming.LABEL_CLUSTER: "vz"}}
    template_labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= template_labels.items()
    # Role labels come from the nodes' reports, never from the template.
    assert naming.LABEL_ROLE not in template_labels
    assert spec["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Retain",
        "whenScaled": "Delete",
    }


def test_container_runs_vectorizer_serve_as_a_replica_without_primary() -> None:
    m = sts(instances=3)
    c = container(m)
    assert c["command"] == ["vectorizer"]
    assert c["args"] == ["serve"]
    assert c["image"] == "vectorizer:test"
    e = env(m)
    assert e["VECTORIZER_ROLE"] == "replica"
    assert "VECTORIZER_PRIMARY_URL" not in e
    assert e["VECTORIZER_NODE_ID"] == "$(POD_NAME)"
    assert (
        e["VECTORIZER_ADVERTISE_URL"]
        == "https://$(POD_NAME).vz-headless.db.svc.cluster.local:15002"
    )
    assert e["VECTORIZER_HOST"] == "0.0.0.0"
    assert e["VECTORIZER_PORT"] == "15002"
    assert e["VECTORIZER_SYNC_REPLICAS"] == "0"
    # $(POD_NAME) only expands to a variable defined before it.
    assert [x["name"] for x in c["env"]][0] == "POD_NAME"
    assert c["envFrom"] == [{"configMapRef": {"name": "vz-config"}}]


def test_data_dir_is_the_claim_mount_path() -> None:
    m = sts()
    mounts = {v["name"]: v["mountPath"] for v in container(m)["volumeMounts"]}
    assert env(m)["VECTORIZER_DATA_DIR"] == mounts[naming.DATA_VOLUME] == naming.DATA_MOUNT_PATH
    claim = m["spec"]["volumeClaimTemplates"][0]
    assert claim["metadata"]["name"] == naming.DATA_VOLUME
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert "storageClassName" not in claim["spec"]
    # Scratch space is not /tmp: a volume there would hide a process pod's host /tmp.
    assert env(m)["TMPDIR"] == mounts[naming.TMP_VOLUME] != "/tmp"


def test_every_env_var_we_set_is_a_data_plane_setting() -> None:
    names = {ENV_PREFIX + f.name.upper() for f in fields(Settings)}
    ours = {k for k in env(sts()) if k.startswith(ENV_PREFIX)}
    assert ours and ours <= names


def test_probes_and_ports() -> None:
    c = container(sts())
    assert c["ports"] == [{"name": "http", "containerPort": 15002, "protocol": "TCP"}]
    assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http", "scheme": "HTTPS"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http", "scheme": "HTTPS"}
    assert c["startupProbe"]["httpGet"]["path"] == "/health"


def test_security_context_is_non_root() -> None:
    pod = sts()["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == naming.RUN_AS_USER
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == "vz"
    c = pod["containers"][0]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["allowPrivilegeEscalation"] is False


def test_spec_fields_reach_the_pod() -> None:
    m = sts(
        instances=3,
        image="registry/vz:1",
        imagePullPolicy="Always",
        imagePullSecrets=[{"name": "creds"}],
        resources={"requests": {"cpu": "1"}, "limits": {"memory": "1Gi"}},
        storage={
            "size": "5Gi",
            "storageClassName": "fast",
            "pvcRetentionPolicy": {"whenDeleted": "Delete"},
        },
        replication={"mode": "sync", "syncReplicas": 2},
        affinity={
            "nodeSelector": {"disk": "ssd"},
            "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}],
        },
    )
    pod = m["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert (c["image"], c["imagePullPolicy"]) == ("registry/vz:1", "Always")
    assert c["resources"] == {"limits": {"memory": "1Gi"}, "requests": {"cpu": "1"}}
    assert pod["imagePullSecrets"] == [{"name": "creds"}]
    assert pod["nodeSelector"] == {"disk": "ssd"}
    assert pod["tolerations"] == [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}]
    assert env(m)["VECTORIZER_SYNC_REPLICAS"] == "2"
    claim = m["spec"]["volumeClaimTemplates"][0]["spec"]
    assert claim["storageClassName"] == "fast"
    assert claim["resources"]["requests"]["storage"] == "5Gi"
    assert m["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Delete"


def test_anti_affinity_is_on_by_default() -> None:
    preferred = build_affinity(make_cluster())
    assert preferred is not None
    terms = preferred["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert terms[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert terms[0]["podAffinityTerm"]["labelSelector"] == {
        "matchLabels": {naming.LABEL_CLUSTER: "vz"}
    }
    required = build_affinity(
        make_cluster(affinity={"podAntiAffinityType": "required", "topologyKey": "zone"})
    )
    assert required is not None
    assert (
        required["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0][
            "topologyKey"
        ]
        == "zone"
    )
    assert build_affinity(make_cluster(affinity={"enablePodAntiAffinity": False})) is None
    assert (
        "affinity" not in sts(affinity={"enablePodAntiAffinity": False})["spec"]["template"]["spec"]
    )


def test_config_change_changes_the_pod_template() -> None:
    a = sts(config={"hnsw_m": 16})
    b = sts(config={"hnsw_m": 32})
    key = naming.ANNOTATION_CONFIG_HASH
    assert (
        a["spec"]["template"]["metadata"]["annotations"][key]
        != b["spec"]["template"]["metadata"]["annotations"][key]
    )
    assert config_hash(make_cluster(config={"hnsw_m": 16})) == config_hash(
        make_cluster(config={"hnsw_m": 16})
    )


def test_configmap_holds_the_settings_as_env() -> None:
    cm = build_configmap(make_cluster(config={"hnsw_m": 32, "wal_fsync": "never"}))
    assert cm["metadata"]["name"] == "vz-config"
    assert cm["data"] == {"VECTORIZER_HNSW_M": "32", "VECTORIZER_WAL_FSYNC": "never"}


def test_preserve_immutable_keeps_live_claim_templates() -> None:
    live = sts(storage={"size": "1Gi"})
    live["spec"]["volumeClaimTemplates"][0]["status"] = {"phase": "Pending"}
    desired = sts(storage={"size": "2Gi"})
    merged = preserve_immutable(desired, live)
    claim = merged["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert "status" not in claim
    assert merged["spec"]["template"] == desired["spec"]["template"]
    assert preserve_immutable(desired, None) is desired


def test_services_select_by_role_label() -> None:
    cluster = make_cluster(
        instances=3, services={"type": "LoadBalancer", "annotations": {"a": "b"}}
    )
    rw, ro, r = build_rw_service(cluster), build_ro_service(cluster), build_r_service(cluster)
    assert rw["metadata"]["name"] == "vz-rw"
    assert rw["spec"]["selector"] == {naming.LABEL_CLUSTER: "vz", naming.LABEL_ROLE: "primary"}
    assert ro["spec"]["selector"] == {naming.LABEL_CLUSTER: "vz", naming.LABEL_ROLE: "replica"}
    assert r["spec"]["selector"] == {naming.LABEL_CLUSTER: "vz"}
    for svc in (rw, ro, r):
        assert svc["spec"]["type"] == "LoadBalancer"
        assert svc["metadata"]["annotations"] == {"a": "b"}
        assert svc["spec"]["ports"][0]["port"] == 15002


def test_headless_service_publishes_not_ready_pods() -> None:
    hl = build_headless_service(make_cluster())
    assert hl["metadata"]["name"] == "vz-headless"
    assert hl["spec"]["clusterIP"] == "None"
    assert hl["spec"]["publishNotReadyAddresses"] is True
    assert "annotations" not in hl["metadata"]


def test_pdb_and_its_absence() -> None:
    pdb = build_pdb(make_cluster(instances=3, podDisruptionBudget={"maxUnavailable": 2}))
    assert pdb is not None
    assert pdb["spec"] == {
        "maxUnavailable": 2,
        "selector": {"matchLabels": {naming.LABEL_CLUSTER: "vz"}},
    }
    off = make_cluster(podDisruptionBudget={"enabled": False})
    assert build_pdb(off) is None
    assert [c["kind"] for c in desired_children(off, OPTIONS, replicas=1)].count(
        "PodDisruptionBudget"
    ) == 0
    assert [r.kind for r in absent_children(off)] == ["PodDisruptionBudget"]
    assert absent_children(make_cluster()) == []


def test_serviceaccount_does_not_mount_a_token() -> None:
    sa = build_serviceaccount(make_cluster())
    assert sa["metadata"]["name"] == "vz"
    assert sa["automountServiceAccountToken"] is False
