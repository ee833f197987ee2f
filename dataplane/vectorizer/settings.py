"""Data-plane settings: one dataclass is the single source of names, defaults and help.

Precedence: command-line flags > ``VECTORIZER_<NAME>`` environment variables > the YAML
file given by ``--config`` (or ``VECTORIZER_CONFIG``) > the defaults below.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

from vectorizer.engine.config import HnswParams
from vectorizer.engine.payloads import MAX_DEPTH as MAX_PAYLOAD_DEPTH
from vectorizer.engine.store import StoreOptions
from vectorizer.engine.wal import FsyncPolicy
from vectorizer.errors import ValidationError
from vectorizer.security.ratelimit import MIN_RPS
from vectorizer.security.secrets import MIN_HS256, MIN_KEY

ENV_PREFIX = "VECTORIZER_"


def _opt(default: Any, help: str, *, secret: bool = False) -> Any:
    # A secret never shows in a repr (so never in a log line or a traceback).
    return field(default=default, repr=not secret, metadata={"help": help, "secret": secret})


@dataclass(frozen=True)
class Settings:
    host: str = _opt("127.0.0.1", "address to listen on")
    port: int = _opt(15002, "TCP port to listen on")
    data_dir: Path = _opt(Path("./data"), "directory for the write-ahead log and snapshots")
    log_level: str = _opt("info", "debug, info, warning or error")
    log_format: str = _opt("json", "json (one JSON object per line) or text")
    metrics_enabled: bool = _opt(True, "serve /metrics and count requests")
    tracing_exporter: str = _opt("none", "where spans go: none, console or otlp")
    tracing_sample_ratio: float = _opt(1.0, "fraction of new traces sampled (0..1)")
    otlp_endpoint: str = _opt(
        "http://127.0.0.1:4318/v1/traces", "OTLP/HTTP traces endpoint (tracing_exporter otlp)"
    )
    wal_fsync: str = _opt("always", "'always' (durable), 'never', or an fsync interval in ms")
    wal_segment_bytes: int = _opt(64 << 20, "size at which the log starts a new segment file")
    snapshot_interval_s: float = _opt(300.0, "seconds between periodic snapshots (0 = off)")
    snapshot_wal_bytes: int = _opt(256 << 20, "log growth that triggers a snapshot early")
    snapshots_retained: int = _opt(2, "snapshots kept on disk")
    snapshot_on_shutdown: bool = _opt(True, "take a snapshot on SIGTERM/SIGINT/SIGHUP")
    disk_reserve_bytes: int = _opt(
        -1,
        "free disk space kept so that the next snapshot fits: below it, writes that add data "
        "are refused (deletes still go through); -1: the newest snapshot's size plus the log "
        "since it plus 64 MiB; 0: no reserve",
    )
    memory_limit_bytes: int = _opt(
        -1,
        "memory the node may use: -1: its cgroup's limit (a container's) or the machine's "
        "memory, whichever is smaller; 0: no limit (no memory guard)",
    )
    memory_high_water: float = _opt(
        0.9,
        "share of memory_limit_bytes past which writes that add data are refused (deletes "
        "still go through), so the kernel never kills the node for its data",
    )
    max_body_bytes: int = _opt(64 << 20, "largest accepted request body, in bytes")
    max_search_limit: int = _opt(10_000, "largest 'limit' a search may ask for")
    max_batch_points: int = _opt(100_000, "most points in one upsert request")
    max_batch_searches: int = _opt(1_000, "most searches in one batch search request")
    max_batch_results: int = _opt(
        100_000, "most results one batch search may ask for: the sum of its limits and offsets"
    )
    role: str = _opt("primary", "role on first start: primary or replica (then persisted)")
    primary_url: str = _opt("", "URL of the primary to follow (replicas)")
    node_id: str = _opt("", "this node's replication id (default: generated once, persisted)")
    advertise_url: str = _opt("", "URL replicas and the operator use to reach this node")
    sync_replicas: int = _opt(0, "replicas that must confirm a write before it is acknowledged")
    sync_timeout_ms: int = _opt(5000, "how long a write waits for sync replicas")
    heartbeat_interval_ms: int = _opt(500, "replication heartbeat period")
    lagging_threshold_ms: int = _opt(1000, "replica lag above which it counts as Lagging")
    disconnect_timeout_ms: int = _opt(5000, "silence after which a replica link is Disconnected")
    reconnect_interval_ms: int = _opt(500, "delay before a replica reconnects to its primary")
    request_body_timeout_s: float = _opt(
        30.0, "seconds a request body may take to arrive before a 408 (slow clients are cut off)"
    )
    max_json_depth: int = _opt(64, "deepest nesting of arrays and objects a JSON body may have")
    huge_pages: bool = _opt(
        True, "back the index memory with transparent huge pages (glibc.malloc.hugetlb=1)"
    )
    idle_poll_us: int = _opt(
        200,
        "microseconds the server keeps polling for the next request after each answer "
        "instead of sleeping (lower latency for CPU; 0 = off; off below 2 CPUs)",
    )
    # ---- security (see SECURITY.md); secrets are best given as files mounted from Secrets
    auth_enabled: bool = _opt(False, "require credentials (API keys or JWTs) on every route")
    auth_admin_key: str = _opt(
        "", "bootstrap Admin API key (prefer auth_admin_key_file)", secret=True
    )
    auth_admin_key_file: str = _opt("", "file holding the bootstrap Admin API key")
    jwt_hs256_secret: str = _opt("", "shared secret for HS256 bearer tokens", secret=True)
    jwt_hs256_secret_file: str = _opt("", "file holding the HS256 secret")
    jwt_public_key_file: str = _opt("", "PEM public key for RS256 bearer tokens")
    jwt_issuer: str = _opt("", "required 'iss' of bearer tokens (empty: not checked)")
    jwt_audience: str = _opt("", "required 'aud' of bearer tokens (empty: not checked)")
    jwt_leeway_s: float = _opt(10.0, "clock skew allowed when checking exp/nbf/iat")
    metrics_public: bool = _opt(True, "serve /metrics without credentials when auth is on")
    rate_limit_rps: float = _opt(
        100.0,
        "requests per second per credential, but for the bootstrap admin key and the "
        "replication identity (0 = no limit)",
    )
    rate_limit_burst: int = _opt(200, "requests a credential may send at once above the rate")
    audit_log_path: str = _opt(
        "", "audit log file; empty: <data_dir>/audit/audit.jsonl when auth is on; 'off'"
    )
    audit_max_bytes: int = _opt(50 << 20, "audit log size at which it is rotated")
    audit_backups: int = _opt(5, "rotated audit log files kept")
    tls_cert_file: str = _opt("", "PEM certificate chain; with tls_key_file the port speaks HTTPS")
    tls_key_file: str = _opt("", "PEM private key of tls_cert_file")
    tls_client_ca_file: str = _opt("", "PEM CA bundle that verifies client certificates")
    tls_client_auth: str = _opt("none", "client certificates: none, optional or require")
    tls_reload_interval_s: float = _opt(2.0, "how often the TLS files are checked for changes")
    tls_handshake_timeout_s: float = _opt(10.0, "seconds a client has to finish the TLS handshake")
    replication_require_mtls: bool = _opt(
        False, "the replication stream needs a verified client certificate"
    )
    replication_cert_names: str = _opt(
        "",
        "comma-separated CN/DNS names of client certificates that authenticate as the "
        "replication identity (empty: a certificate is no credential)",
    )
    replication_key: str = _opt(
        "", "credential of the replication identity (prefer the file)", secret=True
    )
    replication_key_file: str = _opt("", "file holding the replication credential")
    replication_tls_ca_file: str = _opt(
        "", "CA that verifies the primary's certificate (default: tls_client_ca_file, else system)"
    )
    replication_tls_cert_file: str = _opt(
        "", "client certificate a replica presents to its primary (default: tls_cert_file)"
    )
    replication_tls_key_file: str = _opt(
        "", "private key of replication_tls_cert_file (default: tls_key_file)"
    )
    hnsw_m: int = _opt(HnswParams.m, "default HNSW M (graph degree) for new collections")
    hnsw_ef_construction: int = _opt(
        HnswParams.ef_construction, "default HNSW ef_construction for new collections"
    )
    hnsw_ef_search: int = _opt(
        HnswParams.ef_search, "default HNSW ef at query time for new collections"
    )

    @property
    def tls_enabled(self) -> bool:
        return bool(self.tls_cert_file)

    @property
    def audit_path(self) -> Path | None:
        """Where audit lines go, or None when there is no audit log."""
        if self.audit_log_path == "off":
            return None
        if self.audit_log_path:
            return Path(self.audit_log_path)
        return self.data_dir / "audit" / "audit.jsonl" if self.auth_enabled else None

    @property
    def fsync_policy(self) -> FsyncPolicy:
        return FsyncPolicy.parse(self.wal_fsync)

    def store_options(self) -> StoreOptions:
        return StoreOptions(
            fsync=self.fsync_policy,
            segment_bytes=self.wal_segment_bytes,
            snapshot_interval_s=self.snapshot_interval_s,
            snapshot_wal_bytes=self.snapshot_wal_bytes,
            snapshots_retained=self.snapshots_retained,
            disk_reserve_bytes=self.disk_reserve_bytes,
            memory_limit_bytes=self.memory_limit_bytes,
            memory_high_water=self.memory_high_water,
            hnsw_defaults=HnswParams(
                m=self.hnsw_m,
                ef_construction=self.hnsw_ef_construction,
                ef_search=self.hnsw_ef_search,
            ).validated("hnsw"),
        )


def setting_fields() -> list[Any]:
    return list(fields(Settings))


def not_defaults(s: Settings) -> str:
    """The settings that differ from their defaults, as ``name=value`` (a secret's value
    shown as ``<set>``): what a start-up log line names, so that which flag, variable or
    file took effect can be read from the log."""
    shown = []
    for f in fields(Settings):
        value = getattr(s, f.name)
        if value != f.default:
            shown.append(
                f"{f.name}={'<set>' if f.metadata['secret'] else repr(no_password(value))}"
            )
    return ", ".join(shown) or "none"


def no_password(value: Any) -> Any:
    """``value``, a URL's password (``https://user:pass@host``, an OTLP collector's, a
    primary's) shown as ``<set>``: how a URL is logged, or told to a client."""
    if not isinstance(value, str) or "@" not in value:
        return value
    try:
        url = urlsplit(value)
        password = url.password
    except ValueError:
        return value
    if not password:
        return value
    netloc = url.netloc.replace(f":{password}@", ":<set>@", 1)
    return urlunsplit(url._replace(netloc=netloc))


