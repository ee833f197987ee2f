"""Core/v1 Events about pods, so `kubectl describe pod` shows what went wrong."""

import logging
import secrets

from ..kube import JsonDict, Kube, KubeError, path
from .clock import now, now_micro

log = logging.getLogger(__name__)


async def emit(
    kube: Kube, pod: JsonDict, reason: str, message: str, *, warning: bool = False
) -> None:
    meta = pod["metadata"]
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{meta['name']}.{secrets.token_hex(8)}",
            "namespace": meta["namespace"],
        },
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
        },
        "reason": reason,
        "message": message,
        "type": "Warning" if warning else "Normal",
        "source": {"component": "process-kubelet", "host": pod["spec"].get("nodeName", "")},
        "firstTimestamp": now(),
        "lastTimestamp": now(),
        "eventTime": now_micro(),
        "reportingComponent": "process-kubelet",
        "reportingInstance": pod["spec"].get("nodeName", ""),
        "action": reason,
        "count": 1,
    }
    try:
        await kube.create(path("events", meta["namespace"]), event)
    except KubeError as e:
        log.debug("event %s for %s/%s not recorded: %s", reason, meta["namespace"], meta["name"], e)
