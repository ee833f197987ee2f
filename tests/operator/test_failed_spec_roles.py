"""While the spec cannot be acted upon (Failed) no child is changed, but the pods' role
labels still follow what the nodes report: the -rw and -ro Services select on them. A
primary's pod recreated meanwhile came back from the template without its role label,
and -rw had no endpoint (every write failed) until the spec was fixed."""

from __future__ import annotations

from typing import Any

import pytest

from tests.operator.fakes import FakeKube, Sim
from vectorizer_operator import naming

REFUSED = {"resources": {"requests": {"memory": "1Gi"}, "limits": {"memory": "100Mi"}}}
INVALID = {"services": {"annotations": {"bad key!": "x"}}}


@pytest.mark.parametrize("spec", [REFUSED, INVALID], ids=["refused", "invalid"])
async def test_a_pod_recreated_while_the_spec_is_failed_gets_its_role_back(
    spec: dict[str, Any],
) -> None:
    sim = Sim(instances=3)
    await sim.settle()
    assert sim.role_labels() == {"vz-0": "primary", "vz-1": "replica", "vz-2": "replica"}
    sim.edit_spec(**spec)
    assert (await sim.step()).phase == "Failed"
    reason = sim.status["phaseReason"]
    primary = sim.pod(0)
    assert primary is not None
    del sim.kube.objects[FakeKube.key_of(primary)]  # (deleted: the StatefulSet makes it again)
    sim.kube.calls.clear()
    for _ in range(2):
        assert (await sim.step()).phase == "Failed"
    assert sim.status["phaseReason"] == reason
    assert sim.role_labels() == {"vz-0": "primary", "vz-1": "replica", "vz-2": "replica"}
    changed = [c for c in sim.kube.calls if c[0] in ("apply", "patch", "delete")]
    assert {c[1] for c in changed} == {"Pod"}, changed  # (its labels; no other child)
    sts = sim.kube.find("apps/v1", "StatefulSet", "vz")
    assert (
        sts is not None and naming.LABEL_ROLE not in sts["spec"]["template"]["metadata"]["labels"]
    )
