"""Decision table: who is primary, who follows whom, and the switchover handshake."""

from __future__ import annotations

from tests.operator.decisions import healthy_status, inst, node, observe, primary, replica, url
from vectorizer_operator.reconcile.actions import Fence, Follow, Promote, RecordTargetPrimary
from vectorizer_operator.reconcile.observe import ClaimView, Instance, Observation
from vectorizer_operator.reconcile.replication import (
    State,
    Topology,
    bootstrap_candidate,
    caught_up,
    next_epoch,
    plan_replication,
)


def plan(obs: Observation, max_lag: int = 0, timeout: float = 30.0) -> Topology:
    return plan_replication(obs, max_lag=max_lag, switchover_timeout_s=timeout)


# ---- bootstrap ------------------------------------------------------------------------


def fresh(ordinal: int) -> Instance:
    return inst(ordinal, node("replica", epoch=0, seq=0, history=()))


def test_fresh_cluster_promotes_the_first_instance_at_epoch_1() -> None:
    t = plan(observe(fresh(0), fresh(1), fresh(2)))
    assert t.state is State.SETTING_UP
    assert t.actions == (RecordTargetPrimary("vz-0"), Promote("vz-0", 1))
    assert t.target_primary == "vz-0" and t.current_primary is None


def test_bootstrap_waits_for_the_first_instance() -> None:
    t = plan(observe(inst(0, None), fresh(1), fresh(2)))
    assert t.state is State.SETTING_UP and t.actions == ()
    assert "vz-0" in t.reason
    t = plan(observe(inst(0, None, pod=False), fresh(1)))
    assert t.actions == ()


def test_bootstrap_resumes_a_recorded_decision() -> None:
    """Operator restarted after recording targetPrimary but before the promotion."""
    t = plan(observe(fresh(0), fresh(1), status={"targetPrimary": "vz-1"}))
    assert t.actions == (Promote("vz-1", 1),)
    t = plan(observe(fresh(0), inst(1, None), status={"targetPrimary": "vz-1"}))
    assert t.actions == () and "vz-1" in t.reason


def test_nodes_with_data_wait_for_everyone_then_pick_the_most_advanced() -> None:
    a = inst(0, node("replica", epoch=2, seq=50, history=((1, 1), (2, 40))))
    b = inst(1, node("replica", epoch=2, seq=70, history=((1, 1), (2, 40))))
    c = inst(2, None)
    assert bootstrap_candidate(observe(a, b, c))[0] is None
    c = inst(2, node("replica", epoch=1, seq=90, history=((1, 1),)))
    assert bootstrap_candidate(observe(a, b, c))[0] == "vz-1"  # newest timeline beats length
    t = plan(observe(a, b, c))
    assert t.actions == (RecordTargetPrimary("vz-1"), Promote("vz-1", 3))


def test_a_node_not_answering_on_a_bound_claim_is_waited_for() -> None:
    """Claims kept from a deleted cluster, the first one lost: the first instance starts
    empty on a new claim and answers within a second; the others answer only once they
    have recovered their data. It was promoted meanwhile, and they full-synced from it:
    every acknowledged write gone (86,800 of 86,800 points on a real cluster)."""
    kept = (
        ClaimView("data-vz-0", "1Gi"),
        ClaimView("data-vz-1", "1Gi"),
        ClaimView("data-vz-2", "1Gi"),
    )
    recovering = observe(fresh(0), inst(1, None), inst(2, None), claims=kept)
    candidate, why = bootstrap_candidate(recovering)
    assert candidate is None and "vz-1, vz-2" in why and "may hold data" in why
    assert plan(recovering).actions == ()
    # They answer with their data: the most advanced is promoted, past their epoch.
    held = node("replica", epoch=1, seq=900, history=((1, 1),))
    back = observe(fresh(0), inst(1, held), inst(2, held), claims=kept)
    assert plan(back).actions == (RecordTargetPrimary("vz-1"), Promote("vz-1", 2))


