"""Leader election: one holder; takeover only after the lease went unrenewed."""

from __future__ import annotations

from tests.operator.fakes import FakeKube
from vectorizer_operator.leader import LEASE_API, ElectionSettings, LeaderElector


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
