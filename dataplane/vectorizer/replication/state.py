"""A node's replication identity: role, epoch and history, persisted; pure decisions on them.

The epoch only grows: +1 at every promotion. The history lists ``(epoch, first
sequence)`` for each epoch this node's data went through, so two nodes can tell where
their logs part ways: the records a node holds beyond the point where the primary's
next epoch began were never part of the primary's log.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson

FILE = "replication.json"


class Role(StrEnum):
    PRIMARY = "primary"
    REPLICA = "replica"
    FENCED = "fenced"


History = tuple[tuple[int, int], ...]


def new_node_id() -> str:
    return uuid.uuid4().hex[:12]


@dataclass(frozen=True)
class NodeState:
    role: Role
    epoch: int = 0
    history: History = ()
    primary_url: str | None = None
    node_id: str = field(default_factory=new_node_id)

    def to_json(self) -> dict[str, Any]:
        return {
            "role": self.role.value,
            "epoch": self.epoch,
            "history": [list(h) for h in self.history],
            "primary_url": self.primary_url,
            "node_id": self.node_id,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> NodeState:
        return cls(
            role=Role(raw["role"]),
            epoch=int(raw["epoch"]),
            history=tuple((int(e), int(s)) for e, s in raw["history"]),
            primary_url=raw.get("primary_url"),
            node_id=str(raw["node_id"]),
        )

    def promoted(self, epoch: int, next_sequence: int) -> NodeState:
        """Primary at ``epoch``; its records from ``next_sequence`` on belong to that epoch."""
        return replace(
            self,
            role=Role.PRIMARY,
            epoch=epoch,
            history=(*self.history, (epoch, next_sequence)),
            primary_url=None,
        )

    def following(self, primary_url: str, epoch: int) -> NodeState:
        return replace(
            self, role=Role.REPLICA, epoch=max(self.epoch, epoch), primary_url=primary_url
        )

    def fenced(self, epoch: int | None = None) -> NodeState:
        return replace(self, role=Role.FENCED, epoch=max(self.epoch, epoch or 0))


def load(data_dir: Path) -> NodeState | None:
    path = data_dir / FILE
    if not path.exists():
        return None
    return NodeState.from_json(orjson.loads(path.read_bytes()))


def save(data_dir: Path, state: NodeState) -> None:
    """Write atomically: temp file, fsync, rename, fsync the folder."""
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = data_dir / (FILE + ".tmp")
    with open(tmp, "wb") as f:
        f.write(orjson.dumps(state.to_json(), option=orjson.OPT_INDENT_2))
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, data_dir / FILE)
    fd = os.open(data_dir, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def epoch_at(history: History, sequence: int) -> int:
    """The epoch that wrote record ``sequence`` according to ``history`` (0 before any)."""
    epoch = 0
    for e, first in history:
        if first > sequence:
            break
        epoch = e
    return epoch


def divergence(mine: History, theirs: History, my_sequence: int) -> int | None:
    """Where my log leaves a primary's whose history is ``theirs``.

    None: every record I hold is also in the primary's log, so I can continue after
    ``my_sequence``. Otherwise the last shared sequence: my records after it were never
    written by the primary's timeline and must be discarded.
    """
    boundaries = sorted({first for _, first in mine} | {first for _, first in theirs})
    for b in boundaries:
        if b > my_sequence:
            break
        if epoch_at(mine, b) != epoch_at(theirs, b):
            return b - 1
    return None


def last_epoch(history: History) -> int:
    """The epoch of the newest records in a timeline (0 for an empty one)."""
    return history[-1][0] if history else 0
