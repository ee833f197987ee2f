"""What a view tells the metrics middleware about the work a request did."""

from __future__ import annotations

from aiohttp import web

SEARCHES = "vectorizer.searches"  # result counts, one per query answered
INSERTED = "vectorizer.inserted"  # points written by an insert/update request


def searched(request: web.Request, *result_counts: int) -> None:
    request.setdefault(SEARCHES, []).extend(result_counts)


def inserted(request: web.Request, points: int) -> None:
    request[INSERTED] = points
