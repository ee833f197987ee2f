"""What every child manifest shares: metadata with labels and the owner reference."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vectorizer_operator import naming
from vectorizer_operator.model import Cluster

Json = dict[str, Any]


@dataclass(frozen=True)
class BuildOptions:
    """Operator-wide inputs to the manifests (from the operator's settings)."""

    default_image: str
    cluster_domain: str = "cluster.local"


def metadata(
    cluster: Cluster,
    name: str,
    *,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> Json:
    meta: Json = {
        "name": name,
        "namespace": cluster.namespace,
        "labels": {**naming.common_labels(cluster.name), **(labels or {})},
        "ownerReferences": [cluster.owner_reference()],
    }
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def content_hash(data: Any) -> str:
    """A short stable hash of JSON-able data (e.g. a ConfigMap's content)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
