"""What a view tells the metrics about the work a request did."""

from __future__ import annotations

from aiohttp import web

from vectorizer.server.exchange import EXCHANGE


def searched(request: web.Request, *result_counts: int) -> None:
    """Queries answered, by their result counts."""
    request[EXCHANGE].searches.extend(result_counts)


def inserted(request: web.Request, points: int) -> None:
    """Points written by an insert/update request."""
    request[EXCHANGE].inserted = points
