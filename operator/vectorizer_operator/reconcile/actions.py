"""What a decision asks the reconciler to do; each action is idempotent."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class RecordTargetPrimary:
    """Write ``status.targetPrimary`` before acting on it (one writer per decision)."""

    instance: str


@dataclass(frozen=True)
class Promote:
    instance: str
    epoch: int


@dataclass(frozen=True)
class Follow:
    instance: str
    primary: str
    primary_url: str
    epoch: int


@dataclass(frozen=True)
class Fence:
    instance: str
    epoch: int


@dataclass(frozen=True)
class SetPodLabels:
    """Labels to set on a pod; a None value removes the label."""

    pod: str
    labels: Mapping[str, str | None]


@dataclass(frozen=True)
class DeletePod:
    """Delete a pod so that the StatefulSet recreates it from the current revision."""

    pod: str
    reason: str


@dataclass(frozen=True)
class ResizeClaim:
    claim: str
    size: str


Action = RecordTargetPrimary | Promote | Follow | Fence | SetPodLabels | DeletePod | ResizeClaim


def describe(action: Action) -> str:
    """A short human description, for logs and the status."""
    match action:
        case RecordTargetPrimary(instance=i):
            return f"record {i} as target primary"
        case Promote(instance=i, epoch=e):
            return f"promote {i} at epoch {e}"
        case Follow(instance=i, primary=p):
            return f"point {i} at {p}"
        case Fence(instance=i, epoch=e):
            return f"fence {i} at epoch {e}"
        case SetPodLabels(pod=p):
            return f"label {p}"
        case DeletePod(pod=p):
            return f"delete {p}"
        case ResizeClaim(claim=c, size=size):
            return f"resize {c} to {size}"
