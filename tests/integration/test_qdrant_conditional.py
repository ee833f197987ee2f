"""Qdrant's conditional writes through the official qdrant-client on a real
``vectorizer serve``: ``update_filter`` and ``update_mode`` on upserts (list, batch and
``/points/batch`` forms) and ``update_filter`` on vector updates, every state held to
qdrant-client's local mode, and the outcome kept through kill -9."""

from __future__ import annotations

import random
from typing import Any

import pytest
from qdrant_client import QdrantClient, models

from tests.integration.test_metrics import scrape
from tests.servers import ServerProcess

DIM = 4
INSERTED = "vectorizer_inserted_vectors_total{}"


def _vec(rng: random.Random) -> list[float]:
    return [round(rng.uniform(-1, 1), 3) for _ in range(DIM)]


def _state(client: QdrantClient) -> list[tuple[Any, Any, list[float]]]:
    page, _ = client.scroll("c", limit=1000, with_payload=True, with_vectors=True)
    out = []
    for p in page:
        assert isinstance(p.vector, list)
        out.append((p.id, p.payload, [round(x, 4) for x in p.vector]))
    return sorted(out, key=lambda t: str(t[0]))


def _writes(rng: random.Random) -> list[tuple[str, dict[str, Any]]]:
    """A sequence of conditional writes over ids 0-11, some repeating ids in a batch."""
    modes = [None, models.UpdateMode.UPSERT, models.UpdateMode.INSERT_ONLY]
    modes.append(models.UpdateMode.UPDATE_ONLY)
    filters = [
        None,
        models.Filter(must=[models.FieldCondition(key="v", range=models.Range(gte=2))]),
        models.Filter(
            must_not=[models.FieldCondition(key="k", match=models.MatchValue(value="a"))]
        ),
        models.Filter(must=[models.IsEmptyCondition(is_empty=models.PayloadField(key="k"))]),
        models.Filter(must=[models.HasIdCondition(has_id=[1, 3, 5, 7])]),
    ]
    out: list[tuple[str, dict[str, Any]]] = []
    for step in range(40):
        ids = [rng.randint(0, 11) for _ in range(rng.randint(1, 4))]
        points = [
            models.PointStruct(
                id=i,
                vector=_vec(rng),
                payload={"v": rng.randint(0, 4), "k": rng.choice(["a", "b"]), "step": step},
            )
            for i in ids
        ]
        flt, mode = rng.choice(filters), rng.choice(modes)
        kind = rng.choice(["list", "batch", "operations", "vectors"])
        out.append((kind, {"points": points, "update_filter": flt, "update_mode": mode}))
    return out


def _apply(client: QdrantClient, kind: str, w: dict[str, Any]) -> None:
    points, flt, mode = w["points"], w["update_filter"], w["update_mode"]
    if kind == "list":
        client.upsert("c", points=points, update_filter=flt, update_mode=mode)
    elif kind == "batch":
        batch = models.Batch(
            ids=[p.id for p in points],
            vectors=[p.vector for p in points],
            payloads=[p.payload for p in points],
        )
        client.upsert("c", points=batch, update_filter=flt, update_mode=mode)
    elif kind == "operations":
        op = models.UpsertOperation(
            upsert=models.PointsList(points=points, update_filter=flt, update_mode=mode)
        )
        client.batch_update_points("c", update_operations=[op])
    else:  # new vectors for the points that exist, once each
        existing = {p.id for p in client.retrieve("c", ids=[p.id for p in points])}
        chosen = {p.id: p for p in points if p.id in existing}
        if chosen:
            client.update_vectors(
                "c",
                points=[models.PointVectors(id=i, vector=p.vector) for i, p in chosen.items()],
                update_filter=flt,
            )


def test_conditional_writes_as_local_mode(server: ServerProcess, client: QdrantClient) -> None:
    local = QdrantClient(":memory:")
    for c in (client, local):
        c.create_collection(
            "c", vectors_config=models.VectorParams(size=DIM, distance=models.Distance.DOT)
        )
    changed = 0
    before = _state(client)
    for kind, w in _writes(random.Random(5)):
        for c in (client, local):
            _apply(c, kind, w)
        state = _state(client)
        assert state == _state(local), (kind, w)
        changed += state != before
        before = state
    assert changed > 15  # the writes did something, and the conditions held some back
    # what was acknowledged is what comes back after kill -9 (the log holds the kept points)
    server.kill()
    server.start()
    again = QdrantClient(url=server.url, prefix="qdrant", timeout=30)
    assert _state(again) == _state(local)
    again.close()
    local.close()


def test_conditions_hold_some_points_back(server: ServerProcess, client: QdrantClient) -> None:
    client.create_collection(
        "c", vectors_config=models.VectorParams(size=DIM, distance=models.Distance.DOT)
    )
    old = [models.PointStruct(id=i, vector=[1.0, 0, 0, 0], payload={"v": i}) for i in range(4)]
    client.upsert("c", points=old)
    new = [models.PointStruct(id=i, vector=[0, 1.0, 0, 0], payload={"v": 10}) for i in range(6)]
    keep_high = models.Filter(must=[models.FieldCondition(key="v", range=models.Range(gte=2))])
    before = scrape(server)[INSERTED]
    client.upsert("c", points=new, update_filter=keep_high)
    assert scrape(server)[INSERTED] == before + 4  # the points written, not those sent
    got = {p.id: p.payload["v"] for p in client.scroll("c", limit=10)[0] if p.payload}
    # 0 and 1 fail the filter and keep their state; 2 and 3 pass; 4 and 5 are new
    assert got == {0: 0, 1: 1, 2: 10, 3: 10, 4: 10, 5: 10}
    only_new = [models.PointStruct(id=i, vector=[0, 0, 1.0, 0], payload={"v": 20}) for i in (5, 6)]
    client.upsert("c", points=only_new, update_mode=models.UpdateMode.INSERT_ONLY)
    client.upsert("c", points=only_new[:1], update_mode=models.UpdateMode.UPDATE_ONLY)
    got = {p.id: p.payload["v"] for p in client.scroll("c", limit=10)[0] if p.payload}
    assert got[5] == 20 and got[6] == 20


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"update_mode": "replace"}, "update_mode"),
        ({"update_filter": {"must": [{"key": "v", "range": {"gte": "x"}}]}}, "update_filter"),
        ({"update_filter": {"bogus": []}}, "update_filter"),
    ],
)
def test_bad_conditions_are_refused_and_change_nothing(
    server: ServerProcess, client: QdrantClient, body: dict[str, Any], field: str
) -> None:
    client.create_collection(
        "c", vectors_config=models.VectorParams(size=DIM, distance=models.Distance.DOT)
    )
    client.upsert("c", points=[models.PointStruct(id=1, vector=[1.0, 0, 0, 0], payload={"v": 1})])
    before = _state(client)
    point = {"id": 1, "vector": [0, 1, 0, 0], "payload": {"v": 9}}
    status, answer = server.request(
        "PUT", "/qdrant/collections/c/points", {"points": [point], **body}
    )
    assert status == 400, answer
    assert field in answer["status"]["error"], answer
    assert _state(client) == before
    vectors = {"points": [{"id": 1, "vector": [0, 0, 1, 0]}], **body}
    if "update_filter" in body:  # (vector updates take no update_mode)
        status, answer = server.request("PUT", "/qdrant/collections/c/points/vectors", vectors)
        assert status == 400 and field in answer["status"]["error"], answer
    assert _state(client) == before
