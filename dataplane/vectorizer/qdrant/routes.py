"""Qdrant-compatible route table under ``/qdrant`` (for the official ``qdrant-client``).

Use it as ``QdrantClient(url="http://host:15002", prefix="qdrant")``.
"""

from __future__ import annotations

import msgspec
from aiohttp import web

from vectorizer.qdrant import schemas, snapshots, views
from vectorizer.server.schemas import ChangeAliases

PREFIX = "/qdrant"
_C = PREFIX + "/collections/{name}"

ROUTES: list[web.RouteDef] = [
    web.get(PREFIX, views.root),
    web.get(PREFIX + "/", views.root_slash),
    web.get(PREFIX + "/healthz", views.healthz),
    web.get(PREFIX + "/livez", views.livez),
    web.get(PREFIX + "/readyz", views.readyz),
    web.get(PREFIX + "/collections", views.list_collections),
    # (before the collection routes: "aliases" is no collection's name here)
    web.post(PREFIX + "/collections/aliases", views.update_aliases),
    web.get(PREFIX + "/aliases", views.list_aliases),
    # Every route under /qdrant/collections/{name} shares one entry of aiohttp's index
    # and is matched in this order, one regular expression each: the most asked first
    # (a query behind forty others took ~16 us to route, in a loop).
    web.post(_C + "/points/query", views.query_points),
    web.post(_C + "/points/search", views.search_points),
    web.post(_C + "/points/query/batch", views.query_batch),
    web.post(_C + "/points/search/batch", views.search_batch),
    web.put(_C + "/points", views.upsert_points),
    web.post(_C + "/points", views.retrieve_points),
    web.get(_C + "/points/{id}", views.get_point),
    web.post(_C + "/points/scroll", views.scroll_points),
    web.post(_C + "/points/count", views.count_points),
    web.post(_C + "/points/delete", views.delete_points),
    web.post(_C + "/points/payload", views.set_payload),
    web.post(_C + "/points/recommend", views.recommend_points),
    web.post(_C + "/points/query/groups", views.query_groups),
    web.post(_C + "/points/search/groups", views.search_groups),
    web.get(_C + "/aliases", views.collection_aliases),
    web.put(_C, views.create_collection),
    web.get(_C, views.get_collection),
    web.patch(_C, views.update_collection),
    web.delete(_C, views.delete_collection),
    web.get(_C + "/exists", views.collection_exists),
    web.put(_C + "/vectors/{vector_name}", views.create_vector_name),
    web.delete(_C + "/vectors/{vector_name}", views.delete_vector_name),
    web.put(_C + "/index", views.create_field_index),
    web.delete(_C + "/index/{field_name}", views.delete_field_index),
    web.put(_C + "/points/payload", views.overwrite_payload),
    web.post(_C + "/points/payload/clear", views.clear_payload),
    web.post(_C + "/points/payload/delete", views.delete_payload),
    web.put(_C + "/points/vectors", views.update_vectors),
    web.post(_C + "/points/vectors/delete", views.delete_vectors),
    web.post(_C + "/points/batch", views.batch_update),
    web.post(_C + "/points/recommend/batch", views.recommend_batch),
    web.post(_C + "/points/recommend/groups", views.recommend_groups),
    web.post(_C + "/points/discover", views.discover_points),
    web.post(_C + "/points/discover/batch", views.discover_batch),
    web.post(_C + "/facet", views.facet),
    web.post(_C + "/points/search/matrix/pairs", views.search_matrix_pairs),
    web.post(_C + "/points/search/matrix/offsets", views.search_matrix_offsets),
    web.post(_C + "/snapshots", snapshots.create_snapshot),
    web.get(_C + "/snapshots", snapshots.list_snapshots),
    web.put(_C + "/snapshots/recover", snapshots.recover_snapshot),
    web.post(_C + "/snapshots/upload", snapshots.upload_snapshot),
    web.get(_C + "/snapshots/{snapshot_name}", snapshots.download_snapshot),
    web.delete(_C + "/snapshots/{snapshot_name}", snapshots.delete_snapshot),
    web.post(PREFIX + "/snapshots", snapshots.create_full_snapshot),
    web.get(PREFIX + "/snapshots", snapshots.list_full_snapshots),
    web.get(PREFIX + "/snapshots/{snapshot_name}", snapshots.download_full_snapshot),
    web.delete(PREFIX + "/snapshots/{snapshot_name}", snapshots.delete_full_snapshot),
]

# Request body of each operation that takes one, for the OpenAPI document.
REQUEST_BODIES: dict[tuple[str, str], type[msgspec.Struct]] = {
    ("POST", PREFIX + "/collections/aliases"): ChangeAliases,
    ("PUT", _C): schemas.CreateCollection,
    ("PATCH", _C): schemas.UpdateCollection,
    ("PUT", _C + "/vectors/{vector_name}"): schemas.CreateVectorName,
    ("PUT", _C + "/index"): schemas.CreateFieldIndex,
    ("PUT", _C + "/points"): schemas.Upsert,
    ("POST", _C + "/points"): schemas.PointRequest,
    ("POST", _C + "/points/delete"): schemas.PointsSelector,
    ("POST", _C + "/points/payload"): schemas.SetPayload,
    ("PUT", _C + "/points/payload"): schemas.SetPayload,
    ("POST", _C + "/points/payload/clear"): schemas.PointsSelector,
    ("POST", _C + "/points/payload/delete"): schemas.DeletePayload,
    ("PUT", _C + "/points/vectors"): schemas.UpdateVectors,
    ("POST", _C + "/points/vectors/delete"): schemas.DeleteVectors,
    ("POST", _C + "/points/batch"): schemas.UpdateOperations,
    ("POST", _C + "/points/scroll"): schemas.ScrollRequest,
    ("POST", _C + "/points/count"): schemas.CountRequest,
    ("POST", _C + "/points/search"): schemas.SearchRequest,
    ("POST", _C + "/points/search/batch"): schemas.SearchRequestBatch,
    ("POST", _C + "/points/search/groups"): schemas.SearchGroupsRequest,
    ("POST", _C + "/points/recommend"): schemas.RecommendRequest,
    ("POST", _C + "/points/recommend/batch"): schemas.RecommendRequestBatch,
    ("POST", _C + "/points/recommend/groups"): schemas.RecommendGroupsRequest,
    ("POST", _C + "/points/discover"): schemas.DiscoverRequest,
    ("POST", _C + "/points/discover/batch"): schemas.DiscoverRequestBatch,
    ("POST", _C + "/points/query"): schemas.QueryRequest,
    ("POST", _C + "/points/query/batch"): schemas.QueryRequestBatch,
    ("POST", _C + "/points/query/groups"): schemas.QueryGroupsRequest,
    ("POST", _C + "/facet"): schemas.FacetRequest,
    ("POST", _C + "/points/search/matrix/pairs"): schemas.SearchMatrixRequest,
    ("POST", _C + "/points/search/matrix/offsets"): schemas.SearchMatrixRequest,
    ("PUT", _C + "/snapshots/recover"): schemas.SnapshotRecover,
}