def test_a_node_without_a_bound_claim_holds_nothing_and_is_not_waited_for() -> None:
    """A new cluster whose last pod cannot be scheduled yet (its claim waits for it: a
    class that binds at the first consumer) still starts from its first instance."""
    pending = (ClaimView("data-vz-0", "1Gi"), ClaimView("data-vz-2", "1Gi", bound=False))
    t = plan(observe(fresh(0), fresh(1), inst(2, None, pod=False), claims=pending))
    assert t.actions == (RecordTargetPrimary("vz-0"), Promote("vz-0", 1))


def test_next_epoch_exceeds_everything_seen() -> None:
    obs = observe(replica(0, epoch=4), inst(1, node("fenced", epoch=6)), status={"epoch": 5})
    assert next_epoch(obs) == 7


# ---- a primary exists ------------------------------------------------------------------


def test_adopts_a_reported_primary_after_the_status_was_lost() -> None:
    t = plan(observe(primary(1, epoch=1), replica(0, follows=1), replica(2, follows=1)))
    assert t.state is State.HEALTHY
    assert (t.current_primary, t.target_primary, t.epoch) == ("vz-1", "vz-1", 1)
    assert t.actions == ()


def test_points_every_other_node_at_the_primary() -> None:
    unpointed = inst(1, node("replica", epoch=0, seq=0))
    elsewhere = replica(2, follows=1)
    fenced = inst(3, node("fenced", epoch=1))
    t = plan(observe(primary(0), unpointed, elsewhere, fenced, status=healthy_status()))
    assert t.actions == (
        Follow("vz-1", "vz-0", url(0), 1),
        Follow("vz-2", "vz-0", url(0), 1),
        Follow("vz-3", "vz-0", url(0), 1),
    )
    assert t.state is State.HEALTHY


def test_two_primaries_the_newer_epoch_wins_and_the_other_is_fenced() -> None:
    t = plan(
        observe(
            primary(0, epoch=1),
            primary(1, epoch=2),
            replica(2, follows=1, epoch=2),
            status=healthy_status(0, 1),
        )
    )
    assert t.current_primary == "vz-1" and t.epoch == 2
    assert Fence("vz-0", 2) in t.actions
    assert not any(isinstance(a, Follow) and a.instance == "vz-0" for a in t.actions)


def test_same_epoch_tie_goes_to_the_recorded_primary() -> None:
    t = plan(observe(primary(0, epoch=3), primary(1, epoch=3), status=healthy_status(1, 3)))
    assert t.current_primary == "vz-1"
    assert t.actions == (Fence("vz-0", 3),)


def test_a_primary_older_than_what_a_node_has_seen_is_not_trusted() -> None:
    t = plan(
        observe(primary(0, epoch=1), inst(1, node("fenced", epoch=2)), status=healthy_status())
    )
    assert t.state is State.DEGRADED and t.actions == ()


# ---- no primary answers ------------------------------------------------------------------


def test_unreachable_primary_is_degraded_and_nothing_is_repointed() -> None:
    t = plan(observe(inst(0, None), replica(1), replica(2), status=healthy_status()))
    assert t.state is State.DEGRADED
    assert t.actions == ()
    assert "vz-0" in t.reason
    t = plan(observe(inst(0, None, pod=False), replica(1), status=healthy_status()))
    assert "no pod" in t.reason


def test_a_fenced_recorded_primary_is_promoted_again() -> None:
    t = plan(observe(inst(0, node("fenced", epoch=1)), replica(1), status=healthy_status()))
    assert t.actions == (Promote("vz-0", 2),)


def test_recorded_primary_reporting_replica_waits_for_failover() -> None:
    t = plan(observe(inst(0, node("replica", epoch=1, seq=0)), replica(1), status=healthy_status()))
    assert t.state is State.DEGRADED and t.actions == ()


