"""The VectorizerCluster resource: typed spec and status, parsed and validated.

These classes are the one source of truth: ``crd.py`` generates the CRD's schema from
them, ``parse_cluster`` reads a resource with them, and the status we write is dumped
from them. ``spec.config`` is checked against the data plane's own ``Settings`` (its
field names, types and validation), so the two cannot drift apart.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from vectorizer import settings as dataplane_settings
from vectorizer.errors import ValidationError
from vectorizer.observability import buckets
from vectorizer_operator import naming, quantity
from vectorizer_operator.schema import Json, Rule, SpecError, dump, parse, prop

__all__ = ["Cluster", "ClusterSpec", "ClusterStatus", "SpecError", "parse_cluster"]

# ---- spec.config: the data plane's settings ---------------------------------------------

# Settings the operator owns: listening address, data directory, and replication identity.
RESERVED_SETTINGS = frozenset(
    {
        "host",
        "port",
        "data_dir",
        "role",
        "primary_url",
        "node_id",
        "advertise_url",
        "sync_replicas",
        "config",
    }
)
# Secret-valued settings never go into spec.config: it becomes a ConfigMap. They are
# set from Secrets by the features that need them (auth, TLS).
SECRET_SUFFIXES = ("_key", "_secret", "_password", "_token")
# Set from spec.tls and spec.auth: files exist only where the operator mounts them.
SECURITY_SETTINGS = frozenset(
    {"auth_enabled", "tls_client_auth", "replication_require_mtls", "replication_cert_names"}
)
FILE_SUFFIX = "_file"
_SETTING_TYPES = {"int": "integer", "float": "number", "bool": "boolean", "str": "string"}


def is_secret_setting(name: str) -> bool:
    return name.endswith(SECRET_SUFFIXES)


def is_security_setting(name: str) -> bool:
    return name in SECURITY_SETTINGS or name.endswith(FILE_SUFFIX)


def _bounds(name: str, lo: float, hi: float) -> Json:
    out: Json = {"minimum": lo, "maximum": hi}
    least = dataplane_settings.OFF_OR_AT_LEAST.get(name)
    if least is not None:
        message = f"must be 0 (no limit) or at least {least:g}"
        rule = Rule(f"self == 0.0 || self >= {least!r}", message)
        out["x-kubernetes-validations"] = [rule.to_json()]
    return out


# Narrower than the type alone says; applied only while the setting exists (the data
# plane's own bounds, as its settings check them).
_SETTING_CONSTRAINTS: dict[str, Json] = {
    "log_level": {"enum": list(dataplane_settings.LOG_LEVELS)},
    "wal_fsync": {"pattern": "^(always|never|[0-9]+)$"},
    **{name: _bounds(name, lo, hi) for name, (lo, hi) in dataplane_settings.RANGES.items()},
}


def configurable_settings() -> dict[str, str]:
    """Data-plane setting name -> JSON type, for every setting a user may put in spec.config."""
    out: dict[str, str] = {}
    for f in dataplane_settings.setting_fields():
        kind = _SETTING_TYPES.get(str(f.type))
        owned = f.name in RESERVED_SETTINGS or is_security_setting(f.name)
        if not owned and not is_secret_setting(f.name) and kind is not None:
            out[f.name] = kind
    return out


def _config_schema() -> Json:
    props: Json = {}
    helps = {f.name: f.metadata.get("help", "") for f in dataplane_settings.setting_fields()}
    for name, kind in configurable_settings().items():
        props[name] = {
            "type": kind,
            "description": helps[name],
            **_SETTING_CONSTRAINTS.get(name, {}),
        }
    return {"type": "object", "properties": props}


def config_env(config: Mapping[str, Any]) -> dict[str, str]:
    """spec.config as the data plane's environment variables (``VECTORIZER_<NAME>``)."""
    out: dict[str, str] = {}
    for name, value in sorted(config.items()):
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        out[dataplane_settings.ENV_PREFIX + name.upper()] = text
    return out


