"""Everything the running operator holds: clients, reconciler, loop, leader election.

Built by the kopf startup handler, kept in kopf's ``memo``, stopped at cleanup. It has
no kopf imports, so tests start it with fakes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from vectorizer.tasks import stop
from vectorizer_operator.builders import BuildOptions
from vectorizer_operator.dataplane_client import DataPlane, ReplicationClient
from vectorizer_operator.kube import KubeClient
from vectorizer_operator.leader import (
    ElectionSettings,
    LeaderElector,
    LeaderOnlyDataPlane,
    LeaderOnlyKube,
    LeaseStore,
)
from vectorizer_operator.loop import ClusterLoop, Key
from vectorizer_operator.metrics import MetricsServer, OperatorMetrics
from vectorizer_operator.reconcile.cluster import Reconciler, ReconcileSettings
from vectorizer_operator.reconcile.ports import Kube
from vectorizer_operator.settings import OperatorSettings

log = logging.getLogger(__name__)


class OperatorUnhealthy(Exception):
    """Raised by the liveness probe when a background task has died."""


def reconcile_settings(settings: OperatorSettings) -> ReconcileSettings:
    return ReconcileSettings(
        build=BuildOptions(
            default_image=settings.default_image, cluster_domain=settings.cluster_domain
        ),
        pod_address=settings.pod_address,
        max_catchup_lag=settings.max_catchup_lag,
        switchover_timeout_s=settings.switchover_timeout_s,
        resync_s=settings.resync_s,
    )


@dataclass
class Runtime:
    settings: OperatorSettings
    loop: ClusterLoop
    elector: LeaderElector | None
    metrics: OperatorMetrics = field(default_factory=OperatorMetrics)
    closers: list[Callable[[], Any]] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def build(
        cls,
        settings: OperatorSettings,
        keys: Callable[[], Iterable[Key]],
        *,
        kube: Kube,
        dataplane: DataPlane,
        leases: LeaseStore | None = None,
    ) -> Runtime:
        elector: LeaderElector | None = None
        if not settings.standalone and leases is not None:
            elector = LeaderElector(
                leases,
                ElectionSettings(
                    name=settings.peering_name,
                    namespace=settings.lease_namespace,
                    identity=settings.identity,
                    lease_duration_s=settings.lease_duration_s,
                ),
            )
        is_leader = (lambda: True) if elector is None else (lambda: elector.is_leader)
        if elector is not None:
            # Every write of a pass asks whether we still lead at that moment: a pass
            # resumed after a pause runs before the election task can end the term.
            kube = LeaderOnlyKube(kube, is_leader)
            dataplane = LeaderOnlyDataPlane(dataplane, is_leader)
        reconciler = Reconciler(kube, dataplane, reconcile_settings(settings))
        metrics = OperatorMetrics()
        loop = ClusterLoop(reconciler.reconcile, keys=keys, is_leader=is_leader, metrics=metrics)
        if elector is not None:
            elector.on_elected = loop.wake_all
            elector.on_stopped = loop.cancel_running
        return cls(settings, loop, elector, metrics)

    @classmethod
    async def connect(
        cls, settings: OperatorSettings, keys: Callable[[], Iterable[Key]]
    ) -> Runtime:
        """The real thing: API client, data-plane client, then start."""
        kube = await KubeClient.connect(identity=settings.identity)
        dataplane = ReplicationClient(timeout=settings.dataplane_timeout_s)
        runtime = cls.build(settings, keys, kube=kube, dataplane=dataplane, leases=kube)
        runtime.closers += [dataplane.close, kube.close]
        await runtime.serve_metrics()
        runtime.start()
        return runtime

    async def serve_metrics(self) -> MetricsServer | None:
        """Serve ``GET /metrics`` on the configured address and port (port 0: not at all)."""
        if not self.settings.metrics_port:
            return None
        server = MetricsServer(
            self.metrics, host=self.settings.metrics_address, port=self.settings.metrics_port
        )
        try:
            await server.start()
        except OSError as err:
            # Metrics are not worth an operator that does not run (e.g. the port is taken
            # by another operator process on the same host): say so and carry on.
            log.error("cannot serve metrics on %s:%d: %s", server.host, server.port, err)
            await server.stop()
            return None
        self.closers.append(server.stop)
        log.info("metrics on %s:%d/metrics", server.host, server.port)
        return server

    def start(self) -> None:
        if self.elector is not None:
            self.tasks.append(asyncio.create_task(self.elector.run(), name="leader election"))
        self.tasks.append(asyncio.create_task(self.loop.run(), name="reconcile loop"))

    async def stop(self) -> None:
        await stop(*self.tasks)
        self.tasks.clear()
        if self.elector is not None:
            await self.elector.release()
        for close in self.closers:
            result = close()
            if asyncio.iscoroutine(result):
                await result

    def wake(self, namespace: str | None, name: str | None) -> None:
        if namespace and name:
            self.loop.wake(namespace, name)

    def health(self) -> dict[str, Any]:
        for task in self.tasks:
            if task.done():
                raise OperatorUnhealthy(f"{task.get_name()} stopped")
        leader = True if self.elector is None else self.elector.is_leader
        return {
            "leader": leader,
            "holder": None if self.elector is None else self.elector.holder,
            "passes": self.loop.passes,
        }
