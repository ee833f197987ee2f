"""The operator's own settings: one frozen dataclass, from flags > environment > defaults.

Every field is also an environment variable ``VECTORIZER_OPERATOR_<NAME>`` and a flag
``--<name>`` of ``vectorizer operator`` (list fields take a comma-separated value).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from vectorizer import __version__

ENV_PREFIX = "VECTORIZER_OPERATOR_"


def _opt(default: Any, help: str, **extra: Any) -> Any:
    return field(default=default, metadata={"help": help, **extra})


@dataclass(frozen=True)
class OperatorSettings:
    namespaces: tuple[str, ...] = _opt(
        (), "namespaces to watch (comma-separated; kopf globs allowed); empty: all namespaces"
    )
    peering_name: str = _opt(
        "vectorizer-operator",
        "name of the Lease that operator replicas elect a leader with (one acts at a time)",
    )
    standalone: bool = _opt(False, "skip leader election (a single replica, or tests)")
    lease_namespace: str = _opt("", "namespace of the Lease (default: $POD_NAMESPACE)")
    identity: str = _opt("", "this replica's name in the Lease (default: $POD_NAME)")
    lease_duration_s: float = _opt(
        15.0, "seconds a leader holds the Lease without renewing", bounds=(1.0, 3600.0)
    )
    liveness: str = _opt("http://0.0.0.0:8080/healthz", "liveness endpoint URL (empty: none)")
    metrics_port: int = _opt(
        9102, "port of the operator's Prometheus /metrics endpoint (0: none)", bounds=(0, 65535)
    )
    metrics_address: str = _opt("0.0.0.0", "address the /metrics endpoint listens on")
    log_format: str = _opt("json", "json or text", choices=("json", "text"))
    log_level: str = _opt(
        "info", "debug, info, warning or error", choices=("debug", "info", "warning", "error")
    )
    default_image: str = _opt(
        f"vectorizer:{__version__}", "image for clusters whose spec sets none"
    )
    cluster_domain: str = _opt("cluster.local", "DNS domain of the cluster (pod URLs)")
    pod_address: str = _opt(
        "ip", "how the operator reaches a node: ip (pod IP) or dns", choices=("ip", "dns")
    )
    resync_s: float = _opt(
        10.0, "seconds between checks of a healthy cluster", bounds=(0.5, 86400.0)
    )
    dataplane_timeout_s: float = _opt(3.0, "timeout of one call to a node", bounds=(0.1, 600.0))
    max_catchup_lag: int = _opt(
        100,
        "operations a replica may be behind and still count as caught up",
        bounds=(0, 2**62),
    )
    switchover_timeout_s: float = _opt(
        30.0,
        "how long a switchover may wait for the new primary to catch up",
        bounds=(1.0, 86400.0),
    )

    def resolved(self, env: Mapping[str, str] | None = None) -> OperatorSettings:
        """Fill the defaults that come from the pod (namespace, name) or the host."""
        env = os.environ if env is None else env
        return replace(
            self,
            lease_namespace=self.lease_namespace or env.get("POD_NAMESPACE") or "default",
            identity=self.identity
            or env.get("POD_NAME")
            or f"{socket.gethostname()}-{os.getpid()}",
        )

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces


def convert(name: str, raw: Any) -> Any:
    """A raw flag/env value as the field's type; ValueError when it cannot be."""
    f = {f.name: f for f in fields(OperatorSettings)}[name]
    kind = str(f.type)
    if kind.startswith("tuple"):
        items = raw if isinstance(raw, list | tuple) else str(raw).split(",")
        value: Any = tuple(s.strip() for s in items if s.strip())
    elif kind == "bool":
        text = str(raw).strip().lower()
        if text not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            raise ValueError(f"{name}: {raw!r} is not a boolean")
        value = text in ("1", "true", "yes", "on")
    elif kind == "int":
        value = int(raw)
    elif kind == "float":
        value = float(raw)
    else:
        value = str(raw)
    choices = f.metadata.get("choices")
    if choices and value not in choices:
        raise ValueError(f"{name}: {value!r} is not one of {', '.join(choices)}")
    bounds = f.metadata.get("bounds")
    if bounds and not bounds[0] <= value <= bounds[1]:  # (a NaN is in no bounds)
        raise ValueError(f"{name}: {raw!r} is not between {bounds[0]} and {bounds[1]}")
    return value


def load(flags: Mapping[str, Any], env: Mapping[str, str] | None = None) -> OperatorSettings:
    """Defaults < environment < flags (flags set to None are unset)."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for f in fields(OperatorSettings):
        raw = env.get(ENV_PREFIX + f.name.upper())
        if raw is not None:
            values[f.name] = convert(f.name, raw)
        if flags.get(f.name) is not None:
            values[f.name] = convert(f.name, flags[f.name])
    return OperatorSettings(**values).resolved(env)
