"""Aliases: other names for collections, changed in one step (the body is Qdrant's)."""

from __future__ import annotations

from aiohttp import web

from vectorizer.engine.aliases import AliasAction, CreateAlias, DeleteAlias, RenameAlias
from vectorizer.errors import ValidationError
from vectorizer.server.http import json_response, read_as
from vectorizer.server.schemas import ChangeAliases
from vectorizer.server.views.common import store


def alias_actions(body: ChangeAliases) -> list[AliasAction]:
    """The engine's alias actions; each operation must hold exactly one of the three."""
    out: list[AliasAction] = []
    for i, op in enumerate(body.actions):
        given = [a for a in (op.create_alias, op.delete_alias, op.rename_alias) if a is not None]
        if len(given) != 1:
            raise ValidationError(
                "each action is one of create_alias, delete_alias or rename_alias",
                field=f"actions[{i}]",
            )
        if op.create_alias is not None:
            out.append(CreateAlias(op.create_alias.alias_name, op.create_alias.collection_name))
        elif op.delete_alias is not None:
            out.append(DeleteAlias(op.delete_alias.alias_name))
        elif op.rename_alias is not None:
            rename = op.rename_alias
            out.append(RenameAlias(rename.old_alias_name, rename.new_alias_name))
    return out


async def list_aliases(request: web.Request) -> web.Response:
    """Every alias and the collection it names: ``{"aliases": {alias: collection}}``."""
    return json_response({"aliases": store(request).aliases()})


async def update_aliases(request: web.Request) -> web.Response:
    """Create, delete and rename aliases: all of the actions, in order, or none."""
    body = await read_as(request, ChangeAliases)
    s = store(request)
    seq = await s.update_aliases(alias_actions(body))
    return json_response({"aliases": s.aliases(), "sequence": seq})
