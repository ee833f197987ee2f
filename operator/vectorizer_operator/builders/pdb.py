"""The PodDisruptionBudget: drains evict at most maxUnavailable instances at once."""

from __future__ import annotations

from vectorizer_operator import naming
from vectorizer_operator.builders.common import Json, metadata
from vectorizer_operator.model import Cluster


def build_pdb(cluster: Cluster) -> Json | None:
    """None when the spec disables it (the reconciler then deletes any left over)."""
    budget = cluster.spec.pod_disruption_budget
    if not budget.enabled:
        return None
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(cluster, naming.pdb(cluster.name)),
        "spec": {
            "maxUnavailable": budget.max_unavailable,
            "selector": {"matchLabels": naming.selector_labels(cluster.name)},
        },
    }
