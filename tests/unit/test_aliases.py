"""Collection aliases in the store: checked whole, logged as changes, replayed, kept in
snapshots, and every write through an alias logged under its collection."""

from __future__ import annotations

from pathlib import Path

import pytest

from vectorizer.engine.aliases import CreateAlias, DeleteAlias, RenameAlias
from vectorizer.engine.store import Store, StoreOptions
from vectorizer.engine.wal import FsyncPolicy
from vectorizer.errors import (
    AliasNotFound,
    CollectionExists,
    CollectionNotFound,
    ValidationError,
)


async def fresh(path: Path) -> Store:
    s = Store(path, StoreOptions(fsync=FsyncPolicy("never"), snapshot_interval_s=0))
    await s.open()
    return s


async def two_collections(path: Path) -> Store:
    s = await fresh(path)
    await s.create_collection("blue", {"dimension": 2})
    await s.create_collection("green", {"dimension": 2})
    return s


async def test_an_alias_reads_and_writes_its_collection(tmp_path: Path) -> None:
    s = await two_collections(tmp_path)
    await s.update_aliases([CreateAlias("prod", "blue")])
    await s.upsert("prod", [1], [[1, 0]], [{"v": "blue"}])
    assert s.collection("prod") is s.collection("blue") and len(s.collection("blue")) == 1
    assert s.aliases() == {"prod": "blue"} and s.aliases("green") == {}
    # Switching is one step: the next write through the alias lands in green.
    await s.update_aliases([DeleteAlias("prod"), CreateAlias("prod", "green")])
    await s.upsert("prod", [2], [[0, 1]], [{"v": "green"}])
    await s.set_payload("prod", [2], {"more": 1}, overwrite=False)
    assert 2 in s.collection("green") and 2 not in s.collection("blue")
    await s.close(take_snapshot=False)

    # Replayed after the alias moved, each write lands where it went.
    r = await fresh(tmp_path)
    assert r.aliases() == {"prod": "green"}
    assert 1 in r.collection("blue") and 1 not in r.collection("green")
    point = r.collection("green").get(2)
    assert point is not None and point.payload == {"v": "green", "more": 1}
    await r.close(take_snapshot=False)


async def test_actions_are_checked_whole_and_nothing_changes_on_a_bad_one(tmp_path: Path) -> None:
    s = await two_collections(tmp_path)
    await s.update_aliases([CreateAlias("a", "blue")])
    seq = s.sequence
    bad = [
        (
            [CreateAlias("b", "blue"), CreateAlias("c", "nope")],
            CollectionNotFound,
            "actions[1].collection_name",
        ),
        ([CreateAlias("green", "blue")], CollectionExists, "actions[0].alias_name"),
        ([RenameAlias("missing", "x")], AliasNotFound, "actions[0].old_alias_name"),
        ([RenameAlias("a", "blue")], CollectionExists, "actions[0].new_alias_name"),
        ([CreateAlias("../x", "blue")], ValidationError, "actions[0].alias_name"),
    ]
    for actions, error, field in bad:
        with pytest.raises(error) as raised:
            await s.update_aliases(actions)  # type: ignore[arg-type]
        assert raised.value.field == field
    assert s.sequence == seq and s.aliases() == {"a": "blue"}
    # A rename moves the alias, deleting a missing one is no error (as in Qdrant), and
    # creating an existing alias moves it.
    await s.update_aliases([RenameAlias("a", "b"), DeleteAlias("never"), CreateAlias("c", "blue")])
    await s.update_aliases([CreateAlias("c", "green")])
    assert s.aliases() == {"b": "blue", "c": "green"}
    await s.close(take_snapshot=False)


async def test_collections_and_aliases_never_share_a_name(tmp_path: Path) -> None:
    s = await two_collections(tmp_path)
    await s.update_aliases([CreateAlias("prod", "blue"), CreateAlias("live", "blue")])
    with pytest.raises(CollectionExists, match="is an alias of collection 'blue'"):
        await s.create_collection("prod", {"dimension": 2})
    # Deleting goes by the collection's own name only, and takes its aliases along.
    with pytest.raises(CollectionNotFound, match="is an alias of 'blue'"):
        await s.delete_collection("prod")
    assert len(s.collections()) == 2
    await s.delete_collection("blue")
    assert s.aliases() == {}
    with pytest.raises(CollectionNotFound):
        s.collection("prod")
    await s.create_collection("prod", {"dimension": 2})  # the name is free again
    await s.close(take_snapshot=False)


async def test_aliases_are_kept_in_snapshots(tmp_path: Path) -> None:
    s = await two_collections(tmp_path)
    await s.update_aliases([CreateAlias("prod", "blue")])
    await s.snapshot()
    await s.update_aliases([CreateAlias("next", "green")])  # in the log after it
    await s.close(take_snapshot=False)
    r = await fresh(tmp_path)
    assert r.aliases() == {"next": "green", "prod": "blue"}
    await r.close(take_snapshot=True)
    again = await fresh(tmp_path)  # from the shutdown snapshot alone
    assert again.aliases() == {"next": "green", "prod": "blue"}
    await again.close(take_snapshot=False)
