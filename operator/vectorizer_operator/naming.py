"""Every name, label and URL derived from a VectorizerCluster, computed in one place.

Builders, reconcile decisions, RBAC docs and tests all ask this module; nothing else
concatenates ``"-rw"`` or spells a label key.
"""

from __future__ import annotations

from vectorizer.settings import ENV_PREFIX

GROUP = "vectorizer.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "VectorizerCluster"
PLURAL = "vectorizerclusters"
SINGULAR = "vectorizercluster"
SHORT_NAMES = ("vzc",)
CATEGORIES = ("vectorizer",)

FIELD_MANAGER = "vectorizer-operator"
MANAGED_BY = "vectorizer-operator"

# Longest cluster name: pod names (<name>-<ordinal>), the controller-revision-hash label
# value (<name>-<10 chars>) and "<name>-headless" must all stay DNS labels (63).
MAX_NAME_LENGTH = 50

# Label keys.
LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_CLUSTER = f"{GROUP}/cluster"
LABEL_POD_INSTANCE = f"{GROUP}/instance"
LABEL_ROLE = f"{GROUP}/role"
# Set by the StatefulSet controller; names the revision a pod was created from.
LABEL_REVISION = "controller-revision-hash"

ANNOTATION_CONFIG_HASH = f"{GROUP}/config-hash"

ROLE_PRIMARY = "primary"
ROLE_REPLICA = "replica"
ROLE_FENCED = "fenced"

# The data plane inside each pod.
HTTP_PORT = 15002
HTTP_PORT_NAME = "http"
CONTAINER_NAME = "vectorizer"
DATA_VOLUME = "data"
DATA_MOUNT_PATH = "/data"
TMP_VOLUME = "tmp"
# Scratch space (the root filesystem is read-only). Not /tmp: where pods are processes
# on a host (the e2e harness), a volume over /tmp would hide the host's /tmp.
TMP_MOUNT_PATH = "/var/tmp/vectorizer"
RUN_AS_USER = 10001

# Security material (see reconcile/security.py): Secrets mounted as volumes, so a renewed
# certificate reaches the files without a restart (the data plane reloads them).
TLS_VOLUME = "tls"
TLS_MOUNT_PATH = "/etc/vectorizer/tls"
CREDENTIALS_VOLUME = "credentials"
CREDENTIALS_MOUNT_PATH = "/etc/vectorizer/credentials"
TLS_CERT_KEY = "tls.crt"  # the keys of a kubernetes.io/tls Secret (cert-manager's too)
TLS_PRIVATE_KEY_KEY = "tls.key"
CA_CERT_KEY = "ca.crt"
CA_PRIVATE_KEY_KEY = "ca.key"
API_KEY_KEY = "api-key"  # the key of an admin or replication credential Secret
ADMIN_KEY_FILE = "admin-key"  # file names under CREDENTIALS_MOUNT_PATH
REPLICATION_KEY_FILE = "replication-key"
ANNOTATION_NOT_AFTER = f"{GROUP}/not-after"
CERT_MANAGER_API_VERSION = "cert-manager.io/v1"


def env_name(setting: str) -> str:
    """The environment variable of a data-plane setting (``VECTORIZER_<NAME>``)."""
    return ENV_PREFIX + setting.upper()


def statefulset(cluster: str) -> str:
    return cluster


def headless_service(cluster: str) -> str:
    return f"{cluster}-headless"


def rw_service(cluster: str) -> str:
    """Selects the primary (role label, never the ordinal)."""
    return f"{cluster}-rw"


def ro_service(cluster: str) -> str:
    """Selects replicas."""
    return f"{cluster}-ro"


def r_service(cluster: str) -> str:
    """Selects any instance."""
    return f"{cluster}-r"


def configmap(cluster: str) -> str:
    return f"{cluster}-config"


def pdb(cluster: str) -> str:
    return cluster


def service_account(cluster: str) -> str:
    return cluster


def ca_secret(cluster: str) -> str:
    """The generated CA (certificate and private key); only the operator reads it."""
    return f"{cluster}-ca"


