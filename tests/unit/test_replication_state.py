from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from vectorizer.replication import state
from vectorizer.replication.state import (
    History,
    NodeState,
    Role,
    divergence,
    epoch_at,
    history_json,
    parse_history,
)


def line(*entries: tuple[int, int]) -> History:
    """A history of one timeline per epoch ("t<epoch>"), as one line of promotions."""
    return tuple((e, s, f"t{e}") for e, s in entries)


def test_epoch_at_steps_through_history() -> None:
    h = line((1, 1), (2, 101), (4, 150))
    got = [epoch_at(h, s)[0] for s in (0, 1, 100, 101, 149, 150, 10**6)]
    assert got == [0, 1, 1, 2, 2, 4, 4]
    assert epoch_at(h, 120) == (2, "t2") and epoch_at(h, 0) == (0, "")


@pytest.mark.parametrize(
    ("mine", "theirs", "my_seq", "expected"),
    [
        ((), (), 0, None),  # fresh replica, fresh primary
        ((), line((1, 1)), 0, None),  # fresh replica joins
        (line((1, 1)), line((1, 1), (2, 101)), 100, None),  # had exactly what epoch 1 wrote
        (line((1, 1)), line((1, 1), (2, 101)), 105, 100),  # got records epoch 1 never kept
        (line((1, 1)), line((1, 1), (2, 101)), 120, 100),  # the old primary, rejoining
        (line((1, 1), (3, 50)), line((1, 1), (2, 40)), 60, 39),  # two different branches
        (line((1, 1), (2, 40)), line((1, 1), (2, 40), (3, 90)), 80, None),  # behind, same line
        (line((1, 1), (2, 40)), line((1, 1), (2, 40)), 70, None),  # same epoch, same line
        # A primary back on an empty disk: epoch 1 from sequence 1 again, another timeline.
        (((1, 1, "old"),), ((1, 1, "new"),), 50, 0),
        (((1, 1, "a"), (2, 9, "b")), ((1, 1, "a"), (2, 9, "c")), 20, 8),  # one epoch twice
        # Histories from before timelines ("") match any: as compared before them.
        (((1, 1, ""),), ((1, 1, "new"),), 50, None),
        (((1, 1, ""), (3, 50, "")), line((1, 1), (2, 40)), 60, 39),
    ],
)
def test_divergence(
    mine: state.History, theirs: state.History, my_seq: int, expected: int | None
) -> None:
    assert divergence(mine, theirs, my_seq) == expected


def test_transitions_only_raise_the_epoch() -> None:
    s = NodeState(Role.REPLICA)
    p = s.promoted(3, 51)
    assert (p.role, p.epoch, [h[:2] for h in p.history]) == (Role.PRIMARY, 3, [(3, 51)])
    again = s.promoted(3, 51)  # the same promotion made twice: two timelines
    assert again.history[0][2] != p.history[0][2] and len(p.history[0][2]) == 12
    f = p.following("http://x", 2)
    assert f.role is Role.REPLICA and f.epoch == 3 and f.primary_url == "http://x"
    assert f.fenced(1).epoch == 3 and f.fenced(7).epoch == 7


def test_state_persists_atomically(tmp_path: Path) -> None:
    assert state.load(tmp_path) is None
    s = NodeState(Role.PRIMARY, 2, line((1, 1), (2, 9)), None, "n1")
    state.save(tmp_path, s)
    assert state.load(tmp_path) == s
    assert not (tmp_path / (state.FILE + ".tmp")).exists()


def test_a_state_file_from_before_timelines_still_loads(tmp_path: Path) -> None:
    raw = '{"role": "replica", "epoch": 2, "history": [[1, 1], [2, 9]], "node_id": "n1"}'
    (tmp_path / state.FILE).write_text(raw)
    loaded = state.load(tmp_path)
    assert loaded is not None and loaded.history == ((1, 1, ""), (2, 9, ""))
    with_ids = {"history": [[1, 1], [2, 9]], "timelines": ["x", "y"]}
    assert parse_history(with_ids) == ((1, 1, "x"), (2, 9, "y"))
    assert parse_history({**with_ids, "timelines": ["x"]}) == ((1, 1, ""), (2, 9, ""))


def test_a_state_file_with_ids_inside_its_entries_still_loads(tmp_path: Path) -> None:
    """Six commits of 2026-11-30 (dffb8bd to 953466a) wrote [epoch, sequence, id]: a
    node last run on them could not start ("too many values to unpack")."""
    raw = '{"role": "primary", "epoch": 2, "history": [[1, 1, "a"], [2, 9, "b"]], "node_id": "n"}'
    (tmp_path / state.FILE).write_text(raw)
    loaded = state.load(tmp_path)
    assert loaded is not None and loaded.history == ((1, 1, "a"), (2, 9, "b"))
    beside = {"history": [[1, 1, "a"]], "timelines": ["x"]}
    assert parse_history(beside) == ((1, 1, "x"),)  # (the ids beside win)


def test_an_unreadable_state_file_is_named(tmp_path: Path) -> None:
    (tmp_path / state.FILE).write_text('{"role": "primary", "epoch": 1, "history": [[1]]}')
    with pytest.raises(ValueError, match=r"cannot read the replication state in .*replication"):
        state.load(tmp_path)


def test_the_history_is_written_as_before_with_the_ids_beside_it(tmp_path: Path) -> None:
    # Nodes and operators from before timelines read "history" as [epoch, sequence] pairs.
    s = NodeState(Role.PRIMARY, 2, line((1, 1), (2, 9)), None, "n1")
    state.save(tmp_path, s)
    raw = orjson.loads((tmp_path / state.FILE).read_bytes())
    assert raw["history"] == [[1, 1], [2, 9]] and raw["timelines"] == ["t1", "t2"]
    assert all(len(entry) == 2 for entry in history_json(s.history)["history"])


def test_a_follower_adopts_its_primarys_history_only_as_far_as_it_holds_records() -> None:
    """A replica at 100 following a primary whose epoch 2 began at 4001 holds no record
    of epoch 2: promoted, its own epoch begins at 101, after epoch 1 (not after 2, which
    would hide from a node at 600 that records 101-600 differ)."""
    from types import SimpleNamespace

    from vectorizer.replication.follower import Follower, FollowerConfig

    adopted: list[tuple[int, state.History]] = []
    store = SimpleNamespace(sequence=100)
    follower = Follower(
        store,  # type: ignore[arg-type]
        "http://primary",
        FollowerConfig("c", "http://c", 1.0, 1.0, 1.0),
        node=lambda: (1, ()),
        adopt=lambda epoch, history: adopted.append((epoch, history)),
    )
    follower._their, follower._adopted = (2, line((1, 1), (2, 4001))), None
    follower._adopt_held()
    assert adopted == [(2, line((1, 1)))]
    promoted = NodeState(role=Role.REPLICA, epoch=2, history=adopted[-1][1]).promoted(3, 101)
    assert [h[:2] for h in promoted.history] == [(1, 1), (3, 101)]
    assert divergence(line((1, 1)), promoted.history, 600) == 100  # a node at 600 resyncs
    store.sequence = 4001  # its first record of epoch 2 applied
    follower._adopt_held()
    assert adopted[-1] == (2, line((1, 1), (2, 4001))) and len(adopted) == 2
