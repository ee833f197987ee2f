"""Rotating the admin key Secret: the operator keeps reaching and managing the nodes.

The operator reads the new key from the Secret at once; each node re-reads its mounted
key file only when the kubelet rewrites it (seconds to a minute or two later), and until
then refuses the new key with 401 ``unauthenticated``. Meanwhile the operator calls such
a node with the previous key, and stops once every node accepts the new one (or after
``previous_key_grace_s``). No key ever reaches a log line, an event or the status.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import pytest

from tests.operator.fakes import NS, FakeDataPlane, Sim
from vectorizer_operator.dataplane_client import PLAIN, Access
from vectorizer_operator.reconcile.cluster import Reconciler

Json = dict[str, Any]

NEW_KEY = "rotated-admin-key-0123456789abcdef"


class DataPlane(FakeDataPlane):
    """``FakeDataPlane`` recording the key each status call was made with."""

    async def status(self, url: str, access: Access = PLAIN) -> Any:
        self.calls.append(("status", self.routes.get(url, url), access.api_key))
        return await super().status(url, access)


def make_sim(**spec: Any) -> Sim:
    sim = Sim(**spec)
    sim.dp = DataPlane()
    sim.reconciler = sim.new_reconciler()
    return sim


def secret_key(sim: Sim, name: str = "vz-admin-key", item: str = "api-key") -> str:
    secret = sim.kube.find("v1", "Secret", name)
    assert secret is not None
    return base64.b64decode(secret["data"][item]).decode()


def rotate(sim: Sim, key: str, name: str = "vz-admin-key", item: str = "api-key") -> None:
    """What ``kubectl`` does to the Secret; the pods' mounted files are not rewritten yet."""
    secret = sim.kube.find("v1", "Secret", name)
    assert secret is not None
    secret["data"][item] = base64.b64encode(key.encode()).decode()


def kubelet_refreshes(sim: Sim, *ordinals: int) -> None:
    """The kubelet rewrote the mounted file: the node re-reads it and wants the new key."""
    for ordinal in ordinals:
        sim.node(ordinal).api_key = secret_key_of_pod(sim, ordinal)


def secret_key_of_pod(sim: Sim, ordinal: int) -> str | None:
    pod = sim.pod(ordinal)
    assert pod is not None
    return sim._pod_material(pod)[0]


def memory_of(sim: Sim) -> Any:
    reconciler: Reconciler = sim.reconciler
    return reconciler._memory[(NS, sim.name)]


def keys_sent(sim: Sim, since: int = 0) -> dict[str, set[str | None]]:
    """Status calls since call number ``since``: pod -> the keys it was called with."""
    out: dict[str, set[str | None]] = {}
    for kind, pod, key in sim.dp.calls[since:]:
        if kind == "status":
            out.setdefault(pod, set()).add(key)
    return out


def no_messages(status: Json) -> bool:
    return not [i for i in status.get("instancesStatus") or () if i.get("message")]


async def test_a_rotated_generated_key_keeps_the_cluster_healthy_and_managed() -> None:
    sim = make_sim(instances=3)
    await sim.settle()
    old = secret_key(sim)
    assert {sim.node(n).api_key for n in range(3)} == {old}

    rotate(sim, NEW_KEY)
    for _ in range(5):  # the kubelet has not rewritten any pod's file yet
        result = await sim.step()
        assert result.phase == "Healthy", sim.status.get("phaseReason")
        assert no_messages(sim.status), sim.status["instancesStatus"]
    assert memory_of(sim).api_key == NEW_KEY  # the new key is tried first
    assert memory_of(sim).previous_keys  # the old one is kept meanwhile

    kubelet_refreshes(sim, 1)  # one node got the new file; the others still want the old
    assert sim.node(1).api_key == NEW_KEY and sim.node(0).api_key == old
    mark = len(sim.dp.calls)
    for _ in range(3):
        result = await sim.step()
        assert result.phase == "Healthy", sim.status.get("phaseReason")
    sent = keys_sent(sim, mark)
    assert sent["vz-1"] == {NEW_KEY}
    assert sent["vz-0"] == {NEW_KEY, old}  # refused the new key, answered to the old one
    assert memory_of(sim).previous_keys

    kubelet_refreshes(sim, 0, 2)
    await sim.step()  # every node answered to the new key: the old one is retired
    assert not memory_of(sim).previous_keys
    mark = len(sim.dp.calls)
    status = await sim.settle()
    assert status["phase"] == "Healthy"
    assert {k for keys in keys_sent(sim, mark).values() for k in keys} == {NEW_KEY}
    assert sim.dp.of("promote") == [("vz-0", 1)]


