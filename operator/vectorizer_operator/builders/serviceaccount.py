"""The pods' ServiceAccount: the data plane needs no Kubernetes API access."""

from __future__ import annotations

from vectorizer_operator import naming
from vectorizer_operator.builders.common import Json, metadata
from vectorizer_operator.model import Cluster


def build_serviceaccount(cluster: Cluster) -> Json:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(cluster, naming.service_account(cluster.name)),
        "automountServiceAccountToken": False,
    }
