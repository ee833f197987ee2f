"""Rolling out a new pod template (image, resources, config) under ``OnDelete``.

A pod runs the new revision once it is deleted and recreated. One pod at a time, and
only while every other instance is Ready and every replica is caught up with the
primary: the replicas first, highest ordinal first; the primary last, either
restarted in place or after a switchover to an already updated replica. An outdated
replica that cannot connect to the primary (an old primary after a switchover that
turned TLS or auth on) is replaced next: it can catch up only on the new revision.
Likewise a replica already on the new revision that cannot follow a primary still on
the old one because their TLS or auth differ (security turned off, or moved to another
CA) does not hold the rollout: it follows once the primary is updated, and with
``switchover`` the primary then restarts in place (no updated replica can take over).
"""

from __future__ import annotations

from dataclasses import dataclass

from vectorizer_operator import naming
from vectorizer_operator.reconcile.actions import DeletePod
from vectorizer_operator.reconcile.observe import Instance, Observation, same_url
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


def ready_per_kubernetes(inst: Instance) -> bool:
    """The pod runs and its readiness probe passes, whether or not the operator reaches it."""
    return inst.pod is not None and inst.pod.running and inst.pod.ready


def cannot_follow(inst: Instance, leader: Instance, obs: Observation) -> bool:
    """``inst`` is told to follow ``leader`` but is not connected to it.

    An outdated old primary after a switchover that turned TLS or auth on: it speaks
    plain HTTP or has no credential, so it cannot reach the new primary until it is
    replaced by the new revision; waiting for it to catch up first would wait forever.
    """
    node = inst.node
    return (
        node is not None
        and node.role == naming.ROLE_REPLICA
        and same_url(node.primary, obs.url(leader.name))
        and node.connected is False
    )


def security_differs(inst: Instance, leader: Instance) -> bool:
    """The two pods run revisions with different TLS or auth (or another certificate).

    A replica on the new revision cannot follow a primary still on the old one when
    security was turned off or moved to another CA: it no longer trusts the primary's
    certificate, presents none, or has no replication key.
    """
    a, b = inst.pod, leader.pod
    if a is None or b is None:
        return False
    return (
        a.tls != b.tls
        or a.tls_secret != b.tls_secret
        or (a.admin_key is None) != (b.admin_key is None)
    )


def plan_broken(obs: Observation, primary: str | None) -> DeletePod | None:
    """An outdated pod that does not serve anyway is replaced at once, whatever the rest.

    Without this a broken revision (a bad image, a crashing setting) could never be
    fixed by a new spec: the rollout waits for every instance to be ready first.

    "Does not serve" is Kubernetes' word (the pod is not Ready), never the operator's
    failing to reach it: a Ready pod the operator cannot call (e.g. while TLS or auth
    changes) waits for the ordinary rollout. One pod per pass and none while another is
    being replaced; replicas first. A primary that is not Ready is replaced too, even
    while replicas are outdated: it serves nothing, and the ordinary rollout waits for
    every instance to be Ready (a crash-looping primary whose fix is the new spec would
    block it for good).
    """
    sts = obs.statefulset
    if sts is None or not sts.update_revision or not sts.settled:
        return None
    members = obs.members
    if any(i.pod is None or i.pod.terminating for i in members):
        return None  # a replacement is under way
    outdated = [i for i in members if is_outdated(i, sts.update_revision)]
    broken = [i for i in outdated if not ready_per_kubernetes(i)]
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
    stuck: list[Instance] = []  # outdated, and can catch up only once replaced
    for inst in members:
        if not inst.serving:
            return RolloutPlan(outdated, waiting=f"{inst.name} is not ready")
        if inst.name != primary and not caught_up(inst, leader, obs, max_lag):
            if cannot_follow(inst, leader, obs) and security_differs(inst, leader):
                if inst.name in outdated:
                    stuck.append(inst)  # replaced next: it catches up on the new revision
                    continue
                if primary in outdated:
                    continue  # it follows once the primary runs the new revision too
            return RolloutPlan(outdated, waiting=f"{inst.name} is not caught up with {primary}")
    if stuck:
        victim = max(stuck, key=lambda i: i.ordinal)
        reason = f"rolling out a new revision ({victim.name} cannot follow {primary} on its own)"
        return RolloutPlan(outdated, delete=DeletePod(victim.name, reason))
    replicas = [i for i in members if i.name in outdated and i.name != primary]
    if replicas:
        victim = max(replicas, key=lambda i: i.ordinal)
        return RolloutPlan(outdated, delete=DeletePod(victim.name, "rolling out a new revision"))
    # Only the primary is left.
    updated = [
        i
        for i in members
        if i.name != primary and i.name not in outdated and caught_up(i, leader, obs, max_lag)
    ]
    if method == "switchover" and updated:
        best = max(updated, key=lambda i: (i.node.sequence if i.node else 0, -i.ordinal))
        return RolloutPlan(
            outdated, switchover_to=best.name, waiting=f"switching over to {best.name}"
        )
    return RolloutPlan(
        outdated, delete=DeletePod(primary, "restarting the primary on the new revision")
    )
