"""How many pods the StatefulSet should have, and when the primary must move first.

Scaling up sets the StatefulSet's replicas at once; new pods start as replicas, are
pointed at the primary and full-sync from it. Scaling down removes the highest
ordinals (the StatefulSet's own order), which is only safe when the primary is not
among them: otherwise a switchover to a remaining, caught-up replica comes first.
"""

from __future__ import annotations

from dataclasses import dataclass

from vectorizer_operator import naming
from vectorizer_operator.reconcile.observe import Observation
from vectorizer_operator.reconcile.replication import caught_up


@dataclass(frozen=True)
class ScalePlan:
    replicas: int
    switchover_to: str | None = None
    waiting: str | None = None

    def scaling(self, obs: Observation) -> bool:
        return self.replicas != obs.desired or bool(self.waiting)


def plan_scaling(obs: Observation, primary: str | None, *, max_lag: int) -> ScalePlan:
    """``primary``: the serving primary, or None when there is none right now."""
    desired = obs.desired
    sts = obs.statefulset
    if sts is None or desired >= sts.replicas:
        return ScalePlan(desired)
    # Scaling down: the primary (serving, or only recorded) must survive it.
    status = obs.cluster.status
    keep = primary or status.current_primary or status.target_primary
    keep_ordinal = naming.ordinal(obs.cluster.name, keep) if keep else None
    if keep_ordinal is None or keep_ordinal < desired:
        return ScalePlan(desired)
    if primary is None:
        return ScalePlan(
            sts.replicas, waiting=f"{keep} must stop being primary before scaling down"
        )
    leader = obs.instance(primary)
    assert leader is not None
    candidates = [
        i
        for i in obs.instances
        if i.ordinal < desired and caught_up(i, leader, obs, max_lag) and i.node is not None
    ]
    if not candidates:
        return ScalePlan(
            sts.replicas, waiting=f"no caught-up replica below ordinal {desired} to take over"
        )
    best = max(candidates, key=lambda i: (i.node.sequence if i.node else 0, -i.ordinal))
    return ScalePlan(
        sts.replicas, switchover_to=best.name, waiting=f"moving the primary to {best.name}"
    )
