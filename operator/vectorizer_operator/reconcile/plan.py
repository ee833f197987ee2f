"""One pass's decisions, all of them, from one observation (pure).

The order encodes the priorities: replication first (who is primary), then the pod
count, then at most one pod deletion; a switchover, once started, pauses the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from vectorizer_operator.reconcile.actions import (
    DeletePod,
    RecordTargetPrimary,
    ResizeClaim,
    SetPodLabels,
)
from vectorizer_operator.reconcile.labels import plan_labels
from vectorizer_operator.reconcile.observe import Observation
from vectorizer_operator.reconcile.replication import State, Topology, plan_replication
from vectorizer_operator.reconcile.rolling import RolloutPlan, plan_broken, plan_rollout
from vectorizer_operator.reconcile.scaling import ScalePlan, plan_scaling
from vectorizer_operator.reconcile.storage import plan_resizes


@dataclass(frozen=True)
class Plan:
    topology: Topology  # what the status reports (a switchover started here included)
    replication: Topology  # what the replication step decided (its actions run first)
    scale: ScalePlan
    rollout: RolloutPlan | None
    start_switchover: RecordTargetPrimary | None
    labels: tuple[SetPodLabels, ...]
    resizes: tuple[ResizeClaim, ...]
    delete: DeletePod | None


def decide(obs: Observation, *, max_lag: int, switchover_timeout_s: float) -> Plan:
    topo = plan_replication(obs, max_lag=max_lag, switchover_timeout_s=switchover_timeout_s)
    serving = topo.current_primary if topo.state is State.HEALTHY else None
    scale = plan_scaling(obs, serving, max_lag=max_lag)
    stable = serving is not None and topo.target_primary == serving
    rollout = None
    if stable and serving is not None and not scale.scaling(obs):
        method = obs.cluster.spec.primary_update_method
        rollout = plan_rollout(obs, serving, method=method, max_lag=max_lag)
    wanted = scale.switchover_to or (rollout.switchover_to if rollout else None)
    start = None
    reported = topo
    if wanted and stable and obs.switchover_allowed and not topo.aborted_switchover:
        start = RecordTargetPrimary(wanted)
        reported = replace(
            topo,
            state=State.SWITCHOVER,
            reason=f"switching over to {wanted}",
            target_primary=wanted,
        )
    quiet = not topo.actions and start is None and topo.state is not State.SWITCHOVER
    delete = plan_broken(obs, topo.current_primary) if quiet else None
    if delete is None and quiet and rollout is not None:
        delete = rollout.delete
    return Plan(
        topology=reported,
        replication=topo,
        scale=scale,
        rollout=rollout,
        start_switchover=start,
        labels=tuple(plan_labels(obs, topo.current_primary)),
        resizes=tuple(plan_resizes(obs)),
        delete=delete,
    )
