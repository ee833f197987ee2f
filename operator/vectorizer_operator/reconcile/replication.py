"""Who is primary: bootstrap, adoption, re-pointing replicas, and the switchover handshake.

The data planes are the source of truth; the status only records decisions:

- ``status.targetPrimary`` is written *before* a promotion is attempted, so a restarted
  operator resumes the same decision instead of making a second one;
- ``status.currentPrimary`` and ``status.epoch`` record what the nodes report.

Bootstrap: every pod starts as a replica with no primary. On a fresh cluster the first
instance (ordinal 0) is promoted at epoch 1 once it answers; the others follow it. A
cluster whose nodes already hold data waits for all of them and promotes the most
advanced (latest epoch in its history, then highest sequence).

Switchover from P to X (scale-down past the primary, or a rolling update with
``primaryUpdateMethod: switchover``): wait until X is caught up, fence P (writes stop),
wait until X holds every record P has, promote X at a new epoch, point P and the
others at X. If X falls short within the timeout, P is promoted again (at a new epoch)
and the switchover is abandoned for a while: a paused primary is worse than a late one.

Failover (replacing a primary that is gone) is not decided here: the cluster is
reported Degraded and writes wait for the primary to return.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from vectorizer_operator import naming
from vectorizer_operator.dataplane_client import NodeStatus
from vectorizer_operator.reconcile.actions import (
    Action,
    Fence,
    Follow,
    Promote,
    RecordTargetPrimary,
)
from vectorizer_operator.reconcile.observe import Instance, Observation, same_url


class State(StrEnum):
    HEALTHY = "healthy"  # a primary serves writes
    SETTING_UP = "setting_up"  # no primary has ever been chosen
    SWITCHOVER = "switchover"  # moving the primary on purpose
    DEGRADED = "degraded"  # the recorded primary does not serve writes


@dataclass(frozen=True)
class Topology:
    state: State
    reason: str
    current_primary: str | None
    target_primary: str | None
    epoch: int
    actions: tuple[Action, ...] = field(default=())
    aborted_switchover: bool = False


def timeline(node: NodeStatus) -> int:
    """The epoch that wrote this node's latest records."""
    return node.history[-1][0] if node.history else 0


def next_epoch(obs: Observation) -> int:
    """Higher than any epoch recorded or reported: what a promotion must use."""
    seen = [obs.cluster.status.epoch or 0]
    seen += [i.node.epoch for i in obs.instances if i.node]
    seen += [timeline(i.node) for i in obs.instances if i.node]
    return max(seen) + 1


def caught_up(inst: Instance, leader: Instance, obs: Observation, max_lag: int) -> bool:
    """``inst`` is a Ready replica streaming from ``leader`` within ``max_lag`` operations."""
    node = inst.node
    if node is None or inst.pod is None or not inst.pod.ready:
        return False
    if node.role != naming.ROLE_REPLICA or not same_url(node.primary, obs.url(leader.name)):
        return False
    if node.connected is False:
        return False
    lag = node.lag_operations
    if lag is None:
        if leader.node is None:
            return False
        lag = max(leader.node.sequence - node.sequence, 0)
    return lag <= max_lag


def plan_replication(obs: Observation, *, max_lag: int, switchover_timeout_s: float) -> Topology:
    primaries = [i for i in obs.instances if i.node and i.node.role == naming.ROLE_PRIMARY]
    if primaries:
        return _with_primary(obs, primaries, max_lag, switchover_timeout_s)
    return _without_primary(obs, switchover_timeout_s)


# ---- a node reports primary ---------------------------------------------------------------


def _choose_leader(primaries: list[Instance], current: str | None) -> Instance:
    """The primary of the newest epoch wins; ties (which should not happen) go to the
    recorded primary, then to the longest log."""

    def key(i: Instance) -> tuple[int, bool, int, int]:
        assert i.node is not None
        return (i.node.epoch, i.name == current, i.node.sequence, -i.ordinal)

    return max(primaries, key=key)


