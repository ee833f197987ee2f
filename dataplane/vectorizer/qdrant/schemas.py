"""Qdrant request bodies, as qdrant-client sends them (msgspec: decode and type-check at once).

Unknown fields are refused, so a Qdrant feature we do not implement fails loudly instead
of being ignored. Polymorphic fields (vectors, queries, selectors) are ``Any`` here and
checked by the functions in ``vectorizer.qdrant.models``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec


class _Body(msgspec.Struct, forbid_unknown_fields=True):
    BODY_OPTIONAL: ClassVar[bool] = False  # (see the native schemas' _Body)


class HnswConfigDiff(_Body):
    m: int | None = None
    ef_construct: int | None = None
    full_scan_threshold: int | None = None
    max_indexing_threads: int | None = None
    on_disk: bool | None = None
    memory: Any = None
    payload_m: int | None = None
    inline_storage: bool | None = None


class VectorParams(_Body):
    size: int
    distance: str
    hnsw_config: HnswConfigDiff | None = None
    quantization_config: Any = None
    on_disk: bool | None = None
    memory: Any = None
    datatype: str | None = None
    multivector_config: Any = None


class CreateCollection(_Body):
    vectors: Any = None
    shard_number: int | None = None
    sharding_method: str | None = None
    replication_factor: int | None = None
    write_consistency_factor: int | None = None
    on_disk_payload: bool | None = None
    payload: Any = None
    id_tracker: Any = None
    hnsw_config: HnswConfigDiff | None = None
    wal_config: Any = None
    optimizers_config: Any = None
    quantization_config: Any = None
    sparse_vectors: dict[str, Any] | None = None
    strict_mode_config: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None


class VectorParamsDiff(_Body):
    hnsw_config: HnswConfigDiff | None = None
    quantization_config: Any = None
    on_disk: bool | None = None
    memory: Any = None


class UpdateCollection(_Body):
    vectors: dict[str, Any] | None = None
    optimizers_config: Any = None
    params: Any = None
    hnsw_config: HnswConfigDiff | None = None
    quantization_config: Any = None
    sparse_vectors: dict[str, Any] | None = None
    strict_mode_config: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None


class DenseVectorConfig(_Body):
    size: int
    distance: str
    multivector_config: Any = None
    datatype: str | None = None


class SparseVectorConfig(_Body):
    modifier: str | None = None
    datatype: str | None = None


class CreateVectorName(_Body):
    """A named vector added to an existing collection: ``{dense: ...}`` or ``{sparse: ...}``."""

    dense: DenseVectorConfig | None = None
    sparse: SparseVectorConfig | None = None


class Batch(_Body):
    ids: list[Any]
    vectors: Any
    payloads: list[dict[str, Any] | None] | None = None


class Upsert(_Body):
    """``PointsList`` (``points``) or ``PointsBatch`` (``batch``)."""

    points: list[dict[str, Any]] | None = None
    batch: Batch | None = None
    shard_key: Any = None
    update_filter: Any = None
    update_mode: str | None = None


class PointRequest(_Body):
    ids: list[Any]
    with_payload: Any = None
    with_vector: Any = None
    shard_key: Any = None


class PointsSelector(_Body):
    """``PointIdsList`` (``points``) or ``FilterSelector`` (``filter``)."""

    points: list[Any] | None = None
    filter: dict[str, Any] | None = None
    shard_key: Any = None


class SetPayload(_Body):
    payload: dict[str, Any]
    points: list[Any] | None = None
    filter: dict[str, Any] | None = None
    shard_key: Any = None
    key: str | None = None


class DeletePayload(_Body):
    keys: list[str]
    points: list[Any] | None = None
    filter: dict[str, Any] | None = None
    shard_key: Any = None


class UpdateVectors(_Body):
    points: list[dict[str, Any]]
    shard_key: Any = None
    update_filter: Any = None


class DeleteVectors(_Body):
    vector: list[str]
    points: list[Any] | None = None
    filter: dict[str, Any] | None = None
    shard_key: Any = None


class UpdateOperations(_Body):
    """``POST /points/batch``: each operation is an object with one of the keys of
    ``vectorizer.qdrant.views.BATCH_OPERATIONS``, checked there."""

    operations: list[dict[str, Any]]


class ScrollRequest(_Body):
    BODY_OPTIONAL = True
    offset: Any = None
    limit: int | None = None
    filter: dict[str, Any] | None = None
    with_payload: Any = None
    with_vector: Any = None
    order_by: Any = None
    shard_key: Any = None


class CountRequest(_Body):
    BODY_OPTIONAL = True
    filter: dict[str, Any] | None = None
    exact: bool = True
    shard_key: Any = None


class SearchParams(_Body):
    hnsw_ef: int | None = None
    exact: bool = False
    # Hints that cannot change our results (no quantization, no unindexed segments).
    quantization: Any = None
    indexed_only: bool = False
    acorn: Any = None
    idf: Any = None


class Searched(_Body):
    """What the legacy searches share (``with_vectors`` is an alias Qdrant accepts)."""

    vector: Any
    filter: dict[str, Any] | None = None
    params: SearchParams | None = None
    with_payload: Any = None
    with_vector: Any = None
    with_vectors: Any = None
    score_threshold: float | None = None
    shard_key: Any = None


class SearchRequest(Searched, kw_only=True):
    """The legacy ``/points/search`` body."""

    limit: int
    offset: int | None = None


class SearchRequestBatch(_Body):
    searches: list[SearchRequest]


class SearchGroupsRequest(Searched, kw_only=True):
    group_by: str
    group_size: int
    limit: int
    with_lookup: Any = None


class Recommended(_Body):
    """What the legacy recommendations share: examples (point ids or vectors) and how to
    search with them."""

    positive: list[Any] = msgspec.field(default_factory=list)
    negative: list[Any] = msgspec.field(default_factory=list)
    strategy: str | None = None
    filter: dict[str, Any] | None = None
    params: SearchParams | None = None
    with_payload: Any = None
    with_vector: Any = None
    score_threshold: float | None = None
    using: str | None = None
    lookup_from: Any = None
    shard_key: Any = None


class RecommendRequest(Recommended, kw_only=True):
    limit: int
    offset: int | None = None


class RecommendRequestBatch(_Body):
    searches: list[RecommendRequest]


class RecommendGroupsRequest(Recommended, kw_only=True):
    group_by: str
    group_size: int
    limit: int
    with_lookup: Any = None


class DiscoverRequest(_Body, kw_only=True):
    """The legacy ``discover`` form (clients before 1.13): a target and/or context pairs
    (a list), no score threshold."""

    target: Any = None
    context: list[Any] | None = None
    filter: dict[str, Any] | None = None
    params: SearchParams | None = None
    limit: int
    offset: int | None = None
    with_payload: Any = None
    with_vector: Any = None
    using: str | None = None
    lookup_from: Any = None
    shard_key: Any = None

    score_threshold = None  # (not in this form: for what the searches share)


class DiscoverRequestBatch(_Body):
    searches: list[DiscoverRequest]


class Query(_Body):
    """What a universal query and a grouped one share."""

    query: Any = None
    prefetch: Any = None
    using: str | None = None
    filter: dict[str, Any] | None = None
    params: SearchParams | None = None
    score_threshold: float | None = None
    with_vector: Any = None
    with_payload: Any = None
    lookup_from: Any = None
    shard_key: Any = None


class Prefetch(_Body):
    """One of a query's sub-requests, whose results its query merges."""

    prefetch: Any = None
    query: Any = None
    using: str | None = None
    filter: dict[str, Any] | None = None
    params: SearchParams | None = None
    score_threshold: float | None = None
    limit: int | None = None
    lookup_from: Any = None

    @property
    def with_payload(self) -> Any:
        return False  # (a prefetch yields ids and scores)

    @property
    def with_vector(self) -> Any:
        return False


class QueryRequest(Query):
    limit: int | None = None
    offset: int | None = None


class QueryRequestBatch(_Body):
    searches: list[QueryRequest]


class QueryGroupsRequest(Query, kw_only=True):
    group_by: str
    group_size: int | None = None
    limit: int | None = None
    with_lookup: Any = None


class FacetRequest(_Body):
    key: str
    limit: int | None = None
    filter: dict[str, Any] | None = None
    exact: bool | None = None
    shard_key: Any = None


class SearchMatrixRequest(_Body):
    BODY_OPTIONAL = True
    filter: dict[str, Any] | None = None
    sample: int | None = None
    limit: int | None = None
    using: str | None = None
    shard_key: Any = None


class CreateFieldIndex(_Body):
    field_name: str
    field_schema: Any = None


class SnapshotRecover(_Body):
    location: str
    priority: str | None = None
    checksum: str | None = None
    api_key: str | None = None
