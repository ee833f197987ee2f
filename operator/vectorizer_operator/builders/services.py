"""The Services: headless (pod DNS), -rw (primary), -ro (replicas), -r (any instance).

-rw and -ro select on the role label that the operator writes from what each data
plane reports, never on the ordinal.
"""

from __future__ import annotations

from vectorizer_operator import naming
from vectorizer_operator.builders.common import Json, metadata
from vectorizer_operator.model import Cluster

_PORTS = [
    {
        "name": naming.HTTP_PORT_NAME,
        "port": naming.HTTP_PORT,
        "targetPort": naming.HTTP_PORT_NAME,
        "protocol": "TCP",
    }
]


def build_headless_service(cluster: Cluster) -> Json:
    """Gives each pod a stable DNS name; not-ready pods too, so replicas find a primary."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(cluster, naming.headless_service(cluster.name)),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": naming.selector_labels(cluster.name),
            "ports": _PORTS,
        },
    }


def _client_service(cluster: Cluster, name: str, selector: dict[str, str]) -> Json:
    spec = cluster.spec.services
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(cluster, name, annotations=spec.annotations),
        "spec": {"type": spec.type, "selector": selector, "ports": _PORTS},
    }


def build_rw_service(cluster: Cluster) -> Json:
    selector = naming.role_selector(cluster.name, naming.ROLE_PRIMARY)
    return _client_service(cluster, naming.rw_service(cluster.name), selector)


def build_ro_service(cluster: Cluster) -> Json:
    selector = naming.role_selector(cluster.name, naming.ROLE_REPLICA)
    return _client_service(cluster, naming.ro_service(cluster.name), selector)


def build_r_service(cluster: Cluster) -> Json:
    selector = naming.selector_labels(cluster.name)
    return _client_service(cluster, naming.r_service(cluster.name), selector)
