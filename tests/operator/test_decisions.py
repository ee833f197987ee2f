"""Decision tables: labels, scaling, rolling updates, claims, and status/phase."""

from __future__ import annotations

from dataclasses import replace

from tests.operator.decisions import healthy_status, inst, node, observe, primary, replica
from vectorizer_operator import naming
from vectorizer_operator.reconcile import status as st
from vectorizer_operator.reconcile.actions import (
    DeletePod,
    RecordTargetPrimary,
    ResizeClaim,
    SetPodLabels,
)
from vectorizer_operator.reconcile.labels import desired_role, plan_labels
from vectorizer_operator.reconcile.observe import ClaimView, Instance, Observation
from vectorizer_operator.reconcile.plan import decide
from vectorizer_operator.reconcile.replication import State, Topology, plan_replication
from vectorizer_operator.reconcile.rolling import RolloutPlan, plan_broken, plan_rollout
from vectorizer_operator.reconcile.scaling import ScalePlan, plan_scaling
from vectorizer_operator.reconcile.storage import plan_resizes

ROLE, INSTANCE = naming.LABEL_ROLE, naming.LABEL_POD_INSTANCE

# ---- labels ---------------------------------------------------------------------------------


def test_labels_follow_what_the_nodes_report() -> None:
    obs = observe(primary(1), replica(0, follows=1), replica(2, follows=1))
    actions = plan_labels(obs, "vz-1")
    assert actions == [
        SetPodLabels("vz-0", {INSTANCE: "vz-0", ROLE: "replica"}),
        SetPodLabels("vz-1", {INSTANCE: "vz-1", ROLE: "primary"}),
        SetPodLabels("vz-2", {INSTANCE: "vz-2", ROLE: "replica"}),
    ]


def test_a_wrong_role_label_is_corrected_and_right_ones_left_alone() -> None:
    ok = {INSTANCE: "vz-0", ROLE: "primary"}
    wrong = {INSTANCE: "vz-1", ROLE: "primary"}
    obs = observe(inst(0, node("primary"), labels=ok), replica(1, labels=wrong))
    assert plan_labels(obs, "vz-0") == [SetPodLabels("vz-1", {ROLE: "replica"})]


def test_a_pod_that_lost_its_selector_labels_gets_them_back() -> None:
    p = primary(0)
    assert p.pod is not None
    labels = {k: v for k, v in p.pod.labels.items() if k != naming.LABEL_CLUSTER}
    stripped = replace(p, pod=replace(p.pod, labels={**labels, INSTANCE: "vz-0", ROLE: "primary"}))
    obs = observe(stripped)
    assert plan_labels(obs, "vz-0") == [SetPodLabels("vz-0", {naming.LABEL_CLUSTER: "vz"})]


def test_only_the_chosen_primary_may_carry_the_primary_label() -> None:
    stale = inst(1, node("primary"))
    assert desired_role(stale, "vz-0") == "fenced"
    silent_old_primary = inst(1, None, labels={ROLE: "primary"})
    assert desired_role(silent_old_primary, "vz-0") is None  # removed
    silent_replica = inst(2, None, labels={ROLE: "replica"})
    assert desired_role(silent_replica, "vz-0") == "replica"  # kept
    silent_primary = inst(0, None, labels={ROLE: "primary"})
    assert desired_role(silent_primary, "vz-0") == "primary"


def test_terminating_and_missing_pods_are_not_labelled() -> None:
    obs = observe(primary(0), replica(1, terminating=True), inst(2, None, pod=False))
    assert [a.pod for a in plan_labels(obs, "vz-0")] == ["vz-0"]


# ---- scaling --------------------------------------------------------------------------------


def test_scale_up_is_immediate() -> None:
    obs = observe(primary(0), replica(1), instances=5, replicas=2)
    assert plan_scaling(obs, "vz-0", max_lag=0) == ScalePlan(5)


def test_scale_down_removes_replicas_at_once() -> None:
    obs = observe(primary(0), replica(1), replica(2), instances=1, replicas=3)
    assert plan_scaling(obs, "vz-0", max_lag=0) == ScalePlan(1)


