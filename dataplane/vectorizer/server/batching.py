"""Answer concurrent unfiltered searches together.

Search requests that arrive while the loop is busy are handled in the same loop turn;
each registers its query here and the batch runs once they all have (``call_soon``), as
one graph pass per collection and parameters. A lone request pays one loop turn. The
batch runs on the loop, so like any read it sees each write entirely or not at all.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import numpy as np

from vectorizer.engine.collection import Collection, ScoredPoint
from vectorizer.engine.validation import Matrix

Key = tuple[int, int, int, int | None, bool, float | None, bool, bool]


class SearchBatcher:
    def __init__(self) -> None:
        self._pending: dict[Key, list[tuple[Collection, Matrix, asyncio.Future[list[ScoredPoint]]]]]
        self._pending = defaultdict(list)
        self._scheduled = False

    def search(
        self, coll: Collection, query: Matrix, **params: Any
    ) -> asyncio.Future[list[ScoredPoint]]:
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
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[list[ScoredPoint]] = loop.create_future()
        self._pending[key].append((coll, query, fut))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return fut

    def _flush(self) -> None:
        pending, self._pending = self._pending, defaultdict(list)
        self._scheduled = False
        for key, items in pending.items():
            _, limit, offset, ef, exact_search, threshold, with_payload, with_vector = key
            coll = items[0][0]
            live = [(q, f) for _, q, f in items if not f.done()]  # skip cancelled requests
            if not live:
                continue
            try:
                results = coll.search_many(
                    np.vstack([q for q, _ in live]),
                    limit,
                    offset=offset,
                    ef=ef,
                    exact_search=exact_search,
                    threshold=threshold,
                    with_payload=with_payload,
                    with_vector=with_vector,
                )
            except Exception as exc:  # noqa: BLE001 - every waiter gets the error
                for _, f in live:
                    f.set_exception(exc)
                continue
            for (_, f), hits in zip(live, results, strict=True):
                f.set_result(hits)
