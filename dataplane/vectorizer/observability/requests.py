"""What a view tells the metrics middleware about the work a request did."""

from __future__ import annotations

from aiohttp import web

# Result counts, one per query answered.
SEARCHES: web.RequestKey[list[int]] = web.RequestKey("vectorizer.searches")
# Points written by an insert/update request.
INSERTED = web.RequestKey("vectorizer.inserted", int)


def searched(request: web.Request, *result_counts: int) -> None:
    request.setdefault(SEARCHES, []).extend(result_counts)


def inserted(request: web.Request, points: int) -> None:
    request[INSERTED] = points
