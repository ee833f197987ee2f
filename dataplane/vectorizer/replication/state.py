"""A node's replication identity: role, epoch and history, persisted; pure decisions on them.

The epoch only grows: +1 at every promotion. The history lists ``(epoch, first
sequence, timeline)`` for each epoch this node's data went through, so two nodes can
tell where their logs part ways: the records a node holds beyond the point where the
primary's next epoch began were never part of the primary's log. ``timeline`` is a
random id drawn at each promotion: two promotions to one epoch at one sequence (a
primary back on an empty disk, epoch 1 again from sequence 1) are still told apart.

Stored and sent as before, ``history`` a list of ``[epoch, first sequence]``, with the
ids beside it in ``timelines`` (one each): nodes and operators that predate timelines
read what they always did, and a history from them, with no ids, has ``""``, which
matches any.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeGuard

import orjson

FILE = "replication.json"
# The largest epoch: it travels as a 64-bit signed integer (JSON, the operator's status).
EPOCH_MAX = 2**63 - 1
# The most a replica's hello may be ahead of this node's epoch and still fence it. Each
# promotion goes one past the highest epoch seen, so a node that missed a million of them
# is not one to expect; a hello further ahead is no replica's (a forged one at EPOCH_MAX
# fenced a primary for good: no promotion could go past it).
EPOCH_STEP_MAX = 1 << 20


def valid_epoch(value: Any) -> TypeGuard[int]:
    """Whether ``value`` is an epoch: an integer from 0 to ``EPOCH_MAX`` (not a bool,
    not a float or a string that would convert)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= EPOCH_MAX


class Role(StrEnum):
    PRIMARY = "primary"
    REPLICA = "replica"
    FENCED = "fenced"


Entry = tuple[int, int, str]  # (epoch, its first sequence, its timeline's id)
History = tuple[Entry, ...]


def new_node_id() -> str:
    return uuid.uuid4().hex[:12]


def parse_history(raw: Mapping[str, Any]) -> History:
    """The history in a message or a state file (``history`` and ``timelines``; ids
    missing or not one per entry are unknown). Entries of three, ``[epoch, first
    sequence, timeline]``, are what six commits of 2026-11-30 wrote (dffb8bd to
    953466a, which moved the ids beside): still read, their ids taken when no
    ``timelines`` come beside them."""
    entries = raw.get("history") or []
    timelines = raw.get("timelines")
    if not isinstance(timelines, list) or len(timelines) != len(entries):
        timelines = [entry[2] if len(entry) == 3 else "" for entry in entries]
    return tuple((int(e), int(s), str(t)) for (e, s, *_), t in zip(entries, timelines, strict=True))


def history_json(history: History) -> dict[str, Any]:
    """``history`` and ``timelines`` of a message or a state file."""
    return {"history": [[e, s] for e, s, _ in history], "timelines": [t for *_, t in history]}


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
            **history_json(self.history),
            "primary_url": self.primary_url,
            "node_id": self.node_id,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> NodeState:
        return cls(
            role=Role(raw["role"]),
            epoch=int(raw["epoch"]),
            history=parse_history(raw),
            primary_url=raw.get("primary_url"),
            node_id=str(raw["node_id"]),
        )

    def promoted(self, epoch: int, next_sequence: int) -> NodeState:
        """Primary at ``epoch``; its records from ``next_sequence`` on belong to that epoch."""
        return replace(
            self,
            role=Role.PRIMARY,
            epoch=epoch,
            history=(*self.history, (epoch, next_sequence, new_node_id())),
            primary_url=None,
        )

    def restarted(self, next_sequence: int) -> NodeState:
        """A primary starting again: its records from ``next_sequence`` on are a new
        timeline of its epoch. Records it streamed but lost in a crash (past its log's
        last fsync) may still be on replicas; they part from this timeline there and are
        replaced by a full sync, not streamed on from as if they were the primary's."""
        kept = self.history
        if kept and kept[-1][1] == next_sequence:  # nothing written since: a new id only
            kept = kept[:-1]
        return replace(self, history=(*kept, (self.epoch, next_sequence, new_node_id())))

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
    try:
        return NodeState.from_json(orjson.loads(path.read_bytes()))
    except (ValueError, TypeError, KeyError) as exc:  # (orjson's errors are ValueErrors)
        raise ValueError(f"cannot read the replication state in {path}: {exc!r}") from exc


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


def epoch_at(history: History, sequence: int) -> tuple[int, str]:
    """The epoch (and its timeline) that wrote record ``sequence`` according to
    ``history`` ((0, "") before any)."""
    epoch: tuple[int, str] = (0, "")
    for e, first, timeline in history:
        if first > sequence:
            break
        epoch = (e, timeline)
    return epoch


def _same(a: tuple[int, str], b: tuple[int, str]) -> bool:
    """One epoch of one timeline (an unknown timeline, from an older node, matches)."""
    return a[0] == b[0] and (a[1] == b[1] or not a[1] or not b[1])


def divergence(mine: History, theirs: History, my_sequence: int) -> int | None:
    """Where my log leaves a primary's whose history is ``theirs``.

    None: every record I hold is also in the primary's log, so I can continue after
    ``my_sequence``. Otherwise the last shared sequence: my records after it were never
    written by the primary's timeline and must be discarded.
    """
    boundaries = sorted({h[1] for h in mine} | {h[1] for h in theirs})
    for b in boundaries:
        if b > my_sequence:
            break
        if not _same(epoch_at(mine, b), epoch_at(theirs, b)):
            return b - 1
    return None


def last_epoch(history: History) -> int:
    """The epoch of the newest records in a timeline (0 for an empty one)."""
    return history[-1][0] if history else 0