def unknown_environment(env: Mapping[str, str]) -> list[str]:
    """``VECTORIZER_*`` variables that name no setting (a misspelt one is otherwise
    silently ignored); the operator's own (``VECTORIZER_OPERATOR_*``) are not ours."""
    known = {ENV_PREFIX + f.name.upper() for f in fields(Settings)} | {ENV_PREFIX + "CONFIG"}
    return sorted(
        name
        for name in env
        if name.startswith(ENV_PREFIX)
        and not name.startswith(ENV_PREFIX + "OPERATOR_")
        and name not in known
    )


def _one_line(exc: Exception) -> str:
    """What went wrong reading the config file, on one line: PyYAML's own message spans
    several, quoting the file's line under a caret."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"{exc.problem} (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(exc).split())


def convert(name: str, raw: Any) -> Any:
    """Coerce a raw value (string from env/flags, or YAML scalar) to the field's type."""
    kind = {f.name: f.type for f in fields(Settings)}[name]
    try:
        if kind == "bool":
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if kind in ("int", "float") and isinstance(raw, str) and ("_" in raw or not raw.isascii()):
            # (Python's digit grouping, "8_0", is not port 80; nor are the digits of
            # other scripts, full-width "８０" say, which int() reads too)
            raise ValueError(raw)
        if kind == "int":
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError(raw)  # (not 15002.9 read as 15002)
            return int(raw)
        if kind == "float":
            if isinstance(raw, bool):
                raise ValueError(raw)
            return float(raw)
        # A string (or, from YAML, an integer: a node id of digits): not a list, a
        # mapping or null, which str() would turn into "['a']" or "None", nor a
        # fraction, which it would write its own way (1.50 as "1.5").
        if isinstance(raw, bool) or not isinstance(raw, str | int):
            raise TypeError(raw)
        if kind == "Path":
            if not str(raw).strip():
                raise ValueError(raw)  # (not "." unasked)
            return Path(str(raw)).expanduser()
        return str(raw)
    except (TypeError, ValueError):
        raise ValidationError(f"{name}: cannot read {raw!r} as {kind}", field=name) from None


