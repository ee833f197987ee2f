"""Rolling out a new pod template (image, resources, config) under ``OnDelete``.

A pod runs the new revision once it is deleted and recreated. One pod at a time, and
only while every other instance is Ready and every replica is caught up with the
primary: the replicas first, highest ordinal first; the primary last, either
restarted in place or after a switchover to an already updated replica.
"""

from __future__ import annotations

from dataclasses import dataclass

from vectorizer_operator.reconcile.actions import DeletePod
from vectorizer_operator.reconcile.observe import Instance, Observation
from vectorizer_operator.reconcile.replication import caught_up


@dataclass(frozen=True)
class RolloutPlan:
    outdated: tuple[str, ...] = ()
    delete: DeletePod | None = None
    switchover_to: str | None = None
    waiting: str | None = None

    @property
    def in_progress(self) -> bool:
        return bool(self.outdated)


def is_outdated(inst: Instance, update_revision: str) -> bool:
    pod = inst.pod
    return pod is not None and pod.revision is not None and pod.revision != update_revision


def plan_broken(obs: Observation, primary: str | None) -> DeletePod | None:
    """An outdated pod that does not serve anyway is replaced at once, whatever the rest.

    Without this a broken revision (a bad image, a crashing setting) could never be
    fixed by a new spec: the rollout waits for every instance to be ready first.
    Replicas go first; one pod per pass.
    """
    sts = obs.statefulset
    if sts is None or not sts.update_revision or not sts.settled:
        return None
    broken = [
        i
        for i in obs.members
        if is_outdated(i, sts.update_revision)
        and i.pod is not None
        and not i.pod.terminating
        and not i.serving
    ]
    if not broken:
        return None
    victim = max(broken, key=lambda i: (i.name != primary, i.ordinal))
    return DeletePod(victim.name, "replacing a pod that does not serve with the current revision")


def plan_rollout(obs: Observation, primary: str, *, method: str, max_lag: int) -> RolloutPlan:
    """``primary`` is the serving primary; rollouts only happen while there is one."""
    sts = obs.statefulset
    if sts is None or not sts.update_revision:
        return RolloutPlan()
    if not sts.settled:
        return RolloutPlan(waiting="the StatefulSet controller has not seen the new template yet")
    members = obs.members
    outdated = tuple(i.name for i in members if is_outdated(i, sts.update_revision))
    if not outdated:
        return RolloutPlan()
    leader = obs.instance(primary)
    assert leader is not None
    for inst in members:
        if not inst.serving:
            return RolloutPlan(outdated, waiting=f"{inst.name} is not ready")
        if inst.name != primary and not caught_up(inst, leader, obs, max_lag):
            return RolloutPlan(outdated, waiting=f"{inst.name} is not caught up with {primary}")
    replicas = [i for i in members if i.name in outdated and i.name != primary]
    if replicas:
        victim = max(replicas, key=lambda i: i.ordinal)
        return RolloutPlan(outdated, delete=DeletePod(victim.name, "rolling out a new revision"))
    # Only the primary is left.
    updated = [i for i in members if i.name != primary and i.name not in outdated]
    if method == "switchover" and updated:
        best = max(updated, key=lambda i: (i.node.sequence if i.node else 0, -i.ordinal))
        return RolloutPlan(
            outdated, switchover_to=best.name, waiting=f"switching over to {best.name}"
        )
    return RolloutPlan(
        outdated, delete=DeletePod(primary, "restarting the primary on the new revision")
    )
