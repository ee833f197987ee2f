"""A pass in flight when the leader's term ends does nothing more (leader election + loop).

The operator is built as in production (``Runtime.build`` with the Lease on the same
in-memory API server); a pass hangs where a hung data plane or API server would hold it,
then the leader's deadline passes (a pause: SIGSTOP, a frozen VM) and another replica
takes the Lease. The stale pass must not apply, delete, promote, fence or write status.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.operator.fakes import NS, FakeDataPlane, FakeKube, cluster_body
from vectorizer_operator.leader import LEASE_API, ElectionSettings, LeaderElector
from vectorizer_operator.reconcile.ports import Json, KubeApiError
from vectorizer_operator.runtime import Runtime
from vectorizer_operator.settings import OperatorSettings

WRITES = {"apply", "patch", "patch_status", "delete"}
LEASE = 9.0  # the lease of the reproduction on a real control plane


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class HangingKube(FakeKube):
    """Listing pods hangs until ``release`` is set (a node or the API server not answering)."""

    def __init__(self) -> None:
        super().__init__()
        self.hanging = asyncio.Event()
        self.release = asyncio.Event()
        self.leases_answer = asyncio.Event()  # cleared: reading the Lease hangs
        self.leases_answer.set()

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> Json | None:
        if kind == "Lease":
            await self.leases_answer.wait()
        return await super().get(api_version, kind, namespace, name)

    async def list(self, api_version: str, kind: str, namespace: str, selector: str) -> list[Json]:
        if kind == "Pod" and not self.release.is_set():
            self.hanging.set()
            await self.release.wait()
        return await super().list(api_version, kind, namespace, selector)


def writes(kube: FakeKube, since: int) -> list[tuple[str, str, str]]:
    return [call for call in kube.calls[since:] if call[0] in WRITES]


def holder(kube: FakeKube) -> str | None:
    lease = kube.find(LEASE_API, "Lease", "vz-op", "ops")
    return None if lease is None else lease["spec"].get("holderIdentity")


def operator(kube: FakeKube, dp: FakeDataPlane, lease_duration_s: float = LEASE) -> Runtime:
    settings = OperatorSettings(
        identity="op-a",
        lease_namespace="ops",
        peering_name="vz-op",
        lease_duration_s=lease_duration_s,
        metrics_port=0,
    )
    return Runtime.build(settings, keys=lambda: [(NS, "vz")], kube=kube, dataplane=dp, leases=kube)


async def test_a_pass_resumed_after_the_deadline_does_not_act() -> None:
    kube, dp, clock = HangingKube(), FakeDataPlane(), Clock()
    kube.put(cluster_body(instances=1))
    runtime = operator(kube, dp)
    a = runtime.elector
    assert a is not None
    a.clock = clock
    b = LeaderElector(kube, ElectionSettings("vz-op", "ops", "op-b", LEASE), clock=clock)
    assert await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()  # b saw a's record at t
    await runtime.loop.run_once()
    async with asyncio.timeout(5):
        await kube.hanging.wait()  # the pass observes, and hangs
    mark, events = len(kube.calls), len(kube.events)

    # Paused for 20 s: the deadline (6 s) and the lease (9 s) pass; b takes over.
    # Neither a's election task nor its loop runs before the pass carries on.
    clock.t += 20
    assert await b.try_acquire_or_renew() and holder(kube) == "op-b"
    kube.release.set()
    await runtime.loop.drain()

    assert writes(kube, mark) == []  # no children applied, no status written
    assert kube.events[events:] == [] and dp.calls == []
    assert not a.is_leader
    # The resumed ex-leader does not take the Lease back, and does not release b's.
    assert not await a.try_acquire_or_renew()
    await runtime.stop()
    assert holder(kube) == "op-b" and b.is_leader


@pytest.mark.parametrize("outage", ["refused", "hung"])
async def test_the_end_of_a_term_cancels_running_passes(outage: str) -> None:
    """The API server refuses or does not answer the leader's renewals: its term ends at
    the deadline, and the pass hanging meanwhile is cancelled then, not left to act
    when answers come back."""
    kube, dp = HangingKube(), FakeDataPlane()
    kube.put(cluster_body(instances=1))
    runtime = operator(kube, dp, lease_duration_s=1.0)  # renew every 0.33 s, stop at 0.67 s
    runtime.start()
    try:
        async with asyncio.timeout(5):
            await kube.hanging.wait()
        mark = len(kube.calls)
        if outage == "refused":
            kube.fail[("get", "Lease")] = KubeApiError(503, "the API server is overloaded")
        else:
            kube.leases_answer.clear()
        for _ in range(100):
            await asyncio.sleep(0.02)
            if not runtime.loop._running:
                break
        assert not runtime.loop._running  # cancelled, not waiting for its answer
        assert not runtime.health()["leader"]
        kube.release.set()
        await asyncio.sleep(0.1)
        assert writes(kube, mark) == []
        # Once it leads again, the cluster is reconciled from scratch at once.
        kube.fail.clear()
        kube.leases_answer.set()
        for _ in range(100):
            await asyncio.sleep(0.02)
            if kube.find("apps/v1", "StatefulSet", "vz") is not None:
                break
        assert runtime.health()["leader"]
        assert kube.find("apps/v1", "StatefulSet", "vz") is not None
    finally:
        kube.leases_answer.set()
        await runtime.stop()
