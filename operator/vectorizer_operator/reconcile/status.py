"""The status we write: phase with its reason, conditions, and per-instance state.

The phase says what the operator is doing or what is wrong, in that order of
precedence: Setting up, Switchover, Scaling, Upgrading, Degraded, Healthy (and Failed
for a spec that cannot be acted upon). Conditions follow the phase:

- Ready: True only when Healthy;
- Progressing: True while setting up, scaling, upgrading or switching over;
- Degraded: True when some instance or the primary does not serve (phase Degraded), and
  also while a phase of higher precedence hides a primary that does not serve (Scaling
  with the primary down: the condition carries what is wrong, ``Phase.fault``);
- MonitoringReady (while spec.monitoring wants a PodMonitor or PrometheusRule): True
  once applied, False when the Prometheus Operator is absent or applying failed;
- WritesRefused: True while the primary refuses writes that add data (its disk is down
  to the reserve, or its memory at the high-water mark); reads and deletes go on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from vectorizer import errors
from vectorizer_operator import naming
from vectorizer_operator.model import Cluster, ClusterStatus, Condition, InstanceStatus
from vectorizer_operator.reconcile.monitoring import CONDITION as MONITORING
from vectorizer_operator.reconcile.monitoring import MonitoringCondition
from vectorizer_operator.reconcile.observe import Instance, Observation, PodView, same_url
from vectorizer_operator.reconcile.replication import State, Topology
from vectorizer_operator.reconcile.rolling import RolloutPlan, is_outdated
from vectorizer_operator.reconcile.scaling import ScalePlan

SETTING_UP = "Setting up"
HEALTHY = "Healthy"
DEGRADED = "Degraded"
SCALING = "Scaling"
UPGRADING = "Upgrading"
SWITCHOVER = "Switchover"
FAILED = "Failed"

PROGRESSING_PHASES = frozenset({SETTING_UP, SCALING, UPGRADING, SWITCHOVER})
_REASONS = {
    SETTING_UP: "SettingUp",
    HEALTHY: "ClusterHealthy",
    DEGRADED: "ClusterDegraded",
    SCALING: "Scaling",
    UPGRADING: "RollingUpdate",
    SWITCHOVER: "Switchover",
    FAILED: "InvalidSpec",
}


WRITES_REFUSED = "WritesRefused"
_REFUSAL_REASONS = {  # the data plane's error code -> the condition's reason
    errors.InsufficientMemory.code: "InsufficientMemory",
    errors.InsufficientStorage.code: "InsufficientStorage",
}


@dataclass(frozen=True)
class Refusal:
    """The WritesRefused condition: whether the primary refuses writes, and why."""

    refused: bool
    reason: str
    message: str = ""


def refusal(obs: Observation, primary: str | None) -> Refusal:
    inst = obs.instance(primary)
    code = inst.node.writes_refused if inst is not None and inst.node is not None else None
    if code is None:
        return Refusal(False, "WritesAccepted")
    return Refusal(
        True,
        _REFUSAL_REASONS.get(code, "WritesRefused"),
        f"{primary} refuses writes that add data ({code}); reads and deletes go on",
    )


@dataclass(frozen=True)
class Phase:
    name: str
    reason: str | None = None
    # What is wrong while a phase of higher precedence than Degraded is shown (the
    # primary does not answer while scaling): the Degraded condition is True with it.
    fault: str | None = None


def outdated_instances(obs: Observation) -> list[str]:
    sts = obs.statefulset
    if sts is None or not sts.update_revision:
        return []
    return [i.name for i in obs.members if is_outdated(i, sts.update_revision)]


def _not_serving(obs: Observation) -> list[str]:
    return [i.name for i in obs.instances if i.ordinal < obs.desired and not i.serving]


def _waiting(pending: Sequence[str], primary: str | None) -> str:
    """What a phase waits for. The primary (restarting in place, say) is waited for to be
    ready; it follows nobody."""
    replicas = [name for name in pending if name != primary]
    parts = [f"the primary {primary} to be ready"] if primary in pending else []
    if replicas:
        parts.append(f"{', '.join(replicas)} to be ready and follow the primary")
    return "waiting for " + " and for ".join(parts)


def _not_following(obs: Observation, primary: str | None) -> list[str]:
    """Wanted replicas that do not stream from the primary (lag alone is not counted)."""
    if primary is None:
        return []
    url = obs.url(primary)
    out = []
    for i in obs.instances:
        if i.ordinal >= obs.desired or i.name == primary or i.node is None:
            continue
        n = i.node
        if n.role != naming.ROLE_REPLICA or not same_url(n.primary, url) or n.connected is False:
            out.append(i.name)
    return out


def choose_phase(
    obs: Observation, topo: Topology, scale: ScalePlan, rollout: RolloutPlan | None
) -> Phase:
    if topo.state is State.SETTING_UP:
        return Phase(SETTING_UP, topo.reason)
    if topo.state is State.SWITCHOVER:
        return Phase(SWITCHOVER, topo.reason)
    previous = obs.cluster.status.phase
    outdated = outdated_instances(obs)
    sts = obs.statefulset
    extra = [i.name for i in obs.instances if i.ordinal >= obs.desired and i.pod is not None]
    pending = sorted(set(_not_serving(obs)) | set(_not_following(obs, topo.current_primary)))
    waiting = _waiting(pending, topo.current_primary)
    scaling = bool(scale.scaling(obs) or (sts is not None and sts.replicas != obs.desired) or extra)
    if topo.state is State.DEGRADED:
        if scaling or (pending and previous == SCALING):
            # Scaling comes before Degraded, but a primary that does not serve is not
            # hidden: the reason says it, and the Degraded condition is True with it.
            what = (scale.waiting or f"scaling to {obs.desired} instances") if scaling else waiting
            return Phase(SCALING, f"{what}; {topo.reason}", fault=topo.reason)
        primary = obs.instance(topo.current_primary)
        restarting = primary is not None and primary.pod is not None
        if previous == UPGRADING and (outdated or restarting):
            # The primary restarting in place on the new revision: expected, not a fault.
            return Phase(UPGRADING, topo.reason)
        return Phase(DEGRADED, topo.reason)
    if scaling:
        return Phase(SCALING, scale.waiting or f"scaling to {obs.desired} instances")
    if pending and previous in (None, SETTING_UP, SCALING, UPGRADING):
        return Phase(previous or SETTING_UP, waiting)
    if outdated:
        reason = rollout.waiting if rollout and rollout.waiting else None
        return Phase(
            UPGRADING, reason or f"{len(outdated)} instance(s) to update: {', '.join(outdated)}"
        )
    if pending:
        return Phase(DEGRADED, waiting)
    return Phase(HEALTHY, topo.reason or None)


def _condition(
    previous: Sequence[Condition],
    kind: str,
    true: bool,
    reason: str,
    message: str | None,
    generation: int | None,
    now: str,
) -> Condition:
    status = "True" if true else "False"
    old = next((c for c in previous if c.type == kind), None)
    since = (
        old.last_transition_time
        if old and old.status == status and old.last_transition_time
        else now
    )
    return Condition(kind, status, reason, message or None, since, generation)


def conditions(
    cluster: Cluster,
    phase: Phase,
    now: str,
    monitoring: MonitoringCondition | None = None,
    refused: Refusal | None = None,
    *,
    observed_generation: int | None = None,
) -> tuple[Condition, ...]:
    """``observed_generation`` is status.observedGeneration's: the spec generation whose
    children were applied (a pass whose apply failed, or a spec that is Failed, did not
    act on the newest one), so the two never disagree."""
    previous = cluster.status.conditions or ()
    reason = _REASONS.get(phase.name, "Unknown")
    gen = observed_generation
    progressing = phase.name in PROGRESSING_PHASES
    degraded = phase.name in (DEGRADED, FAILED)
    fault: tuple[bool, str, str | None] = (degraded, reason, phase.reason)
    if phase.fault and not degraded:
        fault = (True, _REASONS[DEGRADED], phase.fault)
    out: tuple[Condition, ...] = (
        _condition(previous, "Ready", phase.name == HEALTHY, reason, phase.reason, gen, now),
        _condition(previous, "Progressing", progressing, reason, phase.reason, gen, now),
        _condition(previous, "Degraded", *fault, gen, now),
    )
    if refused is not None:
        r = refused
        out = (*out, _condition(previous, WRITES_REFUSED, r.refused, r.reason, r.message, gen, now))
    if monitoring is None:
        return out
    m = monitoring
    return (*out, _condition(previous, MONITORING, m.ready, m.reason, m.message, gen, now))


def is_ready(pod: PodView | None) -> bool:
    """Ready and staying: a pod being deleted may still say Ready while it shuts down,
    but it is on its way out (its endpoints are no longer ready either)."""
    return pod is not None and pod.ready and not pod.terminating


def instance_status(inst: Instance, update_revision: str | None) -> InstanceStatus:
    pod, node = inst.pod, inst.node
    if pod is None:
        phase = "Missing"
    elif pod.terminating:
        phase = "Terminating"
    else:
        phase = pod.phase
    updated = None
    if pod is not None and pod.revision and update_revision:
        updated = pod.revision == update_revision
    # A replica that is not connected to its primary is behind by an unknown amount: its
    # node may still say 0 (nothing was left to apply when the link dropped).
    disconnected = node is not None and node.role == naming.ROLE_REPLICA and node.connected is False
    message = inst.error
    if message is None and disconnected:
        message = "not connected to its primary" + (
            f" {node.primary}" if node and node.primary else ""
        )
    return InstanceStatus(
        name=inst.name,
        role=node.role if node else None,
        ready=is_ready(pod),
        phase=phase,
        epoch=node.epoch if node else None,
        sequence=node.sequence if node else None,
        lag_operations=node.lag_operations if node and not disconnected else None,
        lag_ms=node.lag_ms if node and not disconnected else None,
        updated=updated,
        writes_refused=node.writes_refused if node else None,
        message=message,
    )


def build_status(
    obs: Observation,
    topo: Topology,
    phase: Phase,
    *,
    now: str,
    observed_generation: int | None,
    monitoring: MonitoringCondition | None = None,
) -> ClusterStatus:
    cluster = obs.cluster
    sts = obs.statefulset
    members = [i for i in obs.instances if i.pod is not None]
    ready = [i for i in members if is_ready(i.pod)]
    return ClusterStatus(
        phase=phase.name,
        phase_reason=phase.reason,
        observed_generation=observed_generation,
        instances=len(members),
        ready_instances=len(ready),
        current_primary=topo.current_primary,
        target_primary=topo.target_primary,
        epoch=topo.epoch or cluster.status.epoch,
        selector=naming.label_selector(cluster.name),
        write_service=naming.rw_service(cluster.name),
        read_service=naming.ro_service(cluster.name),
        instances_status=tuple(
            instance_status(i, sts.update_revision if sts else None) for i in obs.instances
        ),
        conditions=conditions(
            cluster,
            phase,
            now,
            monitoring,
            refusal(obs, topo.current_primary),
            observed_generation=observed_generation,
        ),
    )


def failed_status(cluster: Cluster, message: str, *, now: str) -> ClusterStatus:
    """An invalid spec: nothing is changed; the replication fields are kept as they were."""
    phase = Phase(FAILED, message)
    old = cluster.status
    return ClusterStatus(
        phase=FAILED,
        phase_reason=message,
        observed_generation=old.observed_generation,
        instances=old.instances,
        ready_instances=old.ready_instances,
        current_primary=old.current_primary,
        target_primary=old.target_primary,
        epoch=old.epoch,
        selector=naming.label_selector(cluster.name),
        write_service=naming.rw_service(cluster.name),
        read_service=naming.ro_service(cluster.name),
        instances_status=old.instances_status,
        # Nothing was applied or observed: the monitoring and write conditions, if any,
        # stay as they were.
        conditions=(
            *conditions(cluster, phase, now, observed_generation=old.observed_generation),
            *(c for c in old.conditions or () if c.type in (MONITORING, WRITES_REFUSED)),
        ),
    )
