"""Scaling takes precedence over Degraded (docs/OPERATOR.md), without hiding a dead primary.

The phase order is Setting up, Switchover, Scaling, Upgrading, Degraded: a change of the
instance count while the primary does not answer is Scaling, and the phase reason and the
Degraded condition still say that the primary does not answer.
"""

from __future__ import annotations

from typing import Any

from tests.operator.decisions import healthy_status, inst, observe, replica
from tests.operator.fakes import Sim
from vectorizer_operator.reconcile import status as st
from vectorizer_operator.reconcile.replication import plan_replication
from vectorizer_operator.reconcile.scaling import ScalePlan, plan_scaling


def conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status.get("conditions") or ()}


def test_scaling_up_while_the_primary_does_not_answer_is_scaling() -> None:
    # Three wanted, the StatefulSet still at two, the primary's pod up but silent.
    obs = observe(inst(0, None), replica(1), instances=3, replicas=2, status=healthy_status())
    topo = plan_replication(obs, max_lag=0, switchover_timeout_s=30)
    phase = st.choose_phase(obs, topo, ScalePlan(obs.desired), None)
    assert phase.name == st.SCALING
    assert phase.reason is not None and "scaling to 3 instances" in phase.reason
    assert "primary vz-0 does not answer" in phase.reason
    assert phase.fault is not None and "primary vz-0 does not answer" in phase.fault

    status = st.build_status(obs, topo, phase, now="T", observed_generation=1)
    conds = {c.type: c for c in status.conditions or ()}
    assert (conds["Ready"].status, conds["Progressing"].status, conds["Degraded"].status) == (
        "False",
        "True",
        "True",
    )
    assert conds["Progressing"].reason == "Scaling"
    assert conds["Degraded"].reason == "ClusterDegraded"
    assert "primary vz-0 does not answer" in (conds["Degraded"].message or "")


def test_scaling_down_waiting_for_a_silent_primary_is_scaling() -> None:
    # The primary is the ordinal to remove, and it does not answer: nothing can move it.
    obs = observe(
        replica(0, follows=2),
        replica(1, follows=2),
        inst(2, None),
        instances=2,
        replicas=3,
        status=healthy_status(2),
    )
    topo = plan_replication(obs, max_lag=0, switchover_timeout_s=30)
    scale = plan_scaling(obs, None, max_lag=0)
    phase = st.choose_phase(obs, topo, scale, None)
    assert phase.name == st.SCALING
    assert phase.reason is not None and "vz-2 must stop being primary" in phase.reason
    assert "primary vz-2 does not answer" in phase.reason


def test_new_instances_waiting_for_a_silent_primary_stay_scaling() -> None:
    # The StatefulSet has its new count; the new pod cannot follow a primary that is down.
    scaling = {**healthy_status(), "phase": "Scaling"}
    obs = observe(inst(0, None), replica(1), inst(2, None), status=scaling)
    topo = plan_replication(obs, max_lag=0, switchover_timeout_s=30)
    phase = st.choose_phase(obs, topo, ScalePlan(obs.desired), None)
    assert phase.name == st.SCALING
    assert phase.reason is not None and "vz-2" in phase.reason
    assert phase.fault is not None and "primary vz-0 does not answer" in phase.fault


def test_a_silent_primary_without_scaling_is_still_degraded() -> None:
    obs = observe(inst(0, None), replica(1), status=healthy_status())
    topo = plan_replication(obs, max_lag=0, switchover_timeout_s=30)
    phase = st.choose_phase(obs, topo, ScalePlan(obs.desired), None)
    assert phase == st.Phase(st.DEGRADED, phase.reason)
    status = st.build_status(obs, topo, phase, now="T", observed_generation=1)
    conds = {c.type: c for c in status.conditions or ()}
    assert (conds["Progressing"].status, conds["Degraded"].status) == ("False", "True")
    assert conds["Degraded"].reason == "ClusterDegraded"


async def test_scale_up_with_the_primary_down_reports_scaling_then_recovers() -> None:
    """The reported repro: kill the primary, scale up by one, bring the primary back."""
    sim = Sim(instances=3)
    await sim.settle()
    sim.node(0).up = False  # kill -9: the pod stays, the process does not answer
    result = await sim.step()
    assert result.phase == "Degraded"
    sim.edit_spec(instances=4)
    for _ in range(3):
        result = await sim.step()
        status = sim.status
        assert status["phase"] == "Scaling", status.get("phaseReason")
        assert "primary vz-0 does not answer" in status["phaseReason"]
        conds = conditions(status)
        assert conds["Progressing"]["status"] == "True"
        assert conds["Degraded"]["status"] == "True"
        assert "primary vz-0 does not answer" in conds["Degraded"]["message"]
        assert conds["Ready"]["status"] == "False"
    assert sim.kube.find("apps/v1", "StatefulSet", "vz")["spec"]["replicas"] == 4  # type: ignore[index]
    assert sim.dp.of("promote") == [("vz-0", 1)]  # no failover was made up on the way
    sim.node(0).up = True
    phases = []
    for _ in range(30):
        result = await sim.step()
        phases.append(result.phase)
        if phases[-2:] == ["Healthy", "Healthy"]:
            break
    assert phases[-1] == "Healthy" and "Degraded" not in phases, phases
    status = sim.status
    assert status["readyInstances"] == 4 and status["currentPrimary"] == "vz-0"
    assert sim.node(3).role == "replica" and sim.node(3).sequence == sim.node(0).sequence
    assert conditions(status)["Degraded"]["status"] == "False"


async def test_a_new_template_with_the_primary_down_is_upgrading_and_still_says_so() -> None:
    """A spec change rolled out while the primary does not answer is shown as Upgrading
    (precedence), and it hid the primary: the reason said only "rolling out a new pod
    template" and the Degraded condition went False. Both say it now."""
    sim = Sim(instances=3)
    await sim.settle()
    sim.node(0).up = False
    assert (await sim.step()).phase == "Degraded"
    sim.edit_spec(config={"hnsw_m": 24})
    result = await sim.step()
    status = sim.status
    assert result.phase == "Upgrading", status.get("phaseReason")
    assert "rolling out a new pod template" in status["phaseReason"]
    assert "primary vz-0 does not answer" in status["phaseReason"]
    conds = conditions(status)
    assert conds["Progressing"]["status"] == "True"
    assert conds["Degraded"]["status"] == "True"
    assert "primary vz-0 does not answer" in conds["Degraded"]["message"]