async def test_the_operator_promotes_and_fences_through_a_rotation() -> None:
    """A switchover while the nodes still hold the old key, the new pods the new one."""
    sim = make_sim(instances=3, primaryUpdateMethod="switchover")
    await sim.settle()
    sim.write(5)
    old = secret_key(sim)
    rotate(sim, NEW_KEY)
    await sim.step()
    sim.edit_spec(image="vectorizer:next")  # a rollout: replaced pods mount the new key
    phases = []
    for _ in range(80):
        result = await sim.step()
        phases.append(result.phase)
        if phases[-2:] == ["Healthy", "Healthy"]:
            break
    assert sim.status["phase"] == "Healthy", sim.status.get("phaseReason")
    assert "Degraded" not in phases, [sim.status.get("phaseReason"), phases]
    # The primary moved (fenced with the old key, a new pod promoted with the new one).
    assert sim.status["currentPrimary"] != "vz-0"
    assert [name for name, _ in sim.dp.of("fence")] == ["vz-0"]
    assert [name for name, _ in sim.dp.of("promote")] == ["vz-0", sim.status["currentPrimary"]]
    assert {sim.node(n).api_key for n in range(3)} == {NEW_KEY}
    assert old != NEW_KEY


async def test_a_fenced_primary_still_on_the_old_key_is_promoted_again() -> None:
    sim = make_sim(instances=2)
    await sim.settle()
    rotate(sim, NEW_KEY)
    await sim.step()
    sim.node(0).role = "fenced"  # e.g. left so by an abandoned switchover
    status = await sim.settle()
    assert status["currentPrimary"] == "vz-0" and sim.node(0).role == "primary"
    assert sim.dp.of("promote") == [("vz-0", 1), ("vz-0", 2)]
    assert sim.node(0).api_key != NEW_KEY  # it was reached with the old key


async def test_a_rotated_user_secret_is_followed_the_same_way() -> None:
    sim = make_sim(instances=2, auth={"adminKeySecret": {"name": "ops", "key": "admin"}})
    sim.kube.put(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "ops", "namespace": NS},
            "data": {"admin": base64.b64encode(b"u" * 24).decode()},
        }
    )
    await sim.settle()
    assert sim.node(0).api_key == "u" * 24
    rotate(sim, NEW_KEY, "ops", "admin")
    for _ in range(3):
        result = await sim.step()
        assert result.phase == "Healthy", sim.status.get("phaseReason")
    kubelet_refreshes(sim, 0, 1)
    await sim.settle()
    assert not memory_of(sim).previous_keys


async def test_the_previous_key_is_given_up_after_the_grace() -> None:
    """A node that never re-reads its key file is not reached forever with the old key:
    after the grace it is reported, as a node the operator cannot reach."""
    sim = make_sim(instances=2)
    await sim.settle()
    rotate(sim, NEW_KEY)
    result = await sim.step()
    assert result.phase == "Healthy"
    sim.time += sim.settings.previous_key_grace_s + 1
    result = await sim.step()
    assert not memory_of(sim).previous_keys
    assert result.phase == "Degraded"
    assert "invalid API key" in sim.status["phaseReason"]


async def test_no_key_reaches_the_logs_events_or_status(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    sim = make_sim(instances=3)
    await sim.settle()
    old = secret_key(sim)
    rotate(sim, NEW_KEY)
    for _ in range(3):
        await sim.step()
    kubelet_refreshes(sim, 0, 1, 2)
    await sim.settle()
    assert "previous admin key" in caplog.text  # the rotation is logged, the keys are not
    text = caplog.text + json.dumps(sim.kube.events) + json.dumps(sim.status)
    assert old not in text and NEW_KEY not in text