def test_scale_down_moves_the_primary_first() -> None:
    obs = observe(
        replica(0, follows=2),
        replica(1, follows=2, seq=9, lag=1),
        primary(2),
        instances=2,
        replicas=3,
        status=healthy_status(2),
    )
    plan = plan_scaling(obs, "vz-2", max_lag=5)
    assert plan.replicas == 3 and plan.switchover_to == "vz-0"
    assert plan.scaling(obs)


def test_scale_down_waits_without_a_caught_up_replica() -> None:
    obs = observe(
        replica(0, follows=2, lag=50),
        primary(2),
        replica(1, follows=2, ready=False),
        instances=2,
        replicas=3,
        status=healthy_status(2),
    )
    plan = plan_scaling(obs, "vz-2", max_lag=5)
    assert plan.replicas == 3 and plan.switchover_to is None and plan.waiting


def test_scale_down_never_drops_a_recorded_primary_that_is_down() -> None:
    obs = observe(
        replica(0, follows=2), inst(2, None), instances=1, replicas=3, status=healthy_status(2)
    )
    plan = plan_scaling(obs, None, max_lag=0)
    assert plan.replicas == 3 and plan.switchover_to is None


# ---- rolling updates --------------------------------------------------------------------------


def roll(*instances: Instance, method: str = "restart", max_lag: int = 0) -> RolloutPlan:
    obs = observe(*instances, update_revision="rev2", status=healthy_status())
    return plan_rollout(obs, "vz-0", method=method, max_lag=max_lag)


def test_replicas_roll_first_highest_ordinal_first() -> None:
    plan = roll(primary(0), replica(1), replica(2))
    assert plan.outdated == ("vz-0", "vz-1", "vz-2")
    assert plan.delete == DeletePod("vz-2", "rolling out a new revision")


def test_one_at_a_time_each_caught_up_before_the_next() -> None:
    new2 = replica(2, revision="rev2", lag=3)
    plan = roll(primary(0), replica(1), new2)
    assert plan.delete is None and "vz-2" in (plan.waiting or "")
    plan = roll(primary(0), replica(1), replica(2, revision="rev2"))
    assert plan.delete == DeletePod("vz-1", "rolling out a new revision")
    plan = roll(primary(0), replica(1), inst(2, None, pod=False))
    assert plan.delete is None and "vz-2" in (plan.waiting or "")


def test_the_primary_is_last() -> None:
    plan = roll(primary(0), replica(1, revision="rev2"), replica(2, revision="rev2"))
    assert plan.delete == DeletePod("vz-0", "restarting the primary on the new revision")
    plan = roll(
        primary(0),
        replica(1, revision="rev2", seq=8),
        replica(2, revision="rev2"),
        method="switchover",
    )
    assert plan.delete is None and plan.switchover_to == "vz-2"


def test_single_instance_switchover_method_restarts() -> None:
    plan = roll(primary(0), method="switchover")
    assert plan.delete == DeletePod("vz-0", "restarting the primary on the new revision")


def test_a_broken_outdated_pod_is_replaced_at_once() -> None:
    """A spec fixing a crashing revision must reach pods that never get ready."""
    down = {"ready": False}
    obs = observe(
        inst(0, None, **down), inst(1, None, **down), replica(2, follows=0), update_revision="rev2"
    )
    assert plan_broken(obs, None) == DeletePod(
        "vz-1", "replacing a pod that does not serve with the current revision"
    )
    obs = observe(
        inst(0, None, **down),
        replica(1, revision="rev2"),
        update_revision="rev2",
        status=healthy_status(),
    )
    assert plan_broken(obs, "vz-0") == DeletePod(
        "vz-0", "replacing a pod that does not serve with the current revision"
    )
    fine = observe(primary(0), replica(1), update_revision="rev2", status=healthy_status())
    assert plan_broken(fine, "vz-0") is None  # serving pods wait for the orderly rollout
    current = observe(inst(0, None, revision="rev2"), update_revision="rev2")
    assert plan_broken(current, None) is None  # already the new revision: nothing to gain


