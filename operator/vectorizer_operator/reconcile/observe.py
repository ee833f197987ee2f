"""What the reconciler sees: pods, the StatefulSet, claims, and what each node reports.

Plain frozen dataclasses, built from API JSON by pure functions; the decisions in this
package take an ``Observation`` and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vectorizer_operator import naming
from vectorizer_operator.dataplane_client import NodeStatus
from vectorizer_operator.model import Cluster

Json = dict[str, Any]


@dataclass(frozen=True)
class PodView:
    name: str
    ordinal: int
    ip: str | None
    phase: str
    ready: bool
    terminating: bool
    labels: Mapping[str, str]
    revision: str | None
    uid: str | None = None
    tls: bool = False  # the data plane in this pod serves HTTPS (from its pod spec)
    # What the pod's revision was given (from its pod spec), so the operator can keep
    # reaching a pod that still runs an older revision while TLS or auth changes: the
    # Secret holding its certificate and CA bundle, and its admin key (Secret, key).
    tls_secret: str | None = None
    admin_key: tuple[str, str] | None = None

    @property
    def running(self) -> bool:
        return self.phase == "Running" and not self.terminating and bool(self.ip)

    @classmethod
    def from_json(cls, cluster: str, raw: Json) -> PodView | None:
        meta, status = raw.get("metadata") or {}, raw.get("status") or {}
        name = str(meta.get("name") or "")
        ordinal = naming.ordinal(cluster, name)
        if ordinal is None:
            return None
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or ()
        )
        labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
        return cls(
            name=name,
            ordinal=ordinal,
            ip=status.get("podIP") or None,
            phase=str(status.get("phase") or "Pending"),
            ready=ready,
            terminating=bool(meta.get("deletionTimestamp")),
            labels=labels,
            revision=labels.get(naming.LABEL_REVISION),
            uid=meta.get("uid") or None,
            tls=serves_tls(raw.get("spec") or {}),
            tls_secret=mounted_tls_secret(raw.get("spec") or {}),
            admin_key=mounted_admin_key(raw.get("spec") or {}),
        )


def serves_tls(pod_spec: Json) -> bool:
    """Whether the pod's data-plane container was given a certificate."""
    wanted = naming.env_name("tls_cert_file")
    for container in pod_spec.get("containers") or ():
        if container.get("name") == naming.CONTAINER_NAME:
            return any(e.get("name") == wanted for e in container.get("env") or ())
    return False


def _volume(pod_spec: Json, name: str) -> Json:
    return next((v for v in pod_spec.get("volumes") or () if v.get("name") == name), {})


def mounted_tls_secret(pod_spec: Json) -> str | None:
    """The Secret the pod's certificate (and the CA bundle that verifies it) comes from."""
    if not serves_tls(pod_spec):
        return None
    name = (_volume(pod_spec, naming.TLS_VOLUME).get("secret") or {}).get("secretName")
    return str(name) if name else None


def mounted_admin_key(pod_spec: Json) -> tuple[str, str] | None:
    """(Secret, key) of the admin key the pod requires; None when it runs without auth."""
    wanted = naming.env_name("auth_admin_key_file")
    for container in pod_spec.get("containers") or ():
        env = container.get("env") or ()
        if container.get("name") == naming.CONTAINER_NAME and all(
            e.get("name") != wanted for e in env
        ):
            return None
    projected = _volume(pod_spec, naming.CREDENTIALS_VOLUME).get("projected") or {}
    for source in projected.get("sources") or ():
        secret = source.get("secret") or {}
        for item in secret.get("items") or ():
            if item.get("path") == naming.ADMIN_KEY_FILE and secret.get("name"):
                return str(secret["name"]), str(item.get("key") or naming.API_KEY_KEY)
    return None


@dataclass(frozen=True)
class StatefulSetView:
    replicas: int
    generation: int
    observed_generation: int
    update_revision: str | None
    current_revision: str | None
    uid: str | None = None  # its pods' owner references name it

    @property
    def settled(self) -> bool:
        """The controller has seen the latest template (its updateRevision is current)."""
        return self.observed_generation >= self.generation

    @classmethod
    def from_json(cls, raw: Json | None) -> StatefulSetView | None:
        if not raw:
            return None
        meta, spec, status = (
            raw.get("metadata") or {},
            raw.get("spec") or {},
            raw.get("status") or {},
        )
        return cls(
            replicas=int(spec.get("replicas", 1)),
            generation=int(meta.get("generation") or 0),
            observed_generation=int(status.get("observedGeneration") or 0),
            update_revision=status.get("updateRevision") or None,
            current_revision=status.get("currentRevision") or None,
            uid=meta.get("uid") or None,
        )


@dataclass(frozen=True)
class ClaimView:
    name: str
    requested: str | None
    bound: bool = True

    @classmethod
    def from_json(cls, raw: Json) -> ClaimView:
        spec = raw.get("spec") or {}
        requested = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
        bound = (raw.get("status") or {}).get("phase") == "Bound"
        return cls(str((raw.get("metadata") or {}).get("name")), requested, bound)


@dataclass(frozen=True)
class Instance:
    """One ordinal: its pod (if any) and what its data plane said (if it answered)."""

    name: str
    ordinal: int
    pod: PodView | None = None
    node: NodeStatus | None = None
    error: str | None = None

    @property
    def role(self) -> str | None:
        return self.node.role if self.node else None

    @property
    def serving(self) -> bool:
        """The pod is up and Ready and its data plane answers."""
        return (
            self.pod is not None and self.pod.running and self.pod.ready and self.node is not None
        )


@dataclass(frozen=True)
class Observation:
    cluster: Cluster
    statefulset: StatefulSetView | None
    instances: tuple[Instance, ...]
    claims: tuple[ClaimView, ...] = ()
    cluster_domain: str = "cluster.local"
    # Seconds since the current switchover fenced the old primary (operator memory).
    switchover_elapsed_s: float = 0.0
    # False right after a switchover was aborted, so writes are not paused again at once.
    switchover_allowed: bool = True

    def instance(self, name: str | None) -> Instance | None:
        return next((i for i in self.instances if i.name == name), None) if name else None

    def url(self, name: str) -> str:
        """The URL other nodes use to reach ``name`` (its advertised, stable DNS URL).

        The scheme is what the pod serves now: while TLS is being turned on or off, a
        replica keeps following its primary at the scheme it actually speaks.
        """
        c = self.cluster
        inst = self.instance(name)
        tls = inst.pod.tls if inst is not None and inst.pod is not None else c.spec.tls.enabled
        return naming.advertise_url(c.name, c.namespace, name, self.cluster_domain, tls=tls)

    @property
    def desired(self) -> int:
        return self.cluster.spec.instances

    @property
    def members(self) -> tuple[Instance, ...]:
        """Instances the StatefulSet currently wants (ordinal below its replicas)."""
        limit = self.statefulset.replicas if self.statefulset else self.desired
        return tuple(i for i in self.instances if i.ordinal < limit)


def ordinals(cluster: Cluster, sts: StatefulSetView | None, pods: Sequence[PodView]) -> list[int]:
    """Every ordinal worth looking at: wanted by the spec or the StatefulSet, or with a pod."""
    upto = max(cluster.spec.instances, sts.replicas if sts else 0)
    return sorted(set(range(upto)) | {p.ordinal for p in pods})


def pod_views(cluster: Cluster, pods: Sequence[Json]) -> list[PodView]:
    views = [PodView.from_json(cluster.name, p) for p in pods]
    return sorted((v for v in views if v is not None), key=lambda v: v.ordinal)


def same_url(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and str(a).rstrip("/") == str(b).rstrip("/")
