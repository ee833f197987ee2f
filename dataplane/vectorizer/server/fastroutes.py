"""The routes the fast path answers (``fastsearch.py``), each read by its view's own
functions: what a request body asks, or an exception when the request is the
pipeline's to answer (anything the view would refuse, and the shapes the fast path
leaves to it).

- ``POST /collections/{name}/search``: the native search (``views/search.py``), not
  asking for vectors back; filtered ones too.
- ``POST /qdrant/collections/{name}/points/query``: Qdrant's universal query in its
  plain nearest form (``qdrant/searching.plain_nearest``: a dense vector, no filter,
  prefetch or lookup, no vectors back), as qdrant-client's ``query_points`` sends it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import orjson

from vectorizer.engine.collection import Collection, ScoredPoint
from vectorizer.engine.filters import Predicate, compile_filter
from vectorizer.engine.store import Store
from vectorizer.engine.validation import Matrix
from vectorizer.errors import VectorizerError
from vectorizer.qdrant import models, names, responses
from vectorizer.qdrant import schemas as qdrant_schemas
from vectorizer.qdrant.errors import for_qdrant
from vectorizer.qdrant.searching import plain_nearest, scored_points
from vectorizer.security.limits import check_json_depth
from vectorizer.server.http import decode_as
from vectorizer.server.schemas import Search
from vectorizer.server.views.search import checked_query, search_params
from vectorizer.settings import Settings

_NAME = r"([A-Za-z0-9_-]{1,128})"  # (plain: nothing to decode)

# The body of an answer, from the hits and when the answer began (``perf_counter``).
Show = Callable[[list[ScoredPoint], float], bytes]


class Elsewhere(Exception):
    """A request the fast path leaves to the pipeline."""


@dataclass(frozen=True, slots=True)
class Asked:
    """One search, checked: where, what, and how its answer is shown."""

    coll: Collection
    query: Matrix
    params: dict[str, Any]  # ``Collection.search`` arguments
    filtered: bool  # searched on its own (after ``graphs_settled``), not batched
    predicate: Predicate | None
    show: Show


@dataclass(frozen=True, slots=True)
class Route:
    template: str
    path: re.Pattern[str]  # the whole path; its group is the collection's name
    ask: Callable[[Store, Settings, str, bytes], Asked]  # raises: the pipeline's request
    error: Callable[[VectorizerError, str], VectorizerError]  # as the view raises it


def _native(store: Store, settings: Settings, name: str, body: bytes) -> Asked:
    check_json_depth(body, settings.max_json_depth)
    q = decode_as(body, Search)
    if q.with_vector:  # (the answer's size is checked against memory there)
        raise Elsewhere
    coll = store.collection(name)
    query = checked_query(coll, q, settings.max_search_limit)
    predicate = compile_filter(q.filter)
    return Asked(coll, query, search_params(q), q.filter is not None, predicate, _results)


def _results(hits: list[ScoredPoint], started: float) -> bytes:
    return msgspec.json.encode({"results": hits})


def _qdrant_query(store: Store, settings: Settings, name: str, body: bytes) -> Asked:
    check_json_depth(body, settings.max_json_depth)
    coll = store.collection(name)
    asked = names.by_default_name(coll, decode_as(body, qdrant_schemas.QueryRequest))
    search = models.query_request(asked, settings.max_search_limit)
    plain = None if search.prefetch or search.with_vector else plain_nearest(coll, search)
    if plain is None:
        raise Elsewhere
    query, params = plain

    def show(hits: list[ScoredPoint], started: float) -> bytes:
        points = responses.show_vectors(
            coll, scored_points(hits, search), search.named_shown, "with_vector"
        )
        return orjson.dumps(responses.envelope({"points": points}, started))

    return Asked(coll, query, params, False, None, show)


def _as_raised(err: VectorizerError, name: str) -> VectorizerError:
    return err


ROUTES = (
    Route(
        "/collections/{name}/search",
        re.compile(rf"/collections/{_NAME}/search"),
        _native,
        _as_raised,
    ),
    Route(
        "/qdrant/collections/{name}/points/query",
        re.compile(rf"/qdrant/collections/{_NAME}/points/query"),
        _qdrant_query,
        for_qdrant,  # (as ``qdrant_view`` turns what a view raised)
    ),
)
