"""Compact builders of observations for the decision tables."""

from __future__ import annotations

from typing import Any

from tests.operator.conftest import make_cluster
from vectorizer_operator import naming
from vectorizer_operator.dataplane_client import NodeStatus
from vectorizer_operator.reconcile.observe import (
    ClaimView,
    Instance,
    Observation,
    PodView,
    StatefulSetView,
)

NAME = "vz"


def url(ordinal: int) -> str:
    return naming.advertise_url(NAME, "db", naming.pod(NAME, ordinal), "cluster.local")


def node(
    role: str = "replica",
    *,
    epoch: int = 1,
    seq: int = 10,
    follows: int | None = None,
    lag: int | None = 0,
    connected: bool | None = True,
    history: tuple[tuple[int, int], ...] | None = None,
) -> NodeStatus:
    if role == "replica" and follows is None:
        lag, connected = None, None
    return NodeStatus(
        role=role,
        epoch=epoch,
        sequence=seq,
        primary=url(follows) if follows is not None else None,
        history=history if history is not None else (((epoch, 1),) if epoch else ()),
        ready=True,
        lag_operations=lag if role == "replica" else None,
        connected=connected if role == "replica" else None,
    )


def inst(
    ordinal: int,
    n: NodeStatus | None = None,
    *,
    pod: bool = True,
    ready: bool = True,
    revision: str = "rev1",
    labels: dict[str, str] | None = None,
    terminating: bool = False,
) -> Instance:
    name = naming.pod(NAME, ordinal)
    view = None
    if pod:
        view = PodView(
            name=name,
            ordinal=ordinal,
            ip=f"10.0.0.{ordinal + 1}",
            phase="Running",
            ready=ready,
            terminating=terminating,
            labels={
                **naming.common_labels(NAME),  # the pod template's
                naming.LABEL_REVISION: revision,
                **(labels or {}),
            },
            revision=revision,
            uid=f"uid-{name}",
        )
    return Instance(name, ordinal, view, n, None if n else ("no answer" if pod else None))


def primary(ordinal: int = 0, *, epoch: int = 1, seq: int = 10) -> Instance:
    return inst(ordinal, node("primary", epoch=epoch, seq=seq))


def replica(
    ordinal: int, follows: int = 0, *, epoch: int = 1, seq: int = 10, lag: int = 0, **kw: Any
) -> Instance:
    return inst(ordinal, node("replica", epoch=epoch, seq=seq, follows=follows, lag=lag), **kw)


def observe(
    *instances: Instance,
    status: dict[str, Any] | None = None,
    replicas: int | None = None,
    update_revision: str = "rev1",
    elapsed: float = 0.0,
    allowed: bool = True,
    claims: tuple[ClaimView, ...] = (),
    settled: bool = True,
    **spec: Any,
) -> Observation:
    spec.setdefault("instances", len(instances))
    cluster = make_cluster(status=status or {}, **spec)
    sts = StatefulSetView(
        replicas=replicas if replicas is not None else spec["instances"],
        generation=2,
        observed_generation=2 if settled else 1,
        update_revision=update_revision,
        current_revision="rev1",
    )
    return Observation(
        cluster=cluster,
        statefulset=sts,
        instances=tuple(sorted(instances, key=lambda i: i.ordinal)),
        claims=claims,
        switchover_elapsed_s=elapsed,
        switchover_allowed=allowed,
    )


def healthy_status(p: int = 0, epoch: int = 1, **extra: Any) -> dict[str, Any]:
    name = naming.pod(NAME, p)
    return {
        "currentPrimary": name,
        "targetPrimary": name,
        "epoch": epoch,
        "phase": "Healthy",
        **extra,
    }
