"""Qdrant's distance matrix (``search_matrix_pairs`` / ``search_matrix_offsets``) through
the official qdrant-client on a real ``vectorizer serve``: with a sample as large as the
points a filter accepts the draw is all of them, so every pair and score is held to
qdrant-client's local mode; a smaller sample's rows are each point's true nearest among
those drawn; bad bounds are 400s naming the field."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
from qdrant_client import QdrantClient, models

from tests.servers import ServerProcess

DIM = 4
EVEN = models.Filter(must=[models.FieldCondition(key="n", match=models.MatchValue(value=0))])


def _load(client: QdrantClient, distance: models.Distance) -> None:
    rng = random.Random(2)
    client.create_collection("m", vectors_config=models.VectorParams(size=DIM, distance=distance))
    ids: list[Any] = list(range(14)) + [f"00000000-0000-0000-0000-00000000000{i}" for i in (1, 2)]
    client.upsert(
        "m",
        points=[
            models.PointStruct(
                id=pid, vector=[rng.uniform(-1, 1) for _ in range(DIM)], payload={"n": i % 2}
            )
            for i, pid in enumerate(ids)
        ],
    )


@pytest.mark.parametrize("distance", [models.Distance.COSINE, models.Distance.EUCLID])
@pytest.mark.parametrize("flt", [None, EVEN], ids=["all", "filtered"])
def test_a_whole_sample_answers_as_local_mode(
    client: QdrantClient, distance: models.Distance, flt: models.Filter | None
) -> None:
    local = QdrantClient(":memory:")
    for c in (client, local):
        _load(c, distance)
    ask: dict[str, Any] = {"query_filter": flt, "sample": 50, "limit": 3}
    got, want = client.search_matrix_pairs("m", **ask), local.search_matrix_pairs("m", **ask)
    assert [(p.a, p.b) for p in got.pairs] == [(p.a, p.b) for p in want.pairs]
    assert [p.score for p in got.pairs] == pytest.approx([p.score for p in want.pairs], abs=1e-5)
    got_o, want_o = (
        client.search_matrix_offsets("m", **ask),
        local.search_matrix_offsets("m", **ask),
    )
    assert got_o.ids == want_o.ids
    assert (got_o.offsets_row, got_o.offsets_col) == (want_o.offsets_row, want_o.offsets_col)
    assert got_o.scores == pytest.approx(want_o.scores, abs=1e-5)
    assert len(got.pairs) == 3 * (16 if flt is None else 8)
    local.close()


def test_a_smaller_sample_holds_each_points_nearest_among_those_drawn(
    client: QdrantClient,
) -> None:
    _load(client, models.Distance.DOT)
    vectors = {
        p.id: np.asarray(p.vector) for p in client.scroll("m", limit=100, with_vectors=True)[0]
    }
    seen: set[Any] = set()
    for _ in range(5):
        found = client.search_matrix_offsets("m", sample=6, limit=2)
        assert len(found.ids) == 6 and len(set(found.ids)) == 6
        seen.update(found.ids)
        for row in range(6):
            cells = [k for k, r in enumerate(found.offsets_row) if r == row]
            a = vectors[found.ids[row]]
            best = sorted((float(a @ vectors[b]), j) for j, b in enumerate(found.ids) if j != row)[
                ::-1
            ][:2]
            assert [found.offsets_col[k] for k in cells] == [j for _, j in best]
            assert [found.scores[k] for k in cells] == pytest.approx([s for s, _ in best], 1e-4)
    assert len(seen) > 6  # the draws differ


def test_too_few_points_give_no_matrix(client: QdrantClient) -> None:
    _load(client, models.Distance.DOT)
    one = models.Filter(must=[models.HasIdCondition(has_id=[3])])
    assert client.search_matrix_pairs("m", query_filter=one).pairs == []
    assert client.search_matrix_offsets("m", sample=1).ids == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"sample": 0}, "sample"),
        ({"sample": 1001}, "sample"),
        ({"limit": 0}, "limit"),
        ({"sample": 1000, "limit": 101}, "limit"),
        ({"using": "image"}, "using"),
        ({"filter": {"must": [{"key": "n", "range": {"gt": "x"}}]}}, "filter"),
    ],
)
def test_bad_bounds_name_the_field(
    server: ServerProcess, client: QdrantClient, body: dict[str, Any], field: str
) -> None:
    _load(client, models.Distance.DOT)
    for kind in ("pairs", "offsets"):
        status, got = server.request(
            "POST", f"/qdrant/collections/m/points/search/matrix/{kind}", body
        )
        assert status == 400 and field in got["status"]["error"], got


def test_a_matrix_of_sparse_vectors_and_of_multivectors_answers_as_local_mode(
    client: QdrantClient,
) -> None:
    """Qdrant draws the points that have the vector ``using`` and searches each one's
    vector among them, whatever its kind (the matrix refused all but dense ones)."""
    rng = random.Random(5)
    local = QdrantClient(":memory:")
    multi = models.VectorParams(
        size=3,
        distance=models.Distance.COSINE,
        multivector_config=models.MultiVectorConfig(
            comparator=models.MultiVectorComparator.MAX_SIM
        ),
    )
    points = [
        models.PointStruct(
            id=i,
            vector={
                "m": [[rng.uniform(-1, 1) for _ in range(3)] for _ in range(1 + i % 3)],
                "s": models.SparseVector(
                    indices=sorted(rng.sample(range(6), 3)),
                    values=[rng.uniform(0.1, 1) for _ in range(3)],
                ),
            },
        )
        for i in range(12)
    ]
    for c in (client, local):
        c.create_collection(
            "k",
            vectors_config={"m": multi},
            sparse_vectors_config={"s": models.SparseVectorParams()},
        )
        c.upsert("k", points=points)
    try:
        for using in ("s", "m"):
            ask: dict[str, Any] = {"sample": 50, "limit": 3, "using": using}
            got = client.search_matrix_pairs("k", **ask)
            want = local.search_matrix_pairs("k", **ask)
            assert len(got.pairs) == 36, using
            assert [(p.a, p.b) for p in got.pairs] == [(p.a, p.b) for p in want.pairs], using
            assert [p.score for p in got.pairs] == pytest.approx(
                [p.score for p in want.pairs], abs=1e-5
            )
    finally:
        local.close()