def test_nothing_to_roll() -> None:
    obs = observe(primary(0), replica(1), status=healthy_status())
    assert not plan_rollout(obs, "vz-0", method="restart", max_lag=0).in_progress
    unsettled = observe(primary(0), update_revision="rev2", settled=False, status=healthy_status())
    assert plan_rollout(unsettled, "vz-0", method="restart", max_lag=0).delete is None


# ---- claims ---------------------------------------------------------------------------------


def test_claims_grow_never_shrink() -> None:
    claims = (
        ClaimView("data-vz-0", "1Gi"),
        ClaimView("data-vz-1", "4Gi"),
        ClaimView("other", "1Gi"),
        ClaimView("data-vz-2", "1Gi", bound=False),
    )
    obs = observe(primary(0), replica(1), replica(2), claims=claims, storage={"size": "2Gi"})
    assert plan_resizes(obs) == [ResizeClaim("data-vz-0", "2Gi")]


# ---- status -------------------------------------------------------------------------------------


def phase_of(obs: Observation, topo: Topology | None = None) -> st.Phase:
    topo = topo or plan_replication(obs, max_lag=0, switchover_timeout_s=30)
    return st.choose_phase(obs, topo, ScalePlan(obs.desired), None)


def test_healthy() -> None:
    obs = observe(primary(0), replica(1), replica(2), status=healthy_status())
    assert phase_of(obs) == st.Phase(st.HEALTHY, None)


def test_degraded_when_a_replica_is_not_ready() -> None:
    obs = observe(primary(0), replica(1, ready=False), status=healthy_status())
    phase = phase_of(obs)
    assert phase.name == st.DEGRADED and "vz-1" in (phase.reason or "")


def test_degraded_when_the_primary_is_gone() -> None:
    obs = observe(inst(0, None), replica(1), status=healthy_status())
    assert phase_of(obs).name == st.DEGRADED


def test_setting_up_until_the_replicas_follow() -> None:
    obs = observe(
        primary(0),
        inst(1, node("replica", epoch=0, seq=0)),
        status={**healthy_status(), "phase": "Setting up"},
    )
    assert phase_of(obs).name == st.SETTING_UP


def test_scaling_and_upgrading() -> None:
    obs = observe(primary(0), replica(1), instances=3, replicas=2, status=healthy_status())
    assert phase_of(obs).name == st.SCALING
    waiting = observe(
        primary(0),
        replica(1),
        replica(2, ready=False),
        status={**healthy_status(), "phase": "Scaling"},
    )
    assert phase_of(waiting).name == st.SCALING
    rolling = observe(primary(0), replica(1), update_revision="rev2", status=healthy_status())
    assert phase_of(rolling).name == st.UPGRADING


def test_a_primary_restarting_for_an_upgrade_is_upgrading_not_degraded() -> None:
    upgrading = {**healthy_status(), "phase": "Upgrading"}
    obs = observe(
        inst(0, None, revision="rev2"),
        replica(1, revision="rev2"),
        update_revision="rev2",
        status=upgrading,
    )
    assert phase_of(obs).name == st.UPGRADING
    gone = observe(
        inst(0, None, pod=False),
        replica(1, revision="rev2"),
        update_revision="rev2",
        status=upgrading,
    )
    assert phase_of(gone).name == st.DEGRADED
    was_healthy = observe(inst(0, None), replica(1), status=healthy_status())
    assert phase_of(was_healthy).name == st.DEGRADED


def test_a_primary_not_ready_yet_is_waited_for_as_the_primary() -> None:
    """Back from its restart, answering as primary but not Ready yet: it follows nobody."""
    upgrading = {**healthy_status(), "phase": "Upgrading"}
    restarted = inst(0, node("primary"), ready=False)
    obs = observe(restarted, replica(1), status=upgrading)
    assert phase_of(obs) == st.Phase(st.UPGRADING, "waiting for the primary vz-0 to be ready")
    both = observe(restarted, replica(1, ready=False), replica(2), status=upgrading)
    assert phase_of(both).reason == (
        "waiting for the primary vz-0 to be ready and for vz-1 to be ready and follow the primary"
    )
    replicas = observe(primary(0), replica(1, ready=False), status=upgrading)
    assert phase_of(replicas).reason == "waiting for vz-1 to be ready and follow the primary"


