"""The ConfigMap with the data plane's settings (spec.config), read by pods as env vars."""

from __future__ import annotations

from vectorizer_operator import naming
from vectorizer_operator.builders.common import Json, content_hash, metadata
from vectorizer_operator.model import Cluster, config_env


def config_data(cluster: Cluster) -> dict[str, str]:
    return config_env(cluster.spec.config)


def config_hash(cluster: Cluster) -> str:
    """Goes into the pod template, so a settings change is a new revision to roll out."""
    return content_hash(config_data(cluster))


def build_configmap(cluster: Cluster) -> Json:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(cluster, naming.configmap(cluster.name)),
        "data": config_data(cluster),
    }