class _ConfigLoader(yaml.SafeLoader):
    """YAML as ``safe_load`` reads it, but a number is only what it looks like: YAML
    1.1's octal, hexadecimal, binary, sexagesimal and digit-grouped forms (``0123``,
    ``0x1f``, ``1_000``, ``1:30``) are text, as the same value from the environment is
    (``node_id: 0123`` was node 83). So are its ``on``, ``off``, ``yes`` and ``no``
    (``audit_log_path: off`` was False, refused as no path); a boolean setting reads
    them from text, as from the environment. A key given twice is an error (YAML
    forbids it; PyYAML kept the last quietly, and a setting read as one value ran as
    another)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # (``<<: *defaults`` merges keys that the mapping may override)
            key = self.construct_object(key_node, deep=deep)
            try:
                repeated = key in seen
            except TypeError:
                continue  # (not hashable: PyYAML's own error says so)
            if repeated:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping",
                    node.start_mark,
                    f"the key {key!r} appears more than once",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


_INT, _FLOAT = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_ConfigLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_INT, _FLOAT, _BOOL)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_ConfigLoader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), [*"tTfF"]
)
_ConfigLoader.add_implicit_resolver(
    _INT, re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), [*"-+0123456789"]
)
_ConfigLoader.add_implicit_resolver(
    _FLOAT,
    re.compile(
        r"^(?:[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    [*"-+0123456789."],
)


def load(
    flags: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
    *,
    say_source: bool = True,
) -> Settings:
    """Merge defaults < file < environment < flags (flags with value None are unset). An
    error names the setting and (``say_source``) where its value came from."""
    sources: dict[str, str] = {}  # where each setting not left at its default was read
    try:
        return _load(flags, os.environ if env is None else env, config_file, sources)
    except ValidationError as err:
        name = _HNSW_FIELDS.get(err.field or "", err.field or "")
        if name == err.field and not (say_source and name in sources):
            raise
        message = err.message
        if name != err.field:  # ("m must be ..." of the index's field hnsw.m)
            param = (err.field or "").rpartition(".")[2]
            message = name + message.removeprefix(param) if message.startswith(param) else message
        if say_source and name in sources:
            message = f"{message} (from {sources[name]})"
        raise ValidationError(message, field=name) from None


# The collections' default index parameters, as HnswParams names its errors' fields.
_HNSW_FIELDS = {f"hnsw.{p}": f"hnsw_{p}" for p in ("m", "ef_construction", "ef_search")}


def _load(
    flags: Mapping[str, Any],
    env: Mapping[str, str],
    config_file: Path | None,
    sources: dict[str, str],
) -> Settings:
    names = {f.name for f in fields(Settings)}
    values: dict[str, Any] = {}
    path = config_file or (
        Path(env[ENV_PREFIX + "CONFIG"]) if ENV_PREFIX + "CONFIG" in env else None
    )
    if path is not None:
        try:
            doc = yaml.load(path.read_text(), Loader=_ConfigLoader) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ValidationError(
                f"cannot read config file {path}: {_one_line(exc)}", field="config"
            ) from None
        if not isinstance(doc, dict):
            raise ValidationError(f"config file {path} must be a mapping", field="config")
        for key, raw in doc.items():
            if key not in names:
                raise ValidationError(f"unknown setting {key!r} in {path}", field=str(key))
            sources[key] = f"config file {path}"
            values[key] = convert(key, raw)
    for name in names:
        if (raw_env := env.get(ENV_PREFIX + name.upper())) is not None:
            sources[name] = f"environment variable {ENV_PREFIX}{name.upper()}"
            values[name] = convert(name, raw_env)
    for name, raw in flags.items():
        if name in names and raw is not None:
            sources[name] = f"flag --{name.replace('_', '-')}"
            values[name] = convert(name, raw)
    settings = Settings(**values)
    settings.fsync_policy  # noqa: B018 - validates wal_fsync early
    settings.store_options()
    if settings.log_format not in ("json", "text"):
        raise ValidationError("log_format must be json or text", field="log_format")
    if settings.log_level.lower() not in LOG_LEVELS:
        raise ValidationError(
            f"log_level must be one of {', '.join(LOG_LEVELS)}", field="log_level"
        )
    if not settings.host.strip():  # (an empty host would listen on every interface)
        raise ValidationError(
            "host must be an address or a name (0.0.0.0: every interface)", field="host"
        )
    if settings.tracing_exporter not in ("none", "console", "otlp"):
        raise ValidationError(
            "tracing_exporter must be none, console or otlp", field="tracing_exporter"
        )
    if settings.role not in ("primary", "replica"):
        raise ValidationError("role must be primary or replica", field="role")
    for name in ("primary_url", "advertise_url", "otlp_endpoint"):
        if (url := getattr(settings, name)) and not is_web_url(url):
            raise ValidationError(f"{name} must be an http(s) URL with a host: {url!r}", field=name)
    check_limits(settings)
    check_security(settings)
    return settings


# Inclusive bounds of numeric settings (floats must be finite too).
RANGES: dict[str, tuple[float, float]] = {
    "port": (0, 65535),
    "wal_segment_bytes": (1024, 1 << 40),
    "snapshot_interval_s": (0, 10**9),
    "snapshot_wal_bytes": (1, 1 << 50),
    "snapshots_retained": (1, 1000),
    "max_body_bytes": (1, 1 << 40),
    "max_search_limit": (1, 1 << 31),
    "max_batch_points": (1, 1 << 31),
    "sync_timeout_ms": (1, 10**9),
    "heartbeat_interval_ms": (1, 10**9),
    "lagging_threshold_ms": (1, 10**9),
    "disconnect_timeout_ms": (1, 10**9),
    "reconnect_interval_ms": (1, 10**9),
    "jwt_leeway_s": (0, 10**9),
    "rate_limit_rps": (0, 10**9),  # (0: no limit; else at least MIN_RPS: OFF_OR_AT_LEAST)
    "rate_limit_burst": (1, 1 << 31),
    "request_body_timeout_s": (1e-3, 10**6),
    "max_json_depth": (1, MAX_PAYLOAD_DEPTH),  # (a body's payload is stored: see there)
    "idle_poll_us": (0, 100_000),
    "disk_reserve_bytes": (-1, 1 << 62),  # (-1: automatic, 0: off)
    "memory_limit_bytes": (-1, 1 << 62),  # (-1: automatic, 0: off)
    "memory_high_water": (0.01, 1),
    "max_batch_searches": (1, 1 << 31),
    "max_batch_results": (1, 1 << 40),
    "tracing_sample_ratio": (0, 1),
    "sync_replicas": (0, 1000),
    "audit_max_bytes": (1024, 1 << 50),
    "audit_backups": (1, 1000),
    "tls_reload_interval_s": (1e-3, 10**6),
    "tls_handshake_timeout_s": (1e-3, 10**6),
}
# Limits that 0 turns off and whose other values must be at least this (within RANGES):
# a rate limit slower than MIN_RPS (one request in 100,000 s) is no limit to plan by.
OFF_OR_AT_LEAST: dict[str, float] = {"rate_limit_rps": MIN_RPS}
LOG_LEVELS = ("debug", "info", "warning", "error")


def is_web_url(text: object) -> bool:
    """Whether ``text`` is an http or https URL naming a host."""
    if not isinstance(text, str):
        return False
    try:
        parts = urlsplit(text)
    except ValueError:  # (an unbalanced IPv6 bracket, say)
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def check_limits(s: Settings) -> None:
    for name, (lo, hi) in RANGES.items():
        value = getattr(s, name)
        if not (math.isfinite(value) and lo <= value <= hi):
            raise ValidationError(f"{name} must be in {lo:g}..{hi:g}", field=name)
    for name, least in OFF_OR_AT_LEAST.items():
        if 0 < getattr(s, name) < least:
            hi = RANGES[name][1]
            message = f"{name} must be 0 (no limit) or in {least:g}..{hi:g}"
            raise ValidationError(message, field=name)


def check_security(s: Settings) -> None:
    """Refuse combinations that would silently be less secure than asked for."""
    if bool(s.tls_cert_file) != bool(s.tls_key_file):
        raise ValidationError("tls_cert_file and tls_key_file go together", field="tls_key_file")
    if s.tls_client_auth not in ("none", "optional", "require"):
        raise ValidationError(
            "tls_client_auth must be none, optional or require", field="tls_client_auth"
        )
    if s.tls_client_auth != "none" and not (s.tls_enabled and s.tls_client_ca_file):
        raise ValidationError(
            "tls_client_auth needs tls_cert_file, tls_key_file and tls_client_ca_file",
            field="tls_client_auth",
        )
    if s.replication_require_mtls and s.tls_client_auth == "none":
        raise ValidationError(
            "replication_require_mtls needs tls_client_auth optional or require",
            field="replication_require_mtls",
        )
    for name in ("auth_admin_key", "replication_key"):
        value = getattr(s, name)
        if value and len(value) < MIN_KEY:
            raise ValidationError(f"{name} must be at least {MIN_KEY} characters", field=name)
        if value and getattr(s, name + "_file"):
            raise ValidationError(f"give {name} or {name}_file, not both", field=name)
    if s.jwt_hs256_secret and s.jwt_hs256_secret_file:
        raise ValidationError(
            "give jwt_hs256_secret or jwt_hs256_secret_file, not both", field="jwt_hs256_secret"
        )
    if s.jwt_hs256_secret and len(s.jwt_hs256_secret) < MIN_HS256:
        raise ValidationError(
            f"jwt_hs256_secret must be at least {MIN_HS256} characters", field="jwt_hs256_secret"
        )
    for name in (
        "auth_admin_key_file",
        "replication_key_file",
        "jwt_hs256_secret_file",
        "jwt_public_key_file",
        "tls_cert_file",
        "tls_key_file",
        "tls_client_ca_file",
        "replication_tls_ca_file",
        "replication_tls_cert_file",
        "replication_tls_key_file",
    ):
        value = getattr(s, name)
        if value and not Path(value).is_file():
            raise ValidationError(f"{name}: {value} is not a readable file", field=name)