def test_switchover_phase() -> None:
    topo = Topology(State.SWITCHOVER, "moving", "vz-0", "vz-1", 1)
    assert phase_of(observe(primary(0), replica(1)), topo).name == st.SWITCHOVER


def test_conditions_follow_the_phase_and_keep_transition_times() -> None:
    obs = observe(primary(0), replica(1), status=healthy_status())
    topo = plan_replication(obs, max_lag=0, switchover_timeout_s=30)
    status = st.build_status(obs, topo, st.Phase(st.HEALTHY), now="T1", observed_generation=1)
    conds = {c.type: c for c in status.conditions or ()}
    assert (conds["Ready"].status, conds["Progressing"].status, conds["Degraded"].status) == (
        "True",
        "False",
        "False",
    )
    assert conds["Ready"].reason == "ClusterHealthy"
    # Unchanged status keeps its time; a change gets a new one.
    previous = [
        {"type": "Ready", "status": "True", "lastTransitionTime": "T0"},
        {"type": "Degraded", "status": "True", "lastTransitionTime": "T0"},
    ]
    obs2 = observe(primary(0), replica(1), status={**healthy_status(), "conditions": previous})
    status2 = st.build_status(obs2, topo, st.Phase(st.HEALTHY), now="T1", observed_generation=1)
    conds2 = {c.type: c for c in status2.conditions or ()}
    assert conds2["Ready"].last_transition_time == "T0"
    assert conds2["Degraded"].last_transition_time == "T1"


def test_a_primary_refusing_writes_is_a_condition_and_an_instance_field() -> None:
    full = inst(0, replace(node("primary"), writes_refused="insufficient_memory"))
    obs = observe(full, replica(1), status=healthy_status())
    topo = plan_replication(obs, max_lag=0, switchover_timeout_s=30)
    status = st.build_status(obs, topo, st.Phase(st.HEALTHY), now="T1", observed_generation=1)
    conds = {c.type: c for c in status.conditions or ()}
    refused = conds[st.WRITES_REFUSED]
    assert (refused.status, refused.reason) == ("True", "InsufficientMemory")
    assert refused.message and "vz-0" in refused.message and "deletes go on" in refused.message
    assert conds["Ready"].status == "True"  # reads and deletes are served: still Healthy
    by_name = {i.name: i for i in status.instances_status or ()}
    assert by_name["vz-0"].writes_refused == "insufficient_memory"
    assert by_name["vz-1"].writes_refused is None
    # An invalid spec observes nothing: the condition stays as it was.
    previous = [{"type": st.WRITES_REFUSED, "status": "True", "lastTransitionTime": "T1"}]
    kept = observe(full, status={**healthy_status(), "conditions": previous})
    failed = st.failed_status(kept.cluster, "bad", now="T2")
    assert any(c.type == st.WRITES_REFUSED and c.status == "True" for c in failed.conditions or ())
    # A replica's refusal shows on the replica only; the condition follows the primary.
    obs = observe(
        primary(0),
        inst(1, replace(node("replica", follows=0), writes_refused="insufficient_storage")),
        status=healthy_status(),
    )
    status = st.build_status(obs, topo, st.Phase(st.HEALTHY), now="T3", observed_generation=1)
    conds = {c.type: c for c in status.conditions or ()}
    assert (conds[st.WRITES_REFUSED].status, conds[st.WRITES_REFUSED].reason) == (
        "False",
        "WritesAccepted",
    )


