"""What handling one request learned on the way, in one typed record.

The pipeline creates it first thing; admission, the views and the error handling fill
it in; metrics, the audit line and the response headers read it at the end. One
attribute read each, where a lookup on the request mapping that misses costs a raised
and caught ``KeyError``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from vectorizer.security.permissions import Rule
    from vectorizer.security.ratelimit import Decision
    from vectorizer.security.roles import Principal


@dataclass(slots=True)
class Exchange:
    request_id: str
    rule: Rule | None = None  # the route's permission rule
    principal: Principal | None = None  # who the request acts as, once authenticated
    rate: Decision | None = None  # the rate limiter's answer, for the headers
    error_code: str | None = None  # the stable code of the error it was answered with
    body: bytes | None = None  # the JSON body, once read and checked (admission may read it first)
    searches: list[int] = field(default_factory=list)  # result counts, one per query
    inserted: int | None = None  # points written by an insert/update
    audit_reason: str | None = None  # why it was refused
    audit_claimed: str | None = None  # who a refused caller claimed to be
    audit_collection: str | None = None  # the collection named in the body
    audit_target: str | None = None  # the object acted on (a key id)


EXCHANGE = web.RequestKey("vectorizer.exchange", Exchange)


def exchange(request: web.Request) -> Exchange:
    return request[EXCHANGE]


def searched(request: web.Request, *result_counts: int) -> None:
    """A view tells the metrics: queries answered, by their result counts."""
    request[EXCHANGE].searches.extend(result_counts)


def inserted(request: web.Request, points: int) -> None:
    """A view tells the metrics: points written by an insert/update request (added up
    when one request writes several times, as the operations of a Qdrant batch do)."""
    ex = request[EXCHANGE]
    ex.inserted = points if ex.inserted is None else ex.inserted + points
