"""Request bodies of the native API (msgspec: one pass decodes and type-checks)."""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

PointIdIn = int | str


class _Body(msgspec.Struct, forbid_unknown_fields=True):
    # A request may leave the body out (all defaults): read by ``http.read_as`` and by
    # the OpenAPI document.
    BODY_OPTIONAL: ClassVar[bool] = False


class HnswIn(_Body):
    m: int | msgspec.UnsetType = msgspec.UNSET
    ef_construction: int | msgspec.UnsetType = msgspec.UNSET
    ef_search: int | msgspec.UnsetType = msgspec.UNSET


class CreateCollection(_Body):
    name: str
    dimension: int
    metric: str = "cosine"
    index: str = "hnsw"
    hnsw: HnswIn | None = None
    # payload key -> index type (keyword, integer, float, bool, datetime, uuid, text,
    # geo), or Qdrant's object form ({"type": "text", "tokenizer": ...})
    payload_indexes: dict[str, str | dict[str, Any]] | None = None


class CreatePayloadIndex(_Body):
    schema: str | dict[str, Any]


class PointIn(_Body):
    id: PointIdIn
    vector: list[float]
    payload: dict[str, Any] | None = None


class UpsertPoints(_Body):
    vectors: list[PointIn]


class UpdatePoint(_Body):
    vector: list[float] | None = None
    payload: dict[str, Any] | None = None


class Search(_Body):
    vector: list[float]
    limit: int = 10
    offset: int = 0
    filter: dict[str, Any] | None = None
    threshold: float | None = None
    ef: int | None = None
    exact: bool = False
    with_payload: bool = True
    with_vector: bool = False


class BatchSearch(_Body):
    collection: str
    queries: list[Search]


class Count(_Body):
    BODY_OPTIONAL = True
    filter: dict[str, Any] | None = None


class DeletePoints(_Body):
    ids: list[PointIdIn] | None = None
    filter: dict[str, Any] | None = None


class CreateKey(_Body):
    name: str
    role: str
    collections: list[str] | None = None
    rate_limit_rps: float | None = None
    rate_limit_burst: int | None = None
    expires_at: float | None = None  # Unix time


class RotateKey(_Body):
    BODY_OPTIONAL = True
    grace_s: float = 0.0  # how long the old secret keeps working


class CreateAlias(_Body):
    collection_name: str
    alias_name: str


class DeleteAlias(_Body):
    alias_name: str


class RenameAlias(_Body):
    old_alias_name: str
    new_alias_name: str


class AliasOperation(_Body):
    """One of the three (Qdrant's ``AliasOperations``; the native API takes the same)."""

    create_alias: CreateAlias | None = None
    delete_alias: DeleteAlias | None = None
    rename_alias: RenameAlias | None = None


class ChangeAliases(_Body):
    actions: list[AliasOperation]


# The replication control bodies. Their values are checked by the replication manager
# (which says what is allowed, as it always has): here only the shape, which fields there
# are. The OpenAPI document states their types and which are required.


class Promote(_Body):
    epoch: Any = None


class Follow(_Body):
    primary_url: Any = None
    epoch: Any = None


class Fence(_Body):
    BODY_OPTIONAL = True
    epoch: Any = None  # (none: the node's own)