def test_status_reports_each_instance() -> None:
    obs = observe(
        primary(0, seq=12),
        replica(1, seq=11, lag=1),
        inst(2, None, pod=False),
        instances=3,
        status=healthy_status(),
    )
    topo = plan_replication(obs, max_lag=0, switchover_timeout_s=30)
    status = st.build_status(obs, topo, st.Phase(st.DEGRADED, "x"), now="T", observed_generation=1)
    assert (status.instances, status.ready_instances) == (2, 2)
    assert (status.current_primary, status.epoch, status.selector) == (
        "vz-0",
        1,
        "vectorizer.io/cluster=vz",
    )
    by_name = {i.name: i for i in status.instances_status or ()}
    assert by_name["vz-0"].role == "primary" and by_name["vz-0"].sequence == 12
    assert by_name["vz-1"].lag_operations == 1 and by_name["vz-1"].updated is True
    assert by_name["vz-2"].phase == "Missing" and by_name["vz-2"].ready is False


def test_terminating_pods_are_not_counted_ready() -> None:
    """A pod being deleted may still say Ready (a deleted cluster's, or one rolling)."""
    obs = observe(primary(0), replica(1), replica(2, terminating=True), status=healthy_status())
    topo = plan_replication(obs, max_lag=0, switchover_timeout_s=30)
    status = st.build_status(obs, topo, st.Phase(st.DEGRADED, "x"), now="T", observed_generation=1)
    assert (status.instances, status.ready_instances) == (3, 2)
    by_name = {i.name: i for i in status.instances_status or ()}
    assert (by_name["vz-2"].phase, by_name["vz-2"].ready) == ("Terminating", False)


def test_failed_status_keeps_the_replication_fields() -> None:
    obs = observe(primary(0), status=healthy_status(0, 4))
    status = st.failed_status(obs.cluster, "spec.instances: bad", now="T")
    assert status.phase == st.FAILED and status.phase_reason == "spec.instances: bad"
    assert (status.current_primary, status.epoch) == ("vz-0", 4)
    conds = {c.type: c for c in status.conditions or ()}
    assert conds["Degraded"].status == "True" and conds["Ready"].reason == "InvalidSpec"


# ---- one pass: the priorities between the decisions -----------------------------------------


def test_decide_rolls_one_replica_when_all_is_well() -> None:
    obs = observe(
        primary(0), replica(1), replica(2), update_revision="rev2", status=healthy_status()
    )
    plan = decide(obs, max_lag=0, switchover_timeout_s=30)
    assert plan.delete == DeletePod("vz-2", "rolling out a new revision")
    assert plan.start_switchover is None and plan.replication.actions == ()


def test_decide_starts_a_switchover_before_scaling_down_past_the_primary() -> None:
    obs = observe(
        replica(0, follows=2),
        replica(1, follows=2),
        primary(2),
        instances=2,
        replicas=3,
        status=healthy_status(2),
        update_revision="rev2",
    )
    plan = decide(obs, max_lag=0, switchover_timeout_s=30)
    assert plan.start_switchover == RecordTargetPrimary("vz-0")  # equal logs: lowest ordinal
    assert plan.topology.state is State.SWITCHOVER and plan.scale.replicas == 3
    assert plan.delete is None  # nothing else moves while the primary moves
    later = decide(
        observe(
            replica(0, follows=2),
            replica(1, follows=2),
            primary(2),
            instances=2,
            replicas=3,
            status=healthy_status(2),
            allowed=False,
        ),
        max_lag=0,
        switchover_timeout_s=30,
    )
    assert later.start_switchover is None  # right after an abandoned one: wait


def test_decide_repoints_before_it_deletes() -> None:
    obs = observe(
        primary(0),
        inst(1, node("replica", epoch=0, seq=0)),
        update_revision="rev2",
        status=healthy_status(),
    )
    plan = decide(obs, max_lag=0, switchover_timeout_s=30)
    assert plan.replication.actions and plan.delete is None


def test_decide_replaces_broken_pods_even_without_a_primary() -> None:
    obs = observe(
        inst(0, None, ready=False),
        inst(1, None, ready=False),
        update_revision="rev2",
        status=healthy_status(),
    )
    plan = decide(obs, max_lag=0, switchover_timeout_s=30)
    assert plan.delete == DeletePod(
        "vz-1", "replacing a pod that does not serve with the current revision"
    )