# ---- switchover --------------------------------------------------------------------------


def switching(**extra: object) -> dict[str, object]:
    return healthy_status(0, 1, targetPrimary="vz-1", **extra)


def test_switchover_fences_once_the_target_is_caught_up() -> None:
    t = plan(observe(primary(0), replica(1), replica(2), status=switching()))
    assert t.state is State.SWITCHOVER
    assert t.actions == (Fence("vz-0", 1),)


def test_switchover_waits_for_a_lagging_target() -> None:
    t = plan(observe(primary(0, seq=20), replica(1, lag=5), status=switching()))
    assert t.state is State.SWITCHOVER and t.actions == ()
    t = plan(observe(primary(0, seq=20), replica(1, lag=5), status=switching()), max_lag=10)
    assert t.actions == (Fence("vz-0", 1),)


def test_switchover_is_abandoned_when_the_target_never_catches_up() -> None:
    t = plan(observe(primary(0), replica(1, lag=5), status=switching(), elapsed=31))
    assert t.state is State.HEALTHY and t.aborted_switchover
    assert t.actions == (RecordTargetPrimary("vz-0"),)
    assert t.target_primary == "vz-0"


def test_switchover_to_a_vanished_target_is_abandoned() -> None:
    t = plan(observe(primary(0), replica(1), status=healthy_status(targetPrimary="vz-5")))
    assert t.aborted_switchover and t.actions == (RecordTargetPrimary("vz-0"),)


def test_switchover_promotes_the_target_once_it_has_every_record() -> None:
    old = inst(0, node("fenced", epoch=1, seq=30))
    t = plan(observe(old, replica(1, seq=30), replica(2, seq=29), status=switching()))
    assert t.actions == (Promote("vz-1", 2),)
    t = plan(observe(old, replica(1, seq=29), status=switching()))
    assert t.actions == () and t.state is State.SWITCHOVER


def test_switchover_falls_back_to_the_old_primary_after_the_timeout() -> None:
    old = inst(0, node("fenced", epoch=1, seq=30))
    t = plan(observe(old, replica(1, seq=29), status=switching(), elapsed=31))
    assert t.actions == (RecordTargetPrimary("vz-0"), Promote("vz-0", 2))
    assert t.aborted_switchover


def test_switchover_completes_when_the_target_reports_primary() -> None:
    old = inst(0, node("fenced", epoch=1, seq=30))
    new = primary(1, epoch=2, seq=30)
    t = plan(observe(old, new, replica(2, follows=0, seq=30), status=switching()))
    assert (t.current_primary, t.target_primary, t.epoch) == ("vz-1", "vz-1", 2)
    assert t.actions == (Follow("vz-0", "vz-1", url(1), 2), Follow("vz-2", "vz-1", url(1), 2))


def test_switchover_with_the_old_primary_unreachable_is_degraded() -> None:
    t = plan(observe(inst(0, None), replica(1), status=switching()))
    assert t.state is State.DEGRADED and t.actions == ()


# ---- caught up ---------------------------------------------------------------------------


def test_caught_up_needs_ready_following_and_small_lag() -> None:
    leader = primary(0, seq=10)
    obs = observe(leader, replica(1))
    assert caught_up(replica(1), leader, obs, 0)
    assert not caught_up(replica(1, lag=3), leader, obs, 2)
    assert caught_up(replica(1, lag=3), leader, obs, 3)
    assert not caught_up(replica(1, follows=2), leader, obs, 0)
    assert not caught_up(replica(1, ready=False), leader, obs, 0)
    assert not caught_up(inst(1, node("fenced")), leader, obs, 0)
    assert not caught_up(inst(1, None), leader, obs, 0)
    stale = inst(1, node("replica", seq=4, follows=0, lag=None))
    assert not caught_up(stale, leader, obs, 5)
    assert caught_up(stale, leader, obs, 6)
