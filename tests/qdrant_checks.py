"""Checks the Qdrant tests share: the server beside qdrant-client's local mode given the
same writes, hits and vectors held to it, and bad input refused with nothing changed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse


def with_local(
    client: QdrantClient, make: Callable[[QdrantClient], object]
) -> tuple[QdrantClient, QdrantClient]:
    """The server's client and a local-mode one, ``make`` done on each."""
    local = QdrantClient(":memory:")
    for c in (client, local):
        make(c)
    return client, local


def shown(vector: Any, places: int = 4) -> Any:
    """Vectors as shown (by name, sparse, dense, a multivector's rows), their numbers to
    ``places`` (local mode computes in float64: dense ones normalized, sparse values
    unrounded)."""
    if isinstance(vector, dict):
        return {name: shown(v, places) for name, v in vector.items()}
    if isinstance(vector, models.SparseVector):
        return ("sparse", vector.indices, shown(vector.values, places))
    if isinstance(vector, list):
        return [shown(v, places) for v in vector]
    return round(vector, places) if isinstance(vector, float) else vector


def vectors_of(records: list[Any], places: int = 4) -> list[Any]:
    """The vectors of records or hits, as ``shown``."""
    return [shown(r.vector, places) for r in records]


def same_hits(
    ours: list[models.ScoredPoint],
    theirs: list[models.ScoredPoint],
    rel: float = 1e-5,
    abs_tol: float = 0.0,
) -> None:
    """The same points in the same order, their scores equal within ``rel`` (relative)
    or ``abs_tol`` (local mode computes in float64)."""
    scores = [h.score for h in theirs]
    assert [h.id for h in ours] == [h.id for h in theirs]
    assert [h.score for h in ours] == pytest.approx(scores, rel=rel, abs=abs_tol)


def refused_unchanged(
    client: QdrantClient,
    call: Callable[[QdrantClient], Any],
    needle: bytes,
    collection: str,
    ids: list[Any],
) -> None:
    """``call`` is a 400 saying ``needle``, and the points ``ids`` of ``collection`` are
    as they were, vectors and payloads."""
    before = client.retrieve(collection, ids, with_vectors=True)
    with pytest.raises(UnexpectedResponse) as exc:
        call(client)
    assert exc.value.status_code == 400
    assert needle in exc.value.content, exc.value.content
    assert client.retrieve(collection, ids, with_vectors=True) == before
