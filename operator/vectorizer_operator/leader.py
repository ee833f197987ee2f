"""Leader election on a coordination.k8s.io Lease, so that two replicas never both act.

The same algorithm as client-go's leaderelection:

- a candidate takes the Lease when nobody holds it, or when the holder's record has
  not changed for ``lease_duration`` *as measured by the candidate's own clock*
  (renew times written by another machine are never compared with ours);
- writes carry the resourceVersion they read, so of two candidates only one wins;
- the leader renews every ``lease_duration / 3`` and considers itself leader only
  while its last successful renewal is younger than ``2/3 * lease_duration``, i.e. it
  stops acting before anybody else may take over;
- on shutdown the leader releases the Lease so a successor need not wait.

Stopping to act is more than not starting passes. A pass can be in flight when the
deadline passes, or the process can be paused (SIGSTOP, a frozen VM, a long stall)
mid-pass and resumed after another replica took over; it then runs the rest of that
pass before the election task gets a turn. So:

- ``is_leader`` compares the monotonic clock with the deadline each time it is asked,
  and every write of a pass asks it at the moment of writing (``LeaderOnlyKube``,
  ``LeaderOnlyDataPlane``), which aborts the pass with ``NotLeading``;
- the election task ends the term at the deadline itself, even while the API server
  does not answer, and tells the loop (``on_stopped``), which cancels running passes.
  A term that lapsed is ended (and its passes cancelled) before a later renewal starts
  the next one, so a pass never outlives the term it started in.

Why not kopf's peering: it pauses kopf's handlers, but the reconcile loop runs outside
them (kopf's timers would put a finalizer on every cluster), and kopf documents that
two operators may briefly both run. A Lease is the Kubernetes-native way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from vectorizer_operator.dataplane_client import PLAIN, Access, DataPlane, NodeStatus
from vectorizer_operator.reconcile.ports import Json, Kube, KubeApiError

log = logging.getLogger(__name__)
LEASE_API = "coordination.k8s.io/v1"


class LeaseStore(Protocol):
    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> Json | None: ...

    async def create(self, manifest: Json) -> Json: ...

    async def replace(self, manifest: Json) -> Json: ...


@dataclass(frozen=True)
class ElectionSettings:
    name: str
    namespace: str
    identity: str
    lease_duration_s: float = 15.0

    @property
    def renew_every_s(self) -> float:
        return self.lease_duration_s / 3

    @property
    def renew_deadline_s(self) -> float:
        return self.lease_duration_s * 2 / 3


def _micro_time() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(
        self,
        store: LeaseStore,
        settings: ElectionSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_elected: Callable[[], None] | None = None,
        on_stopped: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.on_elected = on_elected
        self.on_stopped = on_stopped
        self._held = False
        self._renewed_at = 0.0
        self._observed: tuple[str, str] | None = None  # (holder, renewTime) last seen
        self._observed_at = 0.0
        self._acting = False  # what on_elected / on_stopped last said

    @property
    def is_leader(self) -> bool:
        """Whether this replica may act now: asked afresh each time, never a cached flag."""
        return self._held and self.clock() - self._renewed_at < self.settings.renew_deadline_s

    def time_left(self) -> float | None:
        """Seconds until the renew deadline (None: not leading)."""
        if not self.is_leader:
            return None
        return self._renewed_at + self.settings.renew_deadline_s - self.clock()

    @property
    def holder(self) -> str | None:
        return self._observed[0] if self._observed else None

    def _lease(self, spec: Json, resource_version: str | None = None) -> Json:
        meta: Json = {"name": self.settings.name, "namespace": self.settings.namespace}
        if resource_version:
            meta["resourceVersion"] = resource_version
        return {"apiVersion": LEASE_API, "kind": "Lease", "metadata": meta, "spec": spec}

    async def try_acquire_or_renew(self) -> bool:
        s = self.settings
        self._report()  # a deadline that passed while we were not looking ends the term now
        stamp = _micro_time()
        mine: Json = {
            "holderIdentity": s.identity,
            "leaseDurationSeconds": max(1, round(s.lease_duration_s)),
            "acquireTime": stamp,
            "renewTime": stamp,
            "leaseTransitions": 0,
        }
        try:
            lease = await self.store.get(LEASE_API, "Lease", s.namespace, s.name)
            if lease is None:
                sent = self.clock()
                await self.store.create(self._lease(mine))
                return self._won(sent)
            # When we saw the record: after the answer came, never before the question
            # (a reply delayed by a pause or a slow server may hold a newer record).
            seen = self.clock()
            spec = lease.get("spec") or {}
            holder = str(spec.get("holderIdentity") or "")
            record = (holder, str(spec.get("renewTime") or ""))
            if record != self._observed:
                self._observed, self._observed_at = record, seen
            expired = seen - self._observed_at > float(
                spec.get("leaseDurationSeconds") or s.lease_duration_s
            )
            if holder and holder != s.identity and not expired:
                self._held = False
                self._report()
                return False
            ours = holder == s.identity
            mine["acquireTime"] = spec.get("acquireTime") if ours else stamp
            transitions = int(spec.get("leaseTransitions") or 0)
            mine["leaseTransitions"] = transitions if ours else transitions + 1
            rv = (lease.get("metadata") or {}).get("resourceVersion")
            # The term runs from before the write: nobody starts counting before it lands.
            sent = self.clock()
            await self.store.replace(self._lease(mine, rv))
            return self._won(sent)
        except KubeApiError as err:
            if err.status != 409:
                log.warning("lease %s/%s: %s", s.namespace, s.name, err)
            return self._lost()

    def _won(self, sent: float) -> bool:
        # A term that lapsed before this renewal ends first, so that its passes (acting on
        # what they saw before someone else may have led) are cancelled, not continued.
        self._report()
        self._held, self._renewed_at = True, sent
        self._observed, self._observed_at = (self.settings.identity, ""), sent
        self._report()
        return True

    def _lost(self) -> bool:
        # Keep leading until the renew deadline passes: one failed write is not a loss.
        self._report()
        return self.is_leader

    def _report(self) -> None:
        """Tell the loop when leadership starts or ends (once per change)."""
        leading = self.is_leader
        if leading == self._acting:
            return
        self._acting = leading
        s = self.settings
        if leading:
            log.info("%s leads (lease %s)", s.identity, s.name)
            if self.on_elected is not None:
                self.on_elected()
        else:
            log.warning("%s stopped leading (lease %s)", s.identity, s.name)
            if self.on_stopped is not None:
                self.on_stopped()

    async def release(self) -> None:
        """Hand the Lease back (at shutdown) so a successor need not wait it out."""
        if not self._held:
            return
        s = self.settings
        self._held = False
        self._acting = False
        try:
            lease = await self.store.get(LEASE_API, "Lease", s.namespace, s.name)
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != s.identity:
                return
            spec = dict(lease.get("spec") or {})
            spec.update(holderIdentity=None, leaseDurationSeconds=1, renewTime=_micro_time())
            rv = (lease.get("metadata") or {}).get("resourceVersion")
            await self.store.replace(self._lease(spec, rv))
        except KubeApiError as err:
            log.warning("releasing lease %s/%s: %s", s.namespace, s.name, err)

    async def run(self) -> None:
        """Campaign and renew until cancelled.

        A leader's attempt is cut off at its renew deadline and its wait before the next
        one ends there, so the term ends on time even while the API server hangs.
        """
        s = self.settings
        while True:
            try:
                async with asyncio.timeout(self.time_left()):
                    await self.try_acquire_or_renew()
            except TimeoutError:
                log.warning("lease %s/%s: no answer before the renew deadline", s.namespace, s.name)
            self._report()
            left = self.time_left()
            await asyncio.sleep(s.renew_every_s if left is None else min(s.renew_every_s, left))


# ---- acting only while leading ---------------------------------------------------------


class NotLeading(Exception):
    """A pass was about to act after this replica stopped being sure that it leads.

    Deliberately neither a ``KubeApiError`` nor a ``DataPlaneError``: the reconciler
    handles those and carries on with its next action; this must end the pass.
    """


class _LeaderOnly:
    """A port whose writes first ask ``is_leader`` at that moment (``_check``)."""

    def __init__(self, is_leader: Callable[[], bool]) -> None:
        self._is_leader = is_leader

    def _check(self, what: str) -> None:
        if not self._is_leader():
            raise NotLeading(f"not the leader any more: not doing {what}")


class LeaderOnlyKube(_LeaderOnly):
    """``reconcile.ports.Kube`` for a pass under leader election: reads go through; each
    write first asks ``is_leader`` at that moment and raises ``NotLeading`` if not.

    A dry-run apply goes through like a read: the API server stores nothing and calls
    only admission webhooks without side effects, so a replica that stopped leading
    changes nothing by asking; what it would do next (the apply, the status, the
    event) is a write and is checked.
    """

    def __init__(self, kube: Kube, is_leader: Callable[[], bool]) -> None:
        super().__init__(is_leader)
        self._kube = kube

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> Json | None:
        return await self._kube.get(api_version, kind, namespace, name)

    async def list(self, api_version: str, kind: str, namespace: str, selector: str) -> list[Json]:
        return await self._kube.list(api_version, kind, namespace, selector)

    async def serves(self, api_version: str, kind: str) -> bool:
        return await self._kube.serves(api_version, kind)

    async def apply(self, manifest: Json, *, dry_run: bool = False) -> Json:
        if not dry_run:
            what = f"{manifest.get('kind')} {manifest.get('metadata', {}).get('name')}"
            self._check(f"apply {what}")
        return await self._kube.apply(manifest, dry_run=dry_run)

    async def patch(
        self, api_version: str, kind: str, namespace: str, name: str, patch: Json
    ) -> Json:
        self._check(f"patch {kind} {namespace}/{name}")
        return await self._kube.patch(api_version, kind, namespace, name, patch)

    async def patch_status(
        self, api_version: str, kind: str, namespace: str, name: str, status: Json
    ) -> None:
        self._check(f"write the status of {kind} {namespace}/{name}")
        await self._kube.patch_status(api_version, kind, namespace, name, status)

    async def delete(
        self, api_version: str, kind: str, namespace: str, name: str, *, uid: str | None = None
    ) -> None:
        self._check(f"delete {kind} {namespace}/{name}")
        await self._kube.delete(api_version, kind, namespace, name, uid=uid)

    async def emit_event(self, involved: Json, type_: str, reason: str, message: str) -> None:
        self._check(f"record event {reason}")
        await self._kube.emit_event(involved, type_, reason, message)


class LeaderOnlyDataPlane(_LeaderOnly):
    """``DataPlane`` for a pass under leader election: status reads go through; promote,
    follow and fence first ask ``is_leader`` at that moment."""

    def __init__(self, dataplane: DataPlane, is_leader: Callable[[], bool]) -> None:
        super().__init__(is_leader)
        self._dataplane = dataplane

    async def status(self, url: str, access: Access = PLAIN) -> NodeStatus:
        return await self._dataplane.status(url, access)

    async def promote(self, url: str, epoch: int, access: Access = PLAIN) -> None:
        self._check(f"promote {url}")
        await self._dataplane.promote(url, epoch, access)

    async def follow(self, url: str, primary_url: str, epoch: int, access: Access = PLAIN) -> None:
        self._check(f"make {url} follow {primary_url}")
        await self._dataplane.follow(url, primary_url, epoch, access)

    async def fence(self, url: str, epoch: int, access: Access = PLAIN) -> None:
        self._check(f"fence {url}")
        await self._dataplane.fence(url, epoch, access)
