"""Pure manifest builders: a parsed cluster in, Kubernetes objects (JSON) out."""

from __future__ import annotations

from dataclasses import dataclass

from vectorizer_operator import naming
from vectorizer_operator.builders.common import BuildOptions, Json
from vectorizer_operator.builders.configmap import build_configmap
from vectorizer_operator.builders.pdb import build_pdb
from vectorizer_operator.builders.serviceaccount import build_serviceaccount
from vectorizer_operator.builders.services import (
    build_headless_service,
    build_r_service,
    build_ro_service,
    build_rw_service,
)
from vectorizer_operator.builders.statefulset import build_statefulset
from vectorizer_operator.model import Cluster

__all__ = ["BuildOptions", "ChildRef", "absent_children", "desired_children"]


@dataclass(frozen=True)
class ChildRef:
    api_version: str
    kind: str
    name: str


def desired_children(cluster: Cluster, options: BuildOptions, *, replicas: int) -> list[Json]:
    """Every child that should exist, in the order they are applied.

    The ServiceAccount and ConfigMap come before the StatefulSet that its pods need;
    the Services before the pods they give names to.
    """
    children = [
        build_serviceaccount(cluster),
        build_configmap(cluster),
        build_headless_service(cluster),
        build_rw_service(cluster),
        build_ro_service(cluster),
        build_r_service(cluster),
        build_statefulset(cluster, options, replicas=replicas),
    ]
    pdb = build_pdb(cluster)
    if pdb is not None:
        children.append(pdb)
    return children


def absent_children(cluster: Cluster) -> list[ChildRef]:
    """Children the spec turned off: deleted if they exist and are ours."""
    if build_pdb(cluster) is None:
        return [ChildRef("policy/v1", "PodDisruptionBudget", naming.pdb(cluster.name))]
    return []
