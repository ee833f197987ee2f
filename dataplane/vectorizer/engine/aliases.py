"""Collection aliases: other names for a collection, moved atomically.

An alias is used wherever a collection's name is (reads and writes), which lets an
application switch from one collection to a rebuilt one in one step (Qdrant's aliases).
A batch of actions is checked whole against the current names and logged as the list of
changes it makes (``plan``); replay applies the same changes (``apply``). Every log
record of a point write names the collection itself, so a replay after an alias moved
writes where the write went.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass

from vectorizer.engine import validation
from vectorizer.errors import AliasNotFound, CollectionExists, CollectionNotFound

# One logged change: the alias now names this collection, or (None) no longer exists.
Change = dict[str, str | None]


@dataclass(frozen=True)
class CreateAlias:
    """``alias`` names ``collection`` (moved there if it named another)."""

    alias: str
    collection: str


@dataclass(frozen=True)
class DeleteAlias:
    """``alias`` no longer exists (nothing to do if it does not)."""

    alias: str


@dataclass(frozen=True)
class RenameAlias:
    """The alias ``old`` is called ``new`` from now on."""

    old: str
    new: str


AliasAction = CreateAlias | DeleteAlias | RenameAlias


def plan(
    actions: list[AliasAction],
    aliases: Mapping[str, str],
    collections: Container[str],
    field: str = "actions",
) -> list[Change]:
    """The changes ``actions`` make, in order, checked whole: if one is wrong, it raises
    (naming ``field[i]``) and nothing is to change."""
    after = dict(aliases)
    changes: list[Change] = []
    for i, action in enumerate(actions):
        at = f"{field}[{i}]"
        if isinstance(action, CreateAlias):
            _check_new_name(action.alias, collections, f"{at}.alias_name")
            if action.collection not in collections:
                raise CollectionNotFound(
                    f"collection {action.collection!r} does not exist",
                    field=f"{at}.collection_name",
                )
            after[action.alias] = action.collection
            changes.append({"alias": action.alias, "collection": action.collection})
        elif isinstance(action, DeleteAlias):
            after.pop(action.alias, None)
            changes.append({"alias": action.alias, "collection": None})
        else:
            target = after.pop(action.old, None)
            if target is None:
                raise AliasNotFound(
                    f"alias {action.old!r} does not exist", field=f"{at}.old_alias_name"
                )
            _check_new_name(action.new, collections, f"{at}.new_alias_name")
            after[action.new] = target
            changes.append({"alias": action.old, "collection": None})
            changes.append({"alias": action.new, "collection": target})
    return changes


def _check_new_name(name: str, collections: Container[str], field: str) -> None:
    validation.collection_name(name, field)
    if name in collections:
        raise CollectionExists(
            f"{name!r} is the name of a collection; an alias cannot take it", field=field
        )


def apply(aliases: dict[str, str], changes: list[Change]) -> None:
    """Make the logged ``changes`` to ``aliases`` (alias -> collection), in order."""
    for change in changes:
        alias, target = change["alias"], change["collection"]
        assert alias is not None
        if target is None:
            aliases.pop(alias, None)
        else:
            aliases[alias] = target