def tls_secret(cluster: str) -> str:
    """The server certificate, its key and the CA bundle (kubernetes.io/tls)."""
    return f"{cluster}-tls"


def certificate(cluster: str) -> str:
    """The cert-manager Certificate that fills ``tls_secret`` when cert-manager issues."""
    return f"{cluster}-tls"


def admin_key_secret(cluster: str) -> str:
    return f"{cluster}-admin-key"


def replication_key_secret(cluster: str) -> str:
    return f"{cluster}-replication-key"


def pod_monitor(cluster: str) -> str:
    return cluster


def prometheus_rule(cluster: str) -> str:
    return cluster


# Prometheus Operator resources and the label that the PodMonitor gives every series of
# a cluster (its alert rules select on it, with ``namespace``).
MONITORING_API_VERSION = "monitoring.coreos.com/v1"
METRICS_PATH = "/metrics"
METRICS_CLUSTER_LABEL = "vectorizer_cluster"


def pod(cluster: str, ordinal: int) -> str:
    return f"{cluster}-{ordinal}"


def pvc(cluster: str, ordinal: int) -> str:
    """The claim the StatefulSet controller creates from the ``data`` template."""
    return f"{DATA_VOLUME}-{cluster}-{ordinal}"


def ordinal(cluster: str, pod_name: str) -> int | None:
    """The ordinal of ``<cluster>-<n>``; None for a name that is not one of ours."""
    prefix = f"{cluster}-"
    if not pod_name.startswith(prefix):
        return None
    tail = pod_name[len(prefix) :]
    if not tail.isdigit() or (len(tail) > 1 and tail.startswith("0")):
        return None
    return int(tail)


def selector_labels(cluster: str) -> dict[str, str]:
    """The StatefulSet's selector: immutable, so it must never grow."""
    return {LABEL_CLUSTER: cluster}


def common_labels(cluster: str) -> dict[str, str]:
    return {
        LABEL_NAME: "vectorizer",
        LABEL_INSTANCE: cluster,
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_COMPONENT: "database",
        LABEL_CLUSTER: cluster,
    }


def role_selector(cluster: str, role: str) -> dict[str, str]:
    return {LABEL_CLUSTER: cluster, LABEL_ROLE: role}


def label_selector(cluster: str) -> str:
    """``status.selector`` (the scale subresource) and pod list queries."""
    return ",".join(f"{k}={v}" for k, v in selector_labels(cluster).items())


def pod_fqdn(cluster: str, namespace: str, pod_name: str, domain: str) -> str:
    return f"{pod_name}.{headless_service(cluster)}.{namespace}.svc.{domain}"


def advertise_url(
    cluster: str, namespace: str, pod_name: str, domain: str, *, tls: bool = False
) -> str:
    """The URL a node advertises and replicas use to follow it (stable across restarts)."""
    scheme = "https" if tls else "http"
    return f"{scheme}://{pod_fqdn(cluster, namespace, pod_name, domain)}:{HTTP_PORT}"


def advertise_url_template(cluster: str, namespace: str, domain: str, *, tls: bool) -> str:
    """The same URL with the pod name left to Kubernetes' ``$(POD_NAME)`` expansion."""
    return advertise_url(cluster, namespace, "$(POD_NAME)", domain, tls=tls)


def server_dns_names(cluster: str, namespace: str, domain: str) -> list[str]:
    """Every name clients may use for the cluster: its Services (short, namespaced and
    fully qualified) and each pod behind the headless Service (a wildcard, so scaling
    needs no new certificate), plus ``localhost`` for calls from inside a pod."""
    names: list[str] = []
    services = (rw_service, ro_service, r_service, headless_service)
    for service in (make(cluster) for make in services):
        names += [
            service,
            f"{service}.{namespace}",
            f"{service}.{namespace}.svc",
            f"{service}.{namespace}.svc.{domain}",
        ]
    headless = headless_service(cluster)
    names += [
        f"*.{headless}.{namespace}.svc.{domain}",
        f"*.{headless}.{namespace}.svc",
        "localhost",
    ]
    return names


def lease(peering_name: str) -> str:
    return peering_name
