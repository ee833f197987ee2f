"""The StatefulSet that runs the instances.

- ``updateStrategy: OnDelete``: the operator decides when each pod gets the new
  revision (replicas one at a time, the primary last) by deleting it.
- ``podManagementPolicy: Parallel``: every pod starts at once; pods are not ordered
  because the primary is chosen from what the data planes report, not by ordinal.
- Every pod starts as a replica with no primary (``VECTORIZER_ROLE=replica``), which
  takes no writes; the operator promotes one and points the others at it. The data
  plane persists its role, so the env only matters on an empty volume.
- The container runs ``vectorizer serve``; its data directory is the claim's mount path.
"""

from __future__ import annotations

from typing import Any

from vectorizer_operator import naming
from vectorizer_operator.builders.common import BuildOptions, Json, metadata
from vectorizer_operator.builders.configmap import config_hash
from vectorizer_operator.builders.security import (
    security_env,
    security_mounts,
    security_volumes,
)
from vectorizer_operator.model import Cluster, Toleration
from vectorizer_operator.naming import env_name
from vectorizer_operator.schema import dump

# Immutable after creation (the API server rejects changes to them).
IMMUTABLE_FIELDS = ("selector", "serviceName", "volumeClaimTemplates", "podManagementPolicy")


def container_env(cluster: Cluster, options: BuildOptions) -> list[Json]:
    tls = cluster.spec.tls.enabled
    url = naming.advertise_url_template(
        cluster.name, cluster.namespace, options.cluster_domain, tls=tls
    )
    sync = cluster.spec.replication.effective_sync_replicas()
    return [
        # First: the $(POD_NAME) references below expand only to variables defined earlier.
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": env_name("role"), "value": naming.ROLE_REPLICA},
        {"name": env_name("node_id"), "value": "$(POD_NAME)"},
        {"name": env_name("advertise_url"), "value": url},
        {"name": env_name("host"), "value": "0.0.0.0"},
        {"name": env_name("port"), "value": str(naming.HTTP_PORT)},
        {"name": env_name("data_dir"), "value": naming.DATA_MOUNT_PATH},
        {"name": env_name("sync_replicas"), "value": str(sync)},
        {"name": "TMPDIR", "value": naming.TMP_MOUNT_PATH},
        *security_env(cluster),
    ]