def _repoint(obs: Observation, leader: Instance, primaries: list[Instance]) -> list[Action]:
    """Fence every other primary; point every other answering node at the leader."""
    assert leader.node is not None
    epoch = leader.node.epoch
    url = obs.url(leader.name)
    actions: list[Action] = []
    for inst in obs.instances:
        if inst is leader or inst.node is None:
            continue
        if inst in primaries:
            actions.append(Fence(inst.name, epoch))  # writes stop now; it follows next time
        elif inst.node.role != naming.ROLE_REPLICA or not same_url(inst.node.primary, url):
            actions.append(Follow(inst.name, leader.name, url, epoch))
    return actions


def _with_primary(
    obs: Observation, primaries: list[Instance], max_lag: int, timeout_s: float
) -> Topology:
    status = obs.cluster.status
    leader = _choose_leader(primaries, status.current_primary)
    assert leader.node is not None
    epoch = leader.node.epoch
    newer = [i.name for i in obs.instances if i.node and i.node.epoch > epoch]
    if newer:
        # Some node saw a newer epoch than the primary's: that primary is stale. Pointing
        # anyone at it would be refused; a failover decides what happens next.
        reason = f"{leader.name} is primary at epoch {epoch} but {', '.join(newer)} saw a newer one"
        return Topology(State.DEGRADED, reason, leader.name, leader.name, epoch)
    actions = _repoint(obs, leader, primaries)
    target = status.target_primary
    switching = target not in (None, leader.name) and status.current_primary == leader.name
    if not switching:
        state = State.HEALTHY
        reason = "" if not actions else "pointing instances at the primary"
        return Topology(state, reason, leader.name, leader.name, epoch, tuple(actions))
    assert target is not None
    x = obs.instance(target)
    if x is None or x.pod is None or x.ordinal >= obs.desired:
        return _abandon(leader.name, epoch, actions, f"{target} is gone")
    if not caught_up(x, leader, obs, max_lag):
        if obs.switchover_elapsed_s > timeout_s:
            return _abandon(leader.name, epoch, actions, f"{target} did not catch up in time")
        reason = f"waiting for {target} to catch up with {leader.name}"
        return Topology(State.SWITCHOVER, reason, leader.name, target, epoch, tuple(actions))
    actions.append(Fence(leader.name, epoch))
    reason = f"fencing {leader.name} to hand over to {target}"
    return Topology(State.SWITCHOVER, reason, leader.name, target, epoch, tuple(actions))


def _abandon(primary: str, epoch: int, actions: list[Action], why: str) -> Topology:
    """Give up a switchover before anything was fenced: the primary simply stays."""
    actions = [RecordTargetPrimary(primary), *actions]
    reason = f"switchover abandoned: {why}"
    return Topology(State.HEALTHY, reason, primary, primary, epoch, tuple(actions), True)


# ---- no node reports primary ------------------------------------------------------------------


def _without_primary(obs: Observation, timeout_s: float) -> Topology:
    status = obs.cluster.status
    current, target = status.current_primary, status.target_primary
    epoch = status.epoch or 0
    promote_at = next_epoch(obs)
    if current is None:
        return _bootstrap(obs, promote_at)
    p = obs.instance(current)
    if target not in (None, current):
        assert target is not None
        return _finish_switchover(obs, current, target, promote_at, timeout_s)
    if p is not None and p.node is not None and p.node.role == naming.ROLE_FENCED:
        # Left fenced (e.g. by an abandoned switchover): it has the newest data, resume.
        reason = f"{current} is fenced; promoting it again at epoch {promote_at}"
        return Topology(
            State.DEGRADED, reason, current, current, epoch, (Promote(current, promote_at),)
        )
    if p is None or p.pod is None:
        reason = f"primary {current} has no pod"
    elif p.node is None:
        reason = f"primary {current} does not answer" + (f": {p.error}" if p.error else "")
    else:
        reason = f"primary {current} reports role {p.node.role}"
    return Topology(State.DEGRADED, reason, current, current, epoch)


