"""A plain Qdrant search answered in a batch (``SearchBatcher``) reads its hits in the
batch's pass, and the named vectors it shows only when its request resumes: writes come
between. A collection with no named vector when the search was planned, given one (and
its points rewritten) meanwhile, showed each hit's old vector beside its new named one.

The node runs in this process (the real app over a socket); the batcher's search is
wrapped so that the writes land in that window, through the API.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from vectorizer.server.app import create_app, open_node
from vectorizer.server.keys import SEARCH_BATCHER
from vectorizer.settings import Settings

Client = TestClient[web.Request, web.Application]
Factory = Callable[[web.Application], Awaitable[Client]]


async def test_a_batched_search_shows_named_vectors_of_the_points_it_found(
    tmp_path: Path, aiohttp_client: Factory
) -> None:
    app = create_app(Settings(data_dir=tmp_path / "data", snapshot_on_shutdown=False))
    app.on_startup.append(open_node)
    client = await aiohttp_client(app)
    base = "/qdrant/collections/c"
    create = {"vectors": {"size": 2, "distance": "Euclid"}}
    assert (await client.put(base, json=create)).status == 200
    point = {"id": 1, "vector": [1.0, 0.0], "payload": {"v": 1}}
    assert (await client.put(f"{base}/points?wait=true", json={"points": [point]})).status == 200

    batcher = app[SEARCH_BATCHER]
    search = batcher.search

    async def written_meanwhile(*args: Any, **kwargs: Any) -> Any:
        found = await search(*args, **kwargs)
        added = await client.put(
            f"{base}/vectors/extra", json={"dense": {"size": 1, "distance": "Dot"}}
        )
        assert added.status == 200, await added.text()
        rewritten = {"points": [{"id": 1, "vector": {"": [0.0, 1.0], "extra": [3.0]}}]}
        changed = await client.put(f"{base}/points/vectors?wait=true", json=rewritten)
        assert changed.status == 200, await changed.text()
        return found

    batcher.search = written_meanwhile  # type: ignore[method-assign]
    asked = {"query": [1.0, 0.0], "limit": 1, "with_vector": True}
    answer = await client.post(f"{base}/points/query", json=asked)
    assert answer.status == 200, await answer.text()
    (hit,) = (await answer.json())["result"]["points"]
    # the point as it is now, whole (its old vector scored 0 from the query: sqrt 2 now)
    assert hit["vector"] == {"": [0.0, 1.0], "extra": [3.0]}
    assert abs(hit["score"] - 2**0.5) < 1e-6
