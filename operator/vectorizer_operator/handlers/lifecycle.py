"""Operator start and stop, kopf's own settings, and the liveness probe."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from vectorizer_operator import naming
from vectorizer_operator.runtime import Runtime
from vectorizer_operator.settings import OperatorSettings

log = logging.getLogger(__name__)


GLOB_CHARS = frozenset("*?[!")


def configure_kopf(settings: kopf.OperatorSettings, config: OperatorSettings) -> None:
    # We post our own Events; kopf's would echo every handler log line.
    settings.posting.enabled = False
    # Kopf scans (lists and watches) CRDs and Namespaces cluster-wide, which needs
    # cluster-wide read access; without namespace patterns one discovery at start
    # is enough. So the CRD must be installed before the operator starts.
    globs = any(GLOB_CHARS & set(ns) for ns in config.namespaces)
    settings.scanning.disabled = not globs
    # A silent watch stream must not go unnoticed (kopf#585, #810).
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    # Only our pods and children are worth streaming.
    selectors = getattr(settings.watching, "label_selectors", None)
    if selectors is not None:
        selectors["v1", "pods"] = naming.LABEL_CLUSTER
        selectors["apps", "v1", "statefulsets"] = naming.LABEL_CLUSTER
        selectors["v1", "services"] = naming.LABEL_CLUSTER


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: Any, **kwargs: Any) -> None:
    config: OperatorSettings = memo.config
    configure_kopf(settings, config)
    cluster_keys: kopf.Index[Any, Any] = kwargs["cluster_keys"]  # the index in clusters.py
    memo.runtime = await Runtime.connect(config, keys=lambda: list(cluster_keys))
    scope = "all namespaces" if config.clusterwide else ", ".join(config.namespaces)
    election = (
        "standalone"
        if config.standalone
        else f"lease {config.lease_namespace}/{config.peering_name}"
    )
    log.info("vectorizer operator %s watching %s (%s)", config.identity, scope, election)


@kopf.on.cleanup()
async def stop(memo: Any, **_: Any) -> None:
    runtime: Runtime | None = memo.get("runtime")
    if runtime is not None:
        await runtime.stop()


@kopf.on.probe(id="reconciler")
def reconciler_health(memo: Any, **_: Any) -> dict[str, Any]:
    runtime: Runtime = memo.runtime
    return runtime.health()
