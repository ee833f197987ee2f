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

from vectorizer_operator.reconcile.ports import Json, KubeApiError

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
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.on_elected = on_elected
        self._held = False
        self._renewed_at = 0.0
        self._observed: tuple[str, str] | None = None  # (holder, renewTime) last seen
        self._observed_at = 0.0

    @property
    def is_leader(self) -> bool:
        return self._held and self.clock() - self._renewed_at < self.settings.renew_deadline_s

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
        now = self.clock()
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
                await self.store.create(self._lease(mine))
                return self._won(now, became=True)
            spec = lease.get("spec") or {}
            holder = str(spec.get("holderIdentity") or "")
            record = (holder, str(spec.get("renewTime") or ""))
            if record != self._observed:
                self._observed, self._observed_at = record, now
            expired = now - self._observed_at > float(
                spec.get("leaseDurationSeconds") or s.lease_duration_s
            )
            if holder and holder != s.identity and not expired:
                self._held = False
                return False
            ours = holder == s.identity
            mine["acquireTime"] = spec.get("acquireTime") if ours else stamp
            transitions = int(spec.get("leaseTransitions") or 0)
            mine["leaseTransitions"] = transitions if ours else transitions + 1
            rv = (lease.get("metadata") or {}).get("resourceVersion")
            await self.store.replace(self._lease(mine, rv))
            return self._won(now, became=not self._held)
        except KubeApiError as err:
            if err.status != 409:
                log.warning("lease %s/%s: %s", s.namespace, s.name, err)
            return self._lost()

    def _won(self, now: float, *, became: bool) -> bool:
        was_leader = self.is_leader
        self._held, self._renewed_at = True, now
        self._observed, self._observed_at = (self.settings.identity, ""), now
        if became or not was_leader:
            log.info("%s leads (lease %s)", self.settings.identity, self.settings.name)
            if self.on_elected is not None:
                self.on_elected()
        return True

    def _lost(self) -> bool:
        # Keep leading until the renew deadline passes: one failed write is not a loss.
        return self.is_leader

    async def release(self) -> None:
        """Hand the Lease back (at shutdown) so a successor need not wait it out."""
        if not self._held:
            return
        s = self.settings
        self._held = False
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
        """Campaign and renew until cancelled."""
        while True:
            await self.try_acquire_or_renew()
            await asyncio.sleep(self.settings.renew_every_s)
