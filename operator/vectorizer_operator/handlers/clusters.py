"""Which clusters exist (an index) and when to look at one again (events)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from vectorizer_operator import naming

_CHILD: Mapping[str, Any] = {
    naming.LABEL_CLUSTER: kopf.PRESENT,
    naming.LABEL_MANAGED_BY: naming.MANAGED_BY,
}


@kopf.index(naming.GROUP, naming.VERSION, naming.PLURAL)
def cluster_keys(namespace: str | None, name: str, **_: Any) -> dict[tuple[str | None, str], None]:
    """Every VectorizerCluster the operator watches; the loop reconciles these."""
    return {(namespace, name): None}


@kopf.on.event(naming.GROUP, naming.VERSION, naming.PLURAL)
def cluster_changed(namespace: str | None, name: str, memo: Any, **_: Any) -> None:
    memo.runtime.wake(namespace, name)


@kopf.on.event("v1", "pods", labels={naming.LABEL_CLUSTER: kopf.PRESENT})
def pod_changed(namespace: str | None, labels: Mapping[str, str], memo: Any, **_: Any) -> None:
    memo.runtime.wake(namespace, labels.get(naming.LABEL_CLUSTER))


@kopf.on.event("apps", "v1", "statefulsets", labels=_CHILD)
def statefulset_changed(
    namespace: str | None, labels: Mapping[str, str], memo: Any, **_: Any
) -> None:
    memo.runtime.wake(namespace, labels.get(naming.LABEL_CLUSTER))


@kopf.on.event("v1", "services", labels=_CHILD)
def service_changed(namespace: str | None, labels: Mapping[str, str], memo: Any, **_: Any) -> None:
    memo.runtime.wake(namespace, labels.get(naming.LABEL_CLUSTER))