def _parse_config(raw: Any, path: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: must be a mapping of data-plane settings")
    known = configurable_settings()
    checks: dict[str, type | tuple[type, ...]] = {
        "integer": int,
        "number": (int, float),
        "boolean": bool,
        "string": str,
    }
    for key, value in raw.items():
        if key in RESERVED_SETTINGS:
            raise SpecError(f"{path}.{key}: is set by the operator and cannot be configured")
        if is_secret_setting(key):
            raise SpecError(f"{path}.{key}: is a secret and would be stored in a ConfigMap")
        if is_security_setting(key):
            raise SpecError(f"{path}.{key}: is set by the operator from spec.tls and spec.auth")
        if key not in known:
            raise SpecError(f"{path}.{key}: unknown data-plane setting")
        kind = known[key]
        bad_bool = isinstance(value, bool) and kind != "boolean"
        if bad_bool or not isinstance(value, checks[kind]):
            raise SpecError(f"{path}.{key}: must be of type {kind}, not {value!r}")
    try:  # the data plane's own validation, on exactly what the pods will receive
        dataplane_settings.load({}, env=config_env(raw), config_file=None, say_source=False)
    except ValidationError as err:
        raise SpecError(f"{path}.{err.field or '?'}: {err.message}") from None
    return dict(raw)


# /metrics is public unless the settings say otherwise (the data plane's own default).
_METRICS_PUBLIC: bool = next(
    f.default for f in dataplane_settings.setting_fields() if f.name == "metrics_public"
)


# ---- labels and annotations --------------------------------------------------------------

# Kubernetes' qualified names (apimachinery's IsQualifiedName / IsValidLabelValue): the
# API server refuses anything else on an object, so a spec holding one is refused here,
# before any child is changed.
_NAME_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_NAME_MAX, _PREFIX_MAX = 63, 253


def qualified_name_problem(key: str) -> str | None:
    """Why ``key`` is not a valid label or annotation key (None when it is)."""
    prefix, slash, name = key.rpartition("/")
    if slash and not prefix:
        return "the prefix before '/' is empty"
    if prefix and (len(prefix) > _PREFIX_MAX or not _DNS_SUBDOMAIN_RE.match(prefix)):
        return f"the prefix {prefix!r} is not a DNS subdomain (lowercase, at most 253 characters)"
    if not name or len(name) > _NAME_MAX or not _NAME_RE.match(name):
        return (
            "the name must be at most 63 characters: letters, digits, '-', '_' and '.', "
            "starting and ending with a letter or digit"
        )
    return None


def _string_map(raw: Any, path: str, what: str) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: must be a mapping of {what} keys to strings")
    for key, value in raw.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise SpecError(f"{path}[{key!r}]: keys and values must be strings")
        problem = qualified_name_problem(key)
        if problem is not None:
            raise SpecError(f"{path}[{key!r}]: not a valid {what} key: {problem}")
    return dict(raw)


def _parse_annotations(raw: Any, path: str) -> dict[str, str]:
    return _string_map(raw, path, "annotation")


def _parse_labels(raw: Any, path: str) -> dict[str, str]:
    out = _string_map(raw, path, "label")
    for key, value in out.items():
        if value and (len(value) > _NAME_MAX or not _NAME_RE.match(value)):
            raise SpecError(
                f"{path}[{key!r}]: {value!r} is not a valid label value (at most 63 "
                "characters: letters, digits, '-', '_' and '.', starting and ending with a "
                "letter or digit)"
            )
    return out


# ---- quantities -------------------------------------------------------------------------

_QUANTITY_SCHEMA: Json = {
    "anyOf": [{"type": "integer"}, {"type": "string"}],
    "x-kubernetes-int-or-string": True,
    "pattern": quantity.PATTERN,
}


def _parse_quantities(raw: Any, path: str) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: must be a mapping of resource name to quantity")
    out: dict[str, str] = {}
    for key, value in raw.items():
        if isinstance(value, bool) or not quantity.is_valid(value):
            raise SpecError(f"{path}.{key}: {value!r} is not a quantity")
        out[str(key)] = str(value)
    return out


def _parse_quantity(raw: Any, path: str) -> str:
    if not isinstance(raw, str) or not quantity.is_valid(raw):
        raise SpecError(f"{path}: {raw!r} is not a quantity (e.g. 10Gi)")
    return raw


# ---- spec -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalObjectReference:
    """A reference to an object in the same namespace."""

    name: str = prop(doc="Name of the referent.", min_length=1)


@dataclass(frozen=True)
class Toleration:
    """A pod toleration (as in the core Pod spec)."""

    key: str | None = prop(None, doc="Taint key the toleration applies to.")
    operator: str | None = prop(None, doc="Exists or Equal.", enum=("Exists", "Equal"))
    value: str | None = prop(None, doc="Taint value the toleration matches.")
    effect: str | None = prop(
        None, doc="Taint effect to match.", enum=("NoSchedule", "PreferNoSchedule", "NoExecute")
    )
    toleration_seconds: int | None = prop(
        None, doc="How long a NoExecute taint is tolerated.", minimum=0
    )


@dataclass(frozen=True)
class Resources:
    """CPU and memory for the data-plane container."""

    limits: dict[str, str] = prop(
        doc="Upper bounds, e.g. {memory: 8Gi}.",
        factory=dict,
        schema={"type": "object", "additionalProperties": _QUANTITY_SCHEMA},
        parser=_parse_quantities,
    )
    requests: dict[str, str] = prop(
        doc="Reservations, e.g. {cpu: '2', memory: 8Gi}.",
        factory=dict,
        schema={"type": "object", "additionalProperties": _QUANTITY_SCHEMA},
        parser=_parse_quantities,
    )


@dataclass(frozen=True)
class PvcRetentionPolicy:
    """What happens to each instance's volume claim (the StatefulSet's retention policy)."""

    when_deleted: str = prop(
        "Retain",
        doc="When the cluster is deleted: Retain keeps the data, Delete removes it.",
        enum=("Retain", "Delete"),
    )
    when_scaled: str = prop(
        "Delete",
        doc="When an instance is removed by scaling down. Delete (the default) avoids a "
        "stale copy coming back on a later scale-up.",
        enum=("Retain", "Delete"),
    )


@dataclass(frozen=True)
class StorageSpec:
    """The persistent volume of each instance (write-ahead log and snapshots)."""

    RULES: ClassVar[tuple[Rule, ...]] = (
        Rule(
            "has(self.storageClassName) == has(oldSelf.storageClassName) && "
            "(!has(self.storageClassName) || self.storageClassName == oldSelf.storageClassName)",
            "storageClassName is immutable",
        ),
    )

    size: str = prop(
        "1Gi",
        doc="Size of each instance's volume. It can grow (the claims are resized) but not shrink.",
        schema={"type": "string"},
        pattern=quantity.PATTERN,
        parser=_parse_quantity,
        rules=(
            Rule(
                "quantity(self).compareTo(quantity(oldSelf)) >= 0",
                "storage.size can grow but not shrink",
            ),
        ),
    )
    storage_class_name: str | None = prop(
        None, doc="Storage class of the claims; the cluster default when unset."
    )
    pvc_retention_policy: PvcRetentionPolicy = prop(
        doc="Whether claims are kept or deleted.", factory=PvcRetentionPolicy
    )


@dataclass(frozen=True)
class ReplicationSpec:
    """How writes reach the replicas."""

    mode: str = prop(
        "async",
        doc="async: a write is acknowledged once the primary logged it. sync: once "
        "syncReplicas replicas also confirmed it.",
        enum=("async", "sync"),
    )
    sync_replicas: int = prop(
        1,
        doc="Replicas that must confirm each write in sync mode.",
        minimum=1,
        maximum=31,
    )

    def effective_sync_replicas(self) -> int:
        return self.sync_replicas if self.mode == "sync" else 0


@dataclass(frozen=True)
class ServicesSpec:
    """The -rw, -ro and -r Services that applications call."""

    type: str = prop(
        "ClusterIP", doc="Service type.", enum=("ClusterIP", "NodePort", "LoadBalancer")
    )
    annotations: dict[str, str] = prop(
        doc="Annotations for the Services (e.g. for a load balancer).",
        factory=dict,
        parser=_parse_annotations,
    )


@dataclass(frozen=True)
class AffinitySpec:
    """Where instances may run."""

    enable_pod_anti_affinity: bool = prop(
        True, doc="Keep the instances of a cluster on different topology domains."
    )
    pod_anti_affinity_type: str = prop(
        "preferred",
        doc="preferred (best effort) or required (pods stay Pending rather than share).",
        enum=("preferred", "required"),
    )
    topology_key: str = prop(
        "kubernetes.io/hostname", doc="Node label that defines a topology domain.", min_length=1
    )
    node_selector: dict[str, str] = prop(
        doc="Node labels the pods require.", factory=dict, parser=_parse_labels
    )
    tolerations: tuple[Toleration, ...] = prop(doc="Taints the pods tolerate.", factory=tuple)


@dataclass(frozen=True)
class PodDisruptionBudgetSpec:
    """Voluntary disruptions (drains) allowed at once."""

    enabled: bool = prop(True, doc="Create a PodDisruptionBudget for the instances.")
    max_unavailable: int = prop(1, doc="Instances that may be evicted at once.", minimum=1)


# A quantile past a histogram's largest finite bucket reads as that bucket's bound
# (histogram_quantile): a higher threshold could never be reached. The bound is the data
# plane's own bucket, read from where the histogram takes it.
SEARCH_P99_MAX_SECONDS = buckets.LATENCY[-1]


@dataclass(frozen=True)
class AlertThresholds:
    """When the cluster's alerts fire (see docs/runbooks/)."""

    replication_lag_ms: float = prop(
        30000.0, doc="VectorizerReplicationLagHigh: a replica's lag in milliseconds.", minimum=0
    )
    error_ratio: float = prop(
        0.05,
        doc="VectorizerErrorRateHigh: share of requests answered with a server error (5xx).",
        minimum=0,
        maximum=1,
    )
    search_p99_seconds: float = prop(
        0.5,
        doc="VectorizerSearchLatencyHigh: 99th percentile of search latency, at most "
        f"{SEARCH_P99_MAX_SECONDS:g} (the data plane's largest latency bucket, which a "
        "p99 past it reads as).",
        minimum=0,
        maximum=SEARCH_P99_MAX_SECONDS,
    )
    wal_size_bytes: int = prop(
        1 << 30,
        doc="VectorizerWalSizeHigh: bytes retained in the write-ahead log of one instance.",
        minimum=0,
    )
    snapshot_age_seconds: int = prop(
        3600,
        doc="VectorizerSnapshotTooOld: age of the newest snapshot while writes keep coming.",
        minimum=60,
    )


@dataclass(frozen=True)
class PodMonitorSpec:
    """The PodMonitor that has Prometheus scrape every instance's /metrics."""

    enabled: bool = prop(True, doc="Create a PodMonitor (needs the Prometheus Operator).")
    interval: str = prop("30s", doc="Scrape interval.", pattern="^[0-9]+(ms|s|m|h)$")
    labels: dict[str, str] = prop(
        doc="Extra labels, e.g. the ones your Prometheus' podMonitorSelector matches.",
        factory=dict,
        parser=_parse_labels,
    )
    api_key_secret: SecretKeySelector | None = prop(
        None,
        doc="An API key Prometheus sends as a bearer token, from a Secret in the cluster's "
        "namespace: an unscoped key of any role (each may read /metrics). Required when "
        "auth is enabled and spec.config.metrics_public is false, where /metrics refuses "
        "a scrape without one.",
    )


@dataclass(frozen=True)
class PrometheusRuleSpec:
    """The PrometheusRule holding the cluster's alerts."""

    enabled: bool = prop(True, doc="Create a PrometheusRule (needs the Prometheus Operator).")
    labels: dict[str, str] = prop(
        doc="Extra labels, e.g. the ones your Prometheus' ruleSelector matches.",
        factory=dict,
        parser=_parse_labels,
    )
    runbook_base_url: str = prop(
        "https://github.com/vectorizer/vectorizer/blob/main/docs/runbooks",
        doc="Where the runbooks live; each alert links to <runbookBaseUrl>/<alert>.md.",
        min_length=1,
    )


@dataclass(frozen=True)
class MonitoringSpec:
    """Prometheus Operator resources: scraping and alerting (see docs/MONITORING.md)."""

    enabled: bool = prop(
        True,
        doc="Create the monitoring resources below when the Prometheus Operator's CRDs exist.",
    )
    pod_monitor: PodMonitorSpec = prop(doc="Scraping.", factory=PodMonitorSpec)
    prometheus_rule: PrometheusRuleSpec = prop(doc="Alerting.", factory=PrometheusRuleSpec)
    thresholds: AlertThresholds = prop(doc="Alert thresholds.", factory=AlertThresholds)


@dataclass(frozen=True)
class SecretKeySelector:
    """One key of a Secret in the cluster's namespace."""

    name: str = prop(doc="Name of the Secret.", min_length=1)
    key: str = prop(naming.API_KEY_KEY, doc="Key in the Secret.", min_length=1)


@dataclass(frozen=True)
class IssuerRef:
    """The cert-manager issuer that signs the cluster's certificate."""

    name: str = prop(doc="Name of the Issuer or ClusterIssuer.", min_length=1)
    kind: str = prop("Issuer", doc="Issuer or ClusterIssuer.", enum=("Issuer", "ClusterIssuer"))
    group: str = prop("cert-manager.io", doc="API group of the issuer.", min_length=1)


@dataclass(frozen=True)
class CertManagerSpec:
    """Have cert-manager issue and renew the certificate (its CRDs must be installed)."""

    issuer_ref: IssuerRef = prop(doc="The issuer that signs the certificate.")


@dataclass(frozen=True)
class TlsSpec:
    """HTTPS on every instance (see SECURITY.md). By default the operator generates a CA and
    a server certificate for every Service and pod name, and renews it before it expires;
    pods pick renewed files up without a restart."""

    RULES: ClassVar[tuple[Rule, ...]] = (
        Rule(
            "!has(self.secretName) || !has(self.certManager)",
            "give tls.secretName or tls.certManager, not both",
        ),
        Rule(
            # has(): the API server also checks the rule against the (empty) default.
            "!has(self.renewBeforeDays) || !has(self.validityDays) || "
            "self.renewBeforeDays < self.validityDays",
            "tls.renewBeforeDays must be lower than tls.validityDays",
        ),
        Rule(
            "!has(self.validityDays) || !has(self.caValidityDays) || "
            "self.validityDays < self.caValidityDays",
            "tls.validityDays must be lower than tls.caValidityDays",
        ),
    )

    enabled: bool = prop(True, doc="Serve HTTPS (and replicate over it).")
    secret_name: str | None = prop(
        None,
        doc="A kubernetes.io/tls Secret you manage, with tls.crt, tls.key and ca.crt; the "
        "operator neither creates nor renews it.",
        min_length=1,
    )
    cert_manager: CertManagerSpec | None = prop(
        None, doc="Have cert-manager issue the certificate into <name>-tls instead."
    )
    validity_days: int = prop(
        90,
        doc="Lifetime of the server certificate the operator (or cert-manager) issues.",
        minimum=1,
        maximum=3650,
    )
    renew_before_days: int = prop(
        30, doc="Renew the server certificate this many days before it expires.", minimum=1
    )
    ca_validity_days: int = prop(
        3650,
        doc="Lifetime of the generated CA (renewed the same number of days early).",
        minimum=30,
        maximum=36500,
    )
    replication_mtls: bool = prop(
        True,
        doc="Replicas present the cluster certificate to their primary, whose replication "
        "stream refuses connections without a certificate signed by the cluster CA.",
    )

    def check(self, path: str) -> None:
        if self.secret_name is not None and self.cert_manager is not None:
            raise SpecError(f"{path}.secretName: give secretName or certManager, not both")
        if self.renew_before_days >= self.validity_days:
            raise SpecError(f"{path}.renewBeforeDays: must be lower than validityDays")
        # The CA is renewed once it has less than validityDays left (no certificate it
        # signs may outlive it): a CA of no more than that was renewed at every pass, and
        # every renewal took the server certificate with it (18 CAs in 90 s, the cluster
        # never healthy: the operator's own calls failed verification meanwhile).
        if self.validity_days >= self.ca_validity_days:
            raise SpecError(f"{path}.validityDays: must be lower than caValidityDays")

    @property
    def generated(self) -> bool:
        """The operator issues the certificate from its own CA."""
        return self.enabled and self.secret_name is None and self.cert_manager is None


@dataclass(frozen=True)
class AuthSpec:
    """Credentials on every route but liveness, readiness and /metrics (see SECURITY.md)."""

    enabled: bool = prop(
        True,
        doc="Require an API key or a bearer token; the operator's own calls use the admin key.",
    )
    admin_key_secret: SecretKeySelector | None = prop(
        None,
        doc="The bootstrap Admin API key (at least 16 characters), from a Secret you manage; "
        "when unset the operator generates <name>-admin-key.",
    )
    jwt_secret: SecretKeySelector | None = prop(
        None, doc="Shared secret (at least 32 characters) that verifies HS256 bearer tokens."
    )
    jwt_public_key_secret: SecretKeySelector | None = prop(
        None, doc="PEM public key that verifies RS256 bearer tokens."
    )


@dataclass(frozen=True)
class ClusterSpec:
    """Desired state of a Vectorizer cluster: one primary and instances-1 replicas."""

    RULES: ClassVar[tuple[Rule, ...]] = (
        Rule(
            "self.replication.mode == 'async' || self.replication.syncReplicas < self.instances",
            "replication.syncReplicas must be lower than instances in sync mode",
        ),
    )

    instances: int = prop(
        1, doc="Number of instances (1 primary + replicas).", minimum=1, maximum=32
    )
    image: str | None = prop(
        None,
        doc="Container image; the operator's default image when unset.",
        min_length=1,
    )
    image_pull_policy: str = prop(
        "IfNotPresent", doc="Image pull policy.", enum=("Always", "IfNotPresent", "Never")
    )
    image_pull_secrets: tuple[LocalObjectReference, ...] = prop(
        doc="Secrets for pulling the image.", factory=tuple
    )
    resources: Resources = prop(doc="Container resources.", factory=Resources)
    storage: StorageSpec = prop(doc="Per-instance storage.", factory=StorageSpec)
    replication: ReplicationSpec = prop(doc="Replication mode.", factory=ReplicationSpec)
    primary_update_method: str = prop(
        "restart",
        doc="How the primary gets a new image or configuration, after every replica "
        "has: restart it in place (writes pause while it restarts), or switchover to an "
        "updated replica first.",
        enum=("restart", "switchover"),
    )
    config: dict[str, Any] = prop(
        doc="Data-plane settings (the names of `vectorizer serve`'s settings, e.g. "
        "hnsw_m, wal_fsync). Address, port, data directory and replication identity "
        "are set by the operator.",
        factory=dict,
        schema=_config_schema,
        parser=_parse_config,
    )
    services: ServicesSpec = prop(doc="Client Services.", factory=ServicesSpec)
    affinity: AffinitySpec = prop(doc="Scheduling.", factory=AffinitySpec)
    pod_disruption_budget: PodDisruptionBudgetSpec = prop(
        doc="Disruption budget.", factory=PodDisruptionBudgetSpec
    )
    monitoring: MonitoringSpec = prop(doc="Metrics scraping and alerts.", factory=MonitoringSpec)
    tls: TlsSpec = prop(doc="HTTPS and its certificates.", factory=TlsSpec)
    auth: AuthSpec = prop(doc="Authentication and the generated credentials.", factory=AuthSpec)

    @property
    def metrics_need_credential(self) -> bool:
        """Whether the pods' /metrics refuses requests without a credential."""
        return self.auth.enabled and not self.config.get("metrics_public", _METRICS_PUBLIC)

    def check(self, path: str) -> None:
        """The CEL rules again, for resources that did not pass an API server check;
        then what only the operator checks."""
        repl = self.replication
        if repl.mode == "sync" and repl.sync_replicas >= self.instances:
            raise SpecError(
                f"{path}.replication.syncReplicas: must be lower than instances "
                f"({repl.sync_replicas} >= {self.instances}) in sync mode"
            )
        # Replicas confirm a sync write once their own fsync policy put it on disk:
        # under never, no write would ever be confirmed (each a 503 replication_timeout).
        if repl.mode == "sync" and self.config.get("wal_fsync") == "never":
            raise SpecError(
                f"{path}.config.wal_fsync: never cannot go with replication.mode sync: "
                "replicas confirm a write once their fsync put it on disk, and with never "
                "none would be confirmed (use always or an interval in ms, or async mode)"
            )
        # A PodMonitor without a credential would be refused (401) on every scrape of a
        # healthy pod: up == 0, VectorizerInstanceDown everywhere, and no metric at all.
        mon = self.monitoring
        scraped = mon.enabled and mon.pod_monitor.enabled
        if scraped and self.metrics_need_credential and mon.pod_monitor.api_key_secret is None:
            raise SpecError(
                f"{path}.monitoring.podMonitor.apiKeySecret: required when auth is enabled "
                "and config.metrics_public is false: /metrics refuses a scrape without a "
                "credential (give an API key Secret for Prometheus, or turn the PodMonitor "
                "off with monitoring.podMonitor.enabled: false)"
            )


# ---- status -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    """A condition in the Kubernetes convention."""

    type: str = prop(doc="Ready, Progressing, Degraded, WritesRefused or MonitoringReady.")
    status: str = prop(doc="True, False or Unknown.", enum=("True", "False", "Unknown"))
    reason: str | None = prop(None, doc="CamelCase reason.")
    message: str | None = prop(None, doc="Human-readable detail.")
    last_transition_time: str | None = prop(None, doc="When the status last changed.")
    observed_generation: int | None = prop(None, doc="Generation the condition describes.")


@dataclass(frozen=True)
class InstanceStatus:
    """What one instance reports."""

    name: str = prop(doc="Pod name.")
    role: str | None = prop(None, doc="primary, replica or fenced, as the data plane reports.")
    ready: bool | None = prop(None, doc="The pod is Ready.")
    phase: str | None = prop(None, doc="Pod phase (Missing when there is no pod).")
    epoch: int | None = prop(None, doc="Replication epoch the instance is at.")
    sequence: int | None = prop(None, doc="Last applied log sequence.")
    lag_operations: int | None = prop(None, doc="Operations behind the primary (replicas).")
    lag_ms: float | None = prop(None, doc="Milliseconds behind the primary (replicas).")
    updated: bool | None = prop(None, doc="Runs the StatefulSet's current revision.")
    writes_refused: str | None = prop(
        None,
        doc="Why the instance refuses writes that add data now: insufficient_memory or "
        "insufficient_storage (unset while it takes them).",
    )
    message: str | None = prop(None, doc="Why the instance could not be observed.")


@dataclass(frozen=True)
class ClusterStatus:
    """Observed state, written by the operator."""

    phase: str | None = prop(None, doc="Setting up, Healthy, Degraded, Scaling, Upgrading, …")
    phase_reason: str | None = prop(None, doc="Why the cluster is in this phase.")
    observed_generation: int | None = prop(None, doc="Last spec generation acted upon.")
    instances: int | None = prop(None, doc="Instances that have a pod.")
    ready_instances: int | None = prop(None, doc="Instances whose pod is Ready.")
    current_primary: str | None = prop(None, doc="The instance that is primary.")
    target_primary: str | None = prop(
        None, doc="The instance chosen to be primary; differs during a switchover."
    )
    epoch: int | None = prop(None, doc="Replication epoch of the current primary.")
    selector: str | None = prop(None, doc="Label selector of the pods (scale subresource).")
    write_service: str | None = prop(None, doc="Service for writes (the primary).")
    read_service: str | None = prop(None, doc="Service for reads from replicas.")
    instances_status: tuple[InstanceStatus, ...] | None = prop(
        None, doc="Per-instance state.", list_map_keys=("name",)
    )
    conditions: tuple[Condition, ...] | None = prop(
        None, doc="Ready, Progressing and Degraded.", list_map_keys=("type",)
    )

    def to_json(self) -> Json:
        out = dump(self)
        assert isinstance(out, dict)
        return out


# ---- the resource -----------------------------------------------------------------------


@dataclass(frozen=True)
class Cluster:
    """A parsed VectorizerCluster."""

    name: str
    namespace: str
    uid: str
    generation: int
    spec: ClusterSpec
    status: ClusterStatus
    deleting: bool = False

    def owner_reference(self) -> Json:
        return {
            "apiVersion": naming.API_VERSION,
            "kind": naming.KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


def parse_status(raw: Any) -> ClusterStatus:
    """The status as last written (unknown fields ignored).

    A damaged status keeps at least the replication handshake fields, which the
    operator must never forget: it is rewritten in full on the next reconcile.
    """
    raw = raw if isinstance(raw, dict) else {}
    try:
        return parse(ClusterStatus, raw, "status", strict=False)
    except SpecError:
        kept = {k: raw.get(k) for k in ("currentPrimary", "targetPrimary", "epoch")}
        current, target, epoch = kept["currentPrimary"], kept["targetPrimary"], kept["epoch"]
        return ClusterStatus(
            current_primary=current if isinstance(current, str) else None,
            target_primary=target if isinstance(target, str) else None,
            epoch=epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None,
        )


def cluster_stub(body: Mapping[str, Any]) -> Cluster:
    """Metadata and status only (default spec): for reporting on a spec that is invalid."""
    meta = body.get("metadata") or {}
    return Cluster(
        name=str(meta.get("name") or ""),
        namespace=str(meta.get("namespace") or "default"),
        uid=str(meta.get("uid") or ""),
        generation=int(meta.get("generation") or 0),
        spec=ClusterSpec(),
        status=parse_status(body.get("status")),
        deleting=bool(meta.get("deletionTimestamp")),
    )


def parse_cluster(body: Mapping[str, Any]) -> Cluster:
    """A VectorizerCluster from its JSON body; SpecError names the offending field."""
    meta = body.get("metadata") or {}
    name = str(meta.get("name") or "")
    if not name or len(name) > naming.MAX_NAME_LENGTH:
        raise SpecError(f"metadata.name: must have 1 to {naming.MAX_NAME_LENGTH} characters")
    return Cluster(
        name=name,
        namespace=str(meta.get("namespace") or "default"),
        uid=str(meta.get("uid") or ""),
        generation=int(meta.get("generation") or 0),
        spec=parse(ClusterSpec, body.get("spec"), "spec"),
        status=parse_status(body.get("status")),
        deleting=bool(meta.get("deletionTimestamp")),
    )
