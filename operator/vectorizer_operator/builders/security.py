"""How spec.tls and spec.auth reach the pods: Secrets, their volumes, and settings.

Certificates and keys are files on Secret volumes, never environment variables: the
kubelet rewrites a mounted Secret when it changes and the data plane reloads its
certificate, so a renewal needs no restart. The pod template names only Secret names
and paths, so it does not change when a certificate is renewed either.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping

from vectorizer_operator import naming
from vectorizer_operator.builders.common import Json, metadata
from vectorizer_operator.model import Cluster, SecretKeySelector
from vectorizer_operator.naming import env_name

# Owner and group may read; the pod's fsGroup makes the group the data plane's.
SECRET_FILE_MODE = 0o440


def tls_secret_name(cluster: Cluster) -> str:
    """The Secret holding tls.crt, tls.key and ca.crt: the user's, or the one we fill."""
    return cluster.spec.tls.secret_name or naming.tls_secret(cluster.name)


def admin_key_selector(cluster: Cluster) -> SecretKeySelector:
    given = cluster.spec.auth.admin_key_secret
    return given or SecretKeySelector(name=naming.admin_key_secret(cluster.name))


def replication_key_selector(cluster: Cluster) -> SecretKeySelector:
    return SecretKeySelector(name=naming.replication_key_secret(cluster.name))


def _file(name: str) -> str:
    return f"{naming.CREDENTIALS_MOUNT_PATH}/{name}"


def _tls_file(key: str) -> str:
    return f"{naming.TLS_MOUNT_PATH}/{key}"


JWT_SECRET_FILE = "jwt-hs256-secret"
JWT_PUBLIC_KEY_FILE = "jwt-public-key.pem"


def _credential_files(cluster: Cluster) -> list[tuple[SecretKeySelector, str, str]]:
    """(Secret key, file name under the credentials mount, setting that names the file)."""
    auth = cluster.spec.auth
    if not auth.enabled:
        return []
    files = [
        (admin_key_selector(cluster), naming.ADMIN_KEY_FILE, "auth_admin_key_file"),
        (replication_key_selector(cluster), naming.REPLICATION_KEY_FILE, "replication_key_file"),
    ]
    if auth.jwt_secret is not None:
        files.append((auth.jwt_secret, JWT_SECRET_FILE, "jwt_hs256_secret_file"))
    if auth.jwt_public_key_secret is not None:
        files.append((auth.jwt_public_key_secret, JWT_PUBLIC_KEY_FILE, "jwt_public_key_file"))
    return files


def security_settings(cluster: Cluster) -> dict[str, str]:
    """The data plane's security settings, as the pods receive them."""
    tls, auth = cluster.spec.tls, cluster.spec.auth
    out: dict[str, str] = {}
    if tls.enabled:
        ca = _tls_file(naming.CA_CERT_KEY)
        out |= {
            "tls_cert_file": _tls_file(naming.TLS_CERT_KEY),
            "tls_key_file": _tls_file(naming.TLS_PRIVATE_KEY_KEY),
            # Replicas verify their primary against the cluster CA.
            "replication_tls_ca_file": ca,
        }
        if tls.replication_mtls:
            # Optional, not required: probes and apps connect without a certificate.
            out |= {
                "tls_client_ca_file": ca,
                "tls_client_auth": "optional",
                "replication_require_mtls": "true",
            }
    if auth.enabled:
        out["auth_enabled"] = "true"
        for _, file, setting in _credential_files(cluster):
            out[setting] = _file(file)
    return out


def security_env(cluster: Cluster) -> list[Json]:
    return [{"name": env_name(k), "value": v} for k, v in security_settings(cluster).items()]


def security_mounts(cluster: Cluster) -> list[Json]:
    mounts: list[Json] = []
    if cluster.spec.tls.enabled:
        mounts.append(
            {"name": naming.TLS_VOLUME, "mountPath": naming.TLS_MOUNT_PATH, "readOnly": True}
        )
    if cluster.spec.auth.enabled:
        mounts.append(
            {
                "name": naming.CREDENTIALS_VOLUME,
                "mountPath": naming.CREDENTIALS_MOUNT_PATH,
                "readOnly": True,
            }
        )
    return mounts


def security_volumes(cluster: Cluster) -> list[Json]:
    volumes: list[Json] = []
    if cluster.spec.tls.enabled:
        volumes.append(
            {
                "name": naming.TLS_VOLUME,
                "secret": {
                    "secretName": tls_secret_name(cluster),
                    "defaultMode": SECRET_FILE_MODE,
                },
            }
        )
    files = _credential_files(cluster)
    if files:
        sources = [
            {"secret": {"name": sel.name, "items": [{"key": sel.key, "path": file}]}}
            for sel, file, _ in files
        ]
        volumes.append(
            {
                "name": naming.CREDENTIALS_VOLUME,
                "projected": {"sources": sources, "defaultMode": SECRET_FILE_MODE},
            }
        )
    return volumes


def build_secret(
    cluster: Cluster,
    name: str,
    data: Mapping[str, bytes],
    *,
    type_: str = "Opaque",
    annotations: Mapping[str, str] | None = None,
) -> Json:
    """A Secret owned by the cluster (deleted with it)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(cluster, name, annotations=annotations),
        "type": type_,
        "data": {k: base64.b64encode(v).decode() for k, v in sorted(data.items())},
    }


def _go_duration(days: int) -> str:
    return f"{days * 24}h"


def build_certificate(cluster: Cluster, dns_names: list[str]) -> Json | None:
    """The cert-manager Certificate filling the TLS Secret, when spec.tls.certManager is set."""
    tls = cluster.spec.tls
    if not tls.enabled or tls.cert_manager is None:
        return None
    issuer = tls.cert_manager.issuer_ref
    return {
        "apiVersion": naming.CERT_MANAGER_API_VERSION,
        "kind": "Certificate",
        "metadata": metadata(cluster, naming.certificate(cluster.name)),
        "spec": {
            "secretName": naming.tls_secret(cluster.name),
            "commonName": naming.r_service(cluster.name),
            "dnsNames": dns_names,
            "duration": _go_duration(tls.validity_days),
            "renewBefore": _go_duration(tls.renew_before_days),
            "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
            "usages": ["digital signature", "server auth", "client auth"],
            "issuerRef": {"name": issuer.name, "kind": issuer.kind, "group": issuer.group},
        },
    }
