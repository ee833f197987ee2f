"""Leader election: one holder; takeover only after the lease went unrenewed; a pass acts
only while its term lasts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from tests.operator.fakes import NS, FakeDataPlane, FakeKube, cluster_body
from vectorizer_operator import naming
from vectorizer_operator.dataplane_client import DataPlaneError
from vectorizer_operator.leader import (
    LEASE_API,
    ElectionSettings,
    LeaderElector,
    LeaderOnlyDataPlane,
    LeaderOnlyKube,
    NotLeading,
)
from vectorizer_operator.reconcile.ports import Json


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def elector(kube: FakeKube, clock: Clock, identity: str) -> LeaderElector:
    return LeaderElector(kube, ElectionSettings("vz-op", "ops", identity, 15.0), clock=clock)


def holder(kube: FakeKube) -> str | None:
    lease = kube.find(LEASE_API, "Lease", "vz-op", "ops")
    return None if lease is None else lease["spec"].get("holderIdentity")


async def test_only_one_of_two_candidates_leads() -> None:
    kube, clock = FakeKube(), Clock()
    a, b = elector(kube, clock, "a"), elector(kube, clock, "b")
    assert await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()
    assert a.is_leader and not b.is_leader
    assert holder(kube) == "a" and b.holder == "a"
    clock.t += 5
    assert await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()


async def test_takeover_after_the_leader_stops_renewing() -> None:
    kube, clock = FakeKube(), Clock()
    a, b = elector(kube, clock, "a"), elector(kube, clock, "b")
    elected: list[str] = []
    b.on_elected = lambda: elected.append("b")
    await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()
    clock.t += 11
    assert not a.is_leader  # past its renew deadline: it stops acting first
    assert not await b.try_acquire_or_renew()  # but the lease is not expired yet
    clock.t += 5  # 16 s since b last saw the record change
    assert await b.try_acquire_or_renew()
    assert holder(kube) == "b" and elected == ["b"]
    lease = kube.find(LEASE_API, "Lease", "vz-op", "ops")
    assert lease is not None and lease["spec"]["leaseTransitions"] == 1
    assert not await a.try_acquire_or_renew()


async def test_a_lost_write_race_does_not_make_two_leaders() -> None:
    kube, clock = FakeKube(), Clock()
    a, b = elector(kube, clock, "a"), elector(kube, clock, "b")
    await a.try_acquire_or_renew()
    lease = kube.find(LEASE_API, "Lease", "vz-op", "ops")
    assert lease is not None
    lease["metadata"]["resourceVersion"] = "changed-behind-our-back"
    clock.t += 16
    # b read the record long ago and thinks it expired, but its write carries a stale version.
    b._observed, b._observed_at = ("a", lease["spec"]["renewTime"]), 0.0
    original = kube.get

    async def stale_get(*args: str) -> dict | None:  # type: ignore[type-arg]
        obj = await original(*args)
        if obj is not None:
            obj["metadata"]["resourceVersion"] = "old"
        return obj

    kube.get = stale_get  # type: ignore[method-assign]
    assert not await b.try_acquire_or_renew()
    assert holder(kube) == "a"


async def test_release_hands_the_lease_over_at_once() -> None:
    kube, clock = FakeKube(), Clock()
    a, b = elector(kube, clock, "a"), elector(kube, clock, "b")
    await a.try_acquire_or_renew()
    await a.release()
    assert not a.is_leader and holder(kube) is None
    assert await b.try_acquire_or_renew()
    await a.release()  # not the holder: a no-op
    assert holder(kube) == "b"


async def test_a_term_that_lapsed_ends_before_a_renewal_starts_the_next() -> None:
    kube, clock = FakeKube(), Clock()
    a = elector(kube, clock, "a")
    seen: list[str] = []
    a.on_elected, a.on_stopped = lambda: seen.append("elected"), lambda: seen.append("stopped")
    assert await a.try_acquire_or_renew()
    clock.t += 5
    assert await a.try_acquire_or_renew()
    assert seen == ["elected"]  # renewed in time: the same term
    clock.t += 10.5  # past the 10 s deadline: passes started in that term must not go on
    assert await a.try_acquire_or_renew()  # nobody took over: the record is still ours
    assert seen == ["elected", "stopped", "elected"]
    lease = kube.find(LEASE_API, "Lease", "vz-op", "ops")
    assert lease is not None and lease["spec"]["leaseTransitions"] == 0


async def test_a_leader_that_lost_the_lease_says_so_once() -> None:
    kube, clock = FakeKube(), Clock()
    a, b = elector(kube, clock, "a"), elector(kube, clock, "b")
    stopped: list[str] = []
    a.on_stopped = lambda: stopped.append("a")
    await a.try_acquire_or_renew()
    await b.try_acquire_or_renew()
    clock.t += 20  # a was paused; b takes over
    assert await b.try_acquire_or_renew()
    assert not a.is_leader and a.time_left() is None
    assert not await a.try_acquire_or_renew()
    assert not await a.try_acquire_or_renew()
    assert stopped == ["a"] and holder(kube) == "b"
    await a.release()
    assert holder(kube) == "b"


class SlowReply:
    """A Lease store whose next ``get`` answers late, after ``meanwhile`` ran."""

    def __init__(self, kube: FakeKube) -> None:
        self.kube = kube
        self.meanwhile: Callable[[], Awaitable[None]] | None = None

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> Json | None:
        if self.meanwhile is not None:
            meanwhile, self.meanwhile = self.meanwhile, None
            await meanwhile()
        return await self.kube.get(api_version, kind, namespace, name)

    async def create(self, manifest: Json) -> Json:
        return await self.kube.create(manifest)

    async def replace(self, manifest: Json) -> Json:
        return await self.kube.replace(manifest)


async def test_a_record_counts_as_seen_when_the_answer_came() -> None:
    """A candidate paused (or answered slowly) while the leader renewed must not date the
    new record back to before its question: it would take over while the leader leads."""
    kube, clock = FakeKube(), Clock()
    a = elector(kube, clock, "a")
    store = SlowReply(kube)
    b = LeaderElector(store, ElectionSettings("vz-op", "ops", "b", 15.0), clock=clock)
    await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()

    async def paused() -> None:
        clock.t += 20
        assert await a.try_acquire_or_renew()  # a renews at 120, leads until 130

    store.meanwhile = paused
    assert not await b.try_acquire_or_renew()  # asked at 100, answered at 120
    clock.t += 6  # a has stopped renewing (died) just after 120
    assert a.is_leader
    assert not await b.try_acquire_or_renew()  # only 6 s since b saw a's record
    clock.t += 10
    assert not a.is_leader
    assert await b.try_acquire_or_renew()


async def test_writes_of_a_pass_ask_whether_we_lead_at_that_moment() -> None:
    kube, dp = FakeKube(), FakeDataPlane()
    kube.put(cluster_body())
    leading = [True]
    guarded = LeaderOnlyKube(kube, lambda: leading[0])
    nodes = LeaderOnlyDataPlane(dp, lambda: leading[0])
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": NS}}
    assert await guarded.apply(pod)
    leading[0] = False
    assert await guarded.get(naming.API_VERSION, naming.KIND, NS, "vz") is not None
    assert await guarded.list("v1", "Pod", NS, "") != []
    writes: list[Awaitable[object]] = [
        guarded.apply(pod),
        guarded.patch("v1", "Pod", NS, "p", {"metadata": {"labels": {"x": "y"}}}),
        guarded.patch_status(naming.API_VERSION, naming.KIND, NS, "vz", {"phase": "X"}),
        guarded.delete("v1", "Pod", NS, "p"),
        guarded.emit_event({"name": "vz", "namespace": NS}, "Normal", "R", "m"),
        nodes.promote("http://n", 2),
        nodes.follow("http://n", "http://m", 2),
        nodes.fence("http://n", 2),
    ]
    calls = len(kube.calls)
    for write in writes:
        with pytest.raises(NotLeading):
            await write
    assert kube.calls[calls:] == [] and kube.events == [] and dp.calls == []
    assert kube.find("v1", "Pod", "p") is not None
    with pytest.raises(DataPlaneError):  # a read goes through (to a node that is not there)
        await nodes.status("http://n")


async def test_a_dry_run_is_not_a_write() -> None:
    """It stores nothing, so it goes through like a read; the apply after it does not."""
    kube = FakeKube()
    leading = [False]
    guarded = LeaderOnlyKube(kube, lambda: leading[0])
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": NS}}
    assert await guarded.apply(pod, dry_run=True) == pod
    assert kube.calls == [("dry-run", "Pod", "p")] and kube.objects == {}
    with pytest.raises(NotLeading):
        await guarded.apply(pod)
    leading[0] = True
    assert await guarded.apply(pod, dry_run=False)
    assert kube.find("v1", "Pod", "p") is not None