def _finish_switchover(
    obs: Observation, current: str, target: str, promote_at: int, timeout_s: float
) -> Topology:
    epoch = obs.cluster.status.epoch or 0
    p, x = obs.instance(current), obs.instance(target)
    if p is None or p.node is None:
        reason = f"primary {current} stopped answering during the switchover to {target}"
        return Topology(State.DEGRADED, reason, current, target, epoch)
    if p.node.role != naming.ROLE_FENCED:
        reason = f"{current} reports role {p.node.role} during the switchover to {target}"
        return Topology(State.DEGRADED, reason, current, target, epoch)
    usable = x is not None and x.node is not None and x.node.role == naming.ROLE_REPLICA
    if usable and x is not None and x.node is not None and x.node.sequence >= p.node.sequence:
        reason = f"promoting {target} at epoch {promote_at}"
        return Topology(
            State.SWITCHOVER, reason, current, target, epoch, (Promote(target, promote_at),)
        )
    if not usable or obs.switchover_elapsed_s > timeout_s:
        why = f"{target} cannot take over" if not usable else f"{target} did not catch up in time"
        actions = (RecordTargetPrimary(current), Promote(current, promote_at))
        reason = f"switchover abandoned: {why}; {current} resumes at epoch {promote_at}"
        return Topology(State.SWITCHOVER, reason, current, current, epoch, actions, True)
    assert x is not None and x.node is not None
    reason = f"waiting for {target} to reach sequence {p.node.sequence} (at {x.node.sequence})"
    return Topology(State.SWITCHOVER, reason, current, target, epoch)


def bootstrap_candidate(obs: Observation) -> tuple[str | None, str]:
    """(instance to promote, or None and why not yet).

    Only a cluster whose every node is known to be empty starts from its first instance.
    A node that does not answer but has a bound claim may hold data (claims kept from a
    deleted cluster: a node with data answers only once it has recovered it, long after
    an empty one) and is waited for: the first instance, fresh on a new claim, was
    promoted before them, and they full-synced from it, every acknowledged write lost."""
    wanted = [i for i in obs.instances if i.ordinal < obs.desired]
    answered = [i for i in wanted if i.node is not None]
    silent = [i for i in wanted if i.node is None]
    missing = [i.name for i in silent]
    holding = any(i.node is not None and (i.node.epoch or i.node.history) for i in answered)
    bound = {c.name for c in obs.claims if c.bound}
    volumes = [i.name for i in silent if naming.pvc(obs.cluster.name, i.ordinal) in bound]
    if holding and missing:
        return None, f"nodes hold data; waiting for {', '.join(missing)} to answer"
    if volumes:
        return None, f"waiting for {', '.join(volumes)} to answer (a volume may hold data)"
    if not holding:
        first = obs.instance(naming.pod(obs.cluster.name, 0))
        if first is not None and first.node is not None:
            return first.name, ""
        return None, f"waiting for {naming.pod(obs.cluster.name, 0)} to answer"

    def key(i: Instance) -> tuple[int, int, int]:
        assert i.node is not None
        return (timeline(i.node), i.node.sequence, -i.ordinal)

    return max(answered, key=key).name, ""


def _bootstrap(obs: Observation, promote_at: int) -> Topology:
    target = obs.cluster.status.target_primary
    if target is not None:
        x = obs.instance(target)
        if x is not None and x.node is not None:
            reason = f"promoting {target} at epoch {promote_at}"
            return Topology(
                State.SETTING_UP, reason, None, target, 0, (Promote(target, promote_at),)
            )
        return Topology(State.SETTING_UP, f"waiting for {target} to answer", None, target, 0)
    candidate, why = bootstrap_candidate(obs)
    if candidate is None:
        return Topology(State.SETTING_UP, why, None, None, 0)
    actions = (RecordTargetPrimary(candidate), Promote(candidate, promote_at))
    reason = f"promoting {candidate} at epoch {promote_at}"
    return Topology(State.SETTING_UP, reason, None, candidate, 0, actions)
