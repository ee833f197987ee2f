"""The native route table: one flat list, the single place a path is bound to a view."""

from __future__ import annotations

from aiohttp import web

from vectorizer.server import openapi
from vectorizer.server.views import aliases, auth, collections, health, points, search

# aiohttp tries the routes under one path prefix in this order, one match attempt each:
# the hot ones (search, upsert) come first.
ROUTES: list[web.RouteDef] = [
    web.post("/collections/{name}/search", search.search),
    web.post("/collections/{name}/vectors", points.upsert),
    web.get("/collections/{name}/vectors", points.list_points),
    web.get("/health", health.health),
    web.get("/ready", health.ready),
    web.get("/stats", health.stats),
    web.get("/metrics", health.metrics),
    web.get("/openapi.json", openapi.document),
    web.get("/collections", collections.list_collections),
    web.post("/collections", collections.create_collection),
    web.get("/collections/{name}", collections.get_collection),
    web.delete("/collections/{name}", collections.delete_collection),
    web.post("/collections/{name}/snapshot", collections.snapshot),
    web.put("/collections/{name}/payload_indexes/{key}", collections.create_payload_index),
    web.delete("/collections/{name}/payload_indexes/{key}", collections.delete_payload_index),
    web.post("/collections/{name}/vectors/delete", points.delete_points),
    web.get("/collections/{name}/vectors/{id}", points.get_point),
    web.put("/collections/{name}/vectors/{id}", points.update_point),
    web.delete("/collections/{name}/vectors/{id}", points.delete_point),
    web.post("/collections/{name}/count", points.count),
    web.post("/batch_search", search.batch_search),
    web.get("/aliases", aliases.list_aliases),
    web.post("/aliases", aliases.update_aliases),
    web.get("/auth/whoami", auth.whoami),
    web.get("/auth/keys", auth.list_keys),
    web.post("/auth/keys", auth.create_key),
    web.get("/auth/keys/{key_id}", auth.get_key),
    web.post("/auth/keys/{key_id}/rotate", auth.rotate_key),
    web.delete("/auth/keys/{key_id}", auth.revoke_key),
]