def _probe(path: str, *, tls: bool, period: int, timeout: int, failures: int) -> Json:
    # The kubelet does not verify the certificate of an HTTPS probe, and /health and
    # /ready need no credentials, so probes work whatever spec.tls and spec.auth say.
    return {
        "httpGet": {
            "path": path,
            "port": naming.HTTP_PORT_NAME,
            "scheme": "HTTPS" if tls else "HTTP",
        },
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def build_container(cluster: Cluster, options: BuildOptions) -> Json:
    spec = cluster.spec
    tls = spec.tls.enabled
    container: Json = {
        "name": naming.CONTAINER_NAME,
        "image": spec.image or options.default_image,
        "imagePullPolicy": spec.image_pull_policy,
        "command": ["vectorizer"],
        "args": ["serve"],
        "env": container_env(cluster, options),
        "envFrom": [{"configMapRef": {"name": naming.configmap(cluster.name)}}],
        "ports": [
            {"name": naming.HTTP_PORT_NAME, "containerPort": naming.HTTP_PORT, "protocol": "TCP"}
        ],
        "volumeMounts": [
            {"name": naming.DATA_VOLUME, "mountPath": naming.DATA_MOUNT_PATH},
            {"name": naming.TMP_VOLUME, "mountPath": naming.TMP_MOUNT_PATH},
            *security_mounts(cluster),
        ],
        # Replaying a long log happens before /health answers: allow up to 10 minutes.
        "startupProbe": _probe("/health", tls=tls, period=5, timeout=3, failures=120),
        "livenessProbe": _probe("/health", tls=tls, period=10, timeout=5, failures=6),
        "readinessProbe": _probe("/ready", tls=tls, period=5, timeout=3, failures=3),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    resources = {k: v for k, v in dump(spec.resources).items() if v}
    if resources:
        container["resources"] = resources
    return container


def build_affinity(cluster: Cluster) -> Json | None:
    aff = cluster.spec.affinity
    if not aff.enable_pod_anti_affinity:
        return None
    term = {
        "labelSelector": {"matchLabels": naming.selector_labels(cluster.name)},
        "topologyKey": aff.topology_key,
    }
    if aff.pod_anti_affinity_type == "required":
        return {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}
    weighted = {"weight": 100, "podAffinityTerm": term}
    return {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [weighted]}}


def _tolerations(tolerations: tuple[Toleration, ...]) -> list[Json]:
    return [dump(t) for t in tolerations]


def build_pod_spec(cluster: Cluster, options: BuildOptions) -> Json:
    spec = cluster.spec
    pod: Json = {
        "serviceAccountName": naming.service_account(cluster.name),
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 60,  # room for the snapshot taken on SIGTERM
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": naming.RUN_AS_USER,
            "runAsGroup": naming.RUN_AS_USER,
            "fsGroup": naming.RUN_AS_USER,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [build_container(cluster, options)],
        "volumes": [{"name": naming.TMP_VOLUME, "emptyDir": {}}, *security_volumes(cluster)],
    }
    affinity = build_affinity(cluster)
    if affinity:
        pod["affinity"] = affinity
    if spec.affinity.node_selector:
        pod["nodeSelector"] = dict(spec.affinity.node_selector)
    if spec.affinity.tolerations:
        pod["tolerations"] = _tolerations(spec.affinity.tolerations)
    if spec.image_pull_secrets:
        pod["imagePullSecrets"] = [{"name": s.name} for s in spec.image_pull_secrets]
    return pod


def build_volume_claim_template(cluster: Cluster) -> Json:
    storage = cluster.spec.storage
    claim: Json = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": storage.size}},
    }
    if storage.storage_class_name:
        claim["storageClassName"] = storage.storage_class_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": naming.DATA_VOLUME, "labels": naming.common_labels(cluster.name)},
        "spec": claim,
    }


def build_statefulset(cluster: Cluster, options: BuildOptions, *, replicas: int) -> Json:
    """The desired StatefulSet; ``replicas`` comes from the scaling decision."""
    retention = cluster.spec.storage.pvc_retention_policy
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata(cluster, naming.statefulset(cluster.name)),
        "spec": {
            "replicas": replicas,
            "serviceName": naming.headless_service(cluster.name),
            "selector": {"matchLabels": naming.selector_labels(cluster.name)},
            "podManagementPolicy": "Parallel",
            "updateStrategy": {"type": "OnDelete"},
            "revisionHistoryLimit": 10,
            "persistentVolumeClaimRetentionPolicy": {
                "whenDeleted": retention.when_deleted,
                "whenScaled": retention.when_scaled,
            },
            "template": {
                "metadata": {
                    "labels": naming.common_labels(cluster.name),
                    "annotations": {naming.ANNOTATION_CONFIG_HASH: config_hash(cluster)},
                },
                "spec": build_pod_spec(cluster, options),
            },
            "volumeClaimTemplates": [build_volume_claim_template(cluster)],
        },
    }


def _clean_claim_template(template: Any) -> Any:
    if not isinstance(template, dict):
        return template
    return {k: v for k, v in template.items() if k != "status"}


def preserve_immutable(desired: Json, live: Json | None) -> Json:
    """The desired StatefulSet with its immutable fields as they are on the live object.

    Without this an apply after a storage.size change would be rejected outright;
    claims are resized directly instead (see reconcile/storage.py).
    """
    if not live:
        return desired
    live_spec = live.get("spec") or {}
    spec = dict(desired["spec"])
    for key in IMMUTABLE_FIELDS:
        if key not in live_spec:
            continue
        value = live_spec[key]
        if key == "volumeClaimTemplates":
            value = [_clean_claim_template(t) for t in value]
        spec[key] = value
    return {**desired, "spec": spec}
