"""Pod status from the state of its containers (pure functions)."""

from collections.abc import Sequence

from ..kube import JsonDict
from .clock import now
from .container import ContainerRunner


def _condition(kind: str, ok: bool, previous: Sequence[JsonDict], reason: str = "") -> JsonDict:
    status = "True" if ok else "False"
    old = next((c for c in previous if c.get("type") == kind), None)
    since = (
        old["lastTransitionTime"]
        if old and old.get("status") == status and old.get("lastTransitionTime")
        else now()
    )
    cond: JsonDict = {
        "type": kind,
        "status": status,
        "lastTransitionTime": since,
        "lastProbeTime": None,
    }
    if reason and not ok:
        cond["reason"] = reason
    return cond


def phase(init_done: bool, runners: Sequence[ContainerRunner], init_failed: bool) -> str:
    if init_failed:
        return "Failed"
    if not init_done or not runners or not all(r.ever_ran for r in runners):
        return "Pending"
    codes = [r.exit_code for r in runners]
    if any(c is None for c in codes):
        return "Running"
    return "Succeeded" if all(c == 0 for c in codes) else "Failed"


def pod_status(
    pod: JsonDict,
    *,
    phase_: str,
    sandbox_ready: bool,
    init_done: bool,
    init_runners: Sequence[ContainerRunner],
    runners: Sequence[ContainerRunner],
    pod_ip: str | None,
    host_ip: str,
    start_time: str,
) -> JsonDict:
    previous = pod.get("status", {}).get("conditions", [])
    containers_ready = bool(runners) and all(r.ready for r in runners) and phase_ == "Running"
    gates = [g["conditionType"] for g in pod["spec"].get("readinessGates", [])]
    gates_ok = all(
        any(c.get("type") == g and c.get("status") == "True" for c in previous) for g in gates
    )
    status: JsonDict = {
        "phase": phase_,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "startTime": start_time,
        "conditions": [
            _condition("PodReadyToStartContainers", sandbox_ready, previous),
            _condition("Initialized", init_done, previous, "ContainersNotInitialized"),
            _condition("ContainersReady", containers_ready, previous, "ContainersNotReady"),
            _condition("Ready", containers_ready and gates_ok, previous, "ContainersNotReady"),
        ],
        "containerStatuses": [r.status() for r in runners],
    }
    if init_runners:
        status["initContainerStatuses"] = [r.status() for r in init_runners]
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    return status
