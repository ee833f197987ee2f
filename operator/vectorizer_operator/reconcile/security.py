"""The cluster's security material: what to (re)issue, and how the operator reaches nodes.

``plan_security`` is pure but for key generation: given the Secrets as read and the
time, it returns the Secrets to apply, the trust bundle and admin key the operator
uses for its own calls, and any problem to report. Rules:

- A Secret that is valid is kept as it is, whoever created it: an admin key the user
  put at ``<name>-admin-key`` before creating the cluster is used, not replaced.
- An invalid, missing or due Secret is (re)generated only when it is absent or ours
  (owner reference); one we do not own is reported, never overwritten.
- The CA is renewed while it still has ``validityDays`` to live, so every server
  certificate gets its full lifetime; the old CA stays in the trust bundle (``ca.crt``)
  until it expires, so nodes that have not reloaded yet still verify each other.
- The server certificate is reissued when it is due (``renewBeforeDays``), no longer
  signed by the current CA, lacks a name, or its bundle is stale. The pod template
  does not change: the kubelet rewrites the mounted files and the nodes reload them.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from vectorizer_operator import naming, pki
from vectorizer_operator.builders import ChildRef
from vectorizer_operator.builders.common import BuildOptions
from vectorizer_operator.builders.security import (
    admin_key_selector,
    build_certificate,
    build_secret,
    replication_key_selector,
    tls_secret_name,
)
from vectorizer_operator.model import Cluster, SecretKeySelector
from vectorizer_operator.reconcile.ports import Json

MIN_KEY_LENGTH = 16  # the data plane refuses shorter bootstrap keys
PREVIOUS_CA_KEY = "previous-ca.crt"
TLS_SECRET_TYPE = "kubernetes.io/tls"


def new_api_key() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class SecretsSeen:
    """The Secrets as read (None: absent), by role."""

    ca: Json | None = None
    tls: Json | None = None
    admin: Json | None = None
    replication: Json | None = None


@dataclass(frozen=True)
class SecurityPlan:
    apply: tuple[Json, ...] = ()
    remove: tuple[ChildRef, ...] = ()  # deleted when they exist and are ours
    trust: bytes | None = None  # the CA bundle that verifies the nodes (None: TLS off/unknown)
    admin_key: str | None = None  # what the operator sends (None: auth off/unknown)
    problems: tuple[str, ...] = ()
    issued: tuple[str, ...] = ()  # what was generated, for events


@dataclass
class _Builder:
    cluster: Cluster
    apply: list[Json] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)


def secret_value(secret: Json | None, key: str) -> bytes | None:
    if not secret:
        return None
    raw = (secret.get("data") or {}).get(key)
    if not isinstance(raw, str):
        return None
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        return None


def owned(secret: Json, cluster: Cluster) -> bool:
    owners = (secret.get("metadata") or {}).get("ownerReferences") or []
    return any(o.get("uid") == cluster.uid for o in owners)


def _not_ours(kind: str, name: str) -> str:
    return (
        f"Secret {name} ({kind}) exists, is not valid and is not managed by this cluster: "
        "fix or delete it"
    )


# ---- API keys ----------------------------------------------------------------------------


def valid_key(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    try:
        text = raw.decode().strip()
    except UnicodeDecodeError:
        return None
    return text if len(text) >= MIN_KEY_LENGTH else None


def _key(
    b: _Builder,
    seen: Json | None,
    selector: SecretKeySelector,
    *,
    generated: bool,
    what: str,
    token: Callable[[], str],
) -> str | None:
    key = valid_key(secret_value(seen, selector.key))
    if key is not None:
        return key
    if not generated:
        b.problems.append(
            f"spec.auth.adminKeySecret: Secret {selector.name} has no key {selector.key} "
            f"of at least {MIN_KEY_LENGTH} characters"
        )
        return None
    if seen is not None and not owned(seen, b.cluster):
        b.problems.append(_not_ours(what, selector.name))
        return None
    key = token()
    b.apply.append(build_secret(b.cluster, selector.name, {selector.key: key.encode()}))
    b.issued.append(f"generated the {what} in Secret {selector.name}")
    return key


# ---- certificates -----------------------------------------------------------------------


def _pair(secret: Json | None, cert_key: str, key_key: str) -> pki.KeyPair | None:
    cert, key = secret_value(secret, cert_key), secret_value(secret, key_key)
    if cert is None or key is None:
        return None
    pair = pki.KeyPair(cert, key)
    return pair if pki.key_matches(pair) else None


def _ca(b: _Builder, seen: Json | None, now: datetime) -> tuple[pki.KeyPair, bytes] | None:
    """The current CA and the trust bundle (current CA first, then a previous one)."""
    tls = b.cluster.spec.tls
    name = naming.ca_secret(b.cluster.name)
    current = _pair(seen, naming.CA_CERT_KEY, naming.CA_PRIVATE_KEY_KEY)
    info = pki.inspect(current.cert_pem) if current else None
    keep_for = timedelta(days=tls.validity_days)
    if current is not None and info is not None and info.is_ca and now < info.not_after - keep_for:
        previous = secret_value(seen, PREVIOUS_CA_KEY)
        prev_info = pki.inspect(previous) if previous else None
        bundle = current.cert_pem
        if previous and prev_info is not None and now < prev_info.not_after:
            bundle += previous
        return current, bundle
    if seen is not None and not owned(seen, b.cluster):
        b.problems.append(_not_ours("certificate authority", name))
        return None
    fresh = pki.new_ca(
        f"{b.cluster.name}.{b.cluster.namespace} CA",
        now=now,
        validity=timedelta(days=tls.ca_validity_days),
    )
    data = {naming.CA_CERT_KEY: fresh.cert_pem, naming.CA_PRIVATE_KEY_KEY: fresh.key_pem}
    bundle = fresh.cert_pem
    if current is not None and info is not None and now < info.not_after:
        data[PREVIOUS_CA_KEY] = current.cert_pem  # still trusted until it expires
        bundle += current.cert_pem
    b.apply.append(build_secret(b.cluster, name, data, annotations=_not_after(fresh)))
    b.issued.append(f"{'renewed' if current else 'generated'} the cluster CA in Secret {name}")
    return fresh, bundle


def _not_after(pair: pki.KeyPair) -> dict[str, str]:
    info = pki.inspect(pair.cert_pem)
    assert info is not None
    return {naming.ANNOTATION_NOT_AFTER: info.not_after.strftime("%Y-%m-%dT%H:%M:%SZ")}


def server_cert_problem(
    seen: Json | None,
    ca: pki.KeyPair,
    bundle: bytes,
    dns_names: list[str],
    *,
    now: datetime,
    renew_before: timedelta,
) -> str | None:
    """Why the server certificate must be reissued, or None when it is fine."""
    pair = _pair(seen, naming.TLS_CERT_KEY, naming.TLS_PRIVATE_KEY_KEY)
    info = pki.inspect(pair.cert_pem) if pair else None
    if pair is None or info is None:
        return "missing or unreadable"
    if not pki.signed_by(pair.cert_pem, ca.cert_pem):
        return "not signed by the current CA"
    if info.dns_names != frozenset(dns_names):
        return "names changed"
    if pki.renewal_due(info, now=now, renew_before=renew_before):
        return f"expires at {info.not_after:%Y-%m-%d %H:%M} UTC"
    if secret_value(seen, naming.CA_CERT_KEY) != bundle:
        return "CA bundle changed"
    return None


def _server_cert(
    b: _Builder,
    seen: Json | None,
    ca: pki.KeyPair,
    bundle: bytes,
    dns_names: list[str],
    now: datetime,
) -> None:
    tls = b.cluster.spec.tls
    name = naming.tls_secret(b.cluster.name)
    why = server_cert_problem(
        seen, ca, bundle, dns_names, now=now, renew_before=timedelta(days=tls.renew_before_days)
    )
    if why is None:
        return
    if seen is not None and not owned(seen, b.cluster):
        b.problems.append(_not_ours("server certificate", name))
        return
    pair = pki.issue(
        ca,
        common_name=naming.r_service(b.cluster.name),
        dns_names=dns_names,
        ip_addresses=["127.0.0.1"],
        now=now,
        validity=timedelta(days=tls.validity_days),
    )
    data = {
        naming.TLS_CERT_KEY: pair.cert_pem,
        naming.TLS_PRIVATE_KEY_KEY: pair.key_pem,
        naming.CA_CERT_KEY: bundle,
    }
    b.apply.append(
        build_secret(b.cluster, name, data, type_=TLS_SECRET_TYPE, annotations=_not_after(pair))
    )
    b.issued.append(f"issued the server certificate in Secret {name} ({why})")


def _trust_of(b: _Builder, seen: Json | None, name: str, where: str) -> bytes | None:
    bundle = secret_value(seen, naming.CA_CERT_KEY)
    if seen is None:
        b.problems.append(f"{where}: Secret {name} does not exist (yet)")
    elif bundle is None or not pki.split_bundle(bundle):
        b.problems.append(f"{where}: Secret {name} has no valid {naming.CA_CERT_KEY}")
        return None
    return bundle


def dns_names(cluster: Cluster, options: BuildOptions) -> list[str]:
    return naming.server_dns_names(cluster.name, cluster.namespace, options.cluster_domain)


def plan_security(
    cluster: Cluster,
    seen: SecretsSeen,
    options: BuildOptions,
    *,
    now: datetime,
    cert_manager_served: bool = False,
    token: Callable[[], str] = new_api_key,
) -> SecurityPlan:
    b = _Builder(cluster)
    trust: bytes | None = None
    tls = cluster.spec.tls
    if tls.enabled and tls.generated:
        ca = _ca(b, seen.ca, now)
        if ca is not None:
            _server_cert(b, seen.tls, ca[0], ca[1], dns_names(cluster, options), now)
            trust = ca[1]
    elif tls.enabled and tls.secret_name is not None:
        trust = _trust_of(b, seen.tls, tls.secret_name, "spec.tls.secretName")
    elif tls.enabled:  # cert-manager
        certificate = build_certificate(cluster, dns_names(cluster, options))
        if not cert_manager_served:
            b.problems.append(
                f"spec.tls.certManager: the API server does not serve "
                f"{naming.CERT_MANAGER_API_VERSION} Certificate: install cert-manager"
            )
        elif certificate is not None:
            b.apply.append(certificate)
            trust = _trust_of(b, seen.tls, tls_secret_name(cluster), "spec.tls.certManager")
    remove: tuple[ChildRef, ...] = ()
    if cert_manager_served and (not tls.enabled or tls.cert_manager is None):
        # Switched away from cert-manager: it must stop writing the Secret we now fill.
        name = naming.certificate(cluster.name)
        remove = (ChildRef(naming.CERT_MANAGER_API_VERSION, "Certificate", name),)
    admin_key = None
    if cluster.spec.auth.enabled:
        generated = cluster.spec.auth.admin_key_secret is None
        admin_key = _key(
            b,
            seen.admin,
            admin_key_selector(cluster),
            generated=generated,
            what="admin API key",
            token=token,
        )
        _key(
            b,
            seen.replication,
            replication_key_selector(cluster),
            generated=True,
            what="replication credential",
            token=token,
        )
    return SecurityPlan(
        apply=tuple(b.apply),
        remove=remove,
        trust=trust,
        admin_key=admin_key,
        problems=tuple(b.problems),
        issued=tuple(b.issued),
    )


def secrets_to_read(cluster: Cluster) -> dict[str, str]:
    """Role -> Secret name, for the Secrets ``plan_security`` looks at."""
    out: dict[str, str] = {}
    if cluster.spec.tls.enabled:
        out["tls"] = tls_secret_name(cluster)
        if cluster.spec.tls.generated:
            out["ca"] = naming.ca_secret(cluster.name)
    if cluster.spec.auth.enabled:
        out["admin"] = admin_key_selector(cluster).name
        out["replication"] = replication_key_selector(cluster).name
    return out
