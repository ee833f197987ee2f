"""Answer concurrent unfiltered searches together.

The first search of a kind (collection and parameters) to arrive leads a batch: it
yields for one loop turn, so that the other requests handled in that turn can join,
then runs one graph pass for all of them and hands each joiner its answer. A lone
request pays one loop turn and no future. The batch runs on the loop, so like any read
it sees each write entirely or not at all.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from vectorizer.engine.collection import Collection, ScoredPoint
from vectorizer.engine.validation import Matrix

Key = tuple[int, int, int, int | None, bool, float | None, bool, bool]
_Joiner = tuple[Matrix, asyncio.Future[list[ScoredPoint]]]


class SearchBatcher:
    def __init__(self) -> None:
        self._forming: dict[Key, list[_Joiner]] = {}

    async def search(self, coll: Collection, query: Matrix, **params: Any) -> list[ScoredPoint]:
        key: Key = (
            id(coll),
            params["limit"],
            params["offset"],
            params["ef"],
            params["exact_search"],
            params["threshold"],
            params["with_payload"],
            params["with_vector"],
        )
        joiners = self._forming.get(key)
        if joiners is not None:  # a batch is forming: join it
            fut: asyncio.Future[list[ScoredPoint]] = asyncio.get_running_loop().create_future()
            joiners.append((query, fut))
            return await fut
        joiners = self._forming[key] = []
        try:
            await asyncio.sleep(0)  # one loop turn for the others to join
        finally:
            # Even if this request was cancelled meanwhile, its joiners get answers.
            del self._forming[key]
            results = self._run(coll, query, joiners, params)
        return results

    @staticmethod
    def _run(
        coll: Collection, query: Matrix, joiners: list[_Joiner], params: dict[str, Any]
    ) -> list[ScoredPoint]:
        """The leader's hits; each live joiner's future gets its own (or the error)."""
        live = [(q, f) for q, f in joiners if not f.done()]  # skip cancelled requests
        queries = np.vstack([query, *(q for q, _ in live)]) if live else query
        try:
            results = coll.search_many(queries, **params)
        except Exception as exc:
            for _, f in live:
                f.set_exception(exc)
            raise
        for (_, f), hits in zip(live, results[1:], strict=True):
            f.set_result(hits)
        return results[0]
