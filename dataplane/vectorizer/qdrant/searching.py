"""Running a parsed Qdrant search against a collection: nearest neighbours, listings,
recommendations, and queries over prefetches (ranked again, fused with
``engine.fusion``, or rescored by an ``engine.formula``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import numpy as np

from vectorizer.engine import exact, fusion, scoring, validation
from vectorizer.engine.collection import Collection, ScoredPoint
from vectorizer.engine.filters import Predicate, compile_filter
from vectorizer.engine.formula import Formula
from vectorizer.engine.named import MultiVector
from vectorizer.engine.validation import Matrix, PointId
from vectorizer.errors import ValidationError
from vectorizer.qdrant import models, responses
from vectorizer.qdrant.errors import point_not_found
from vectorizer.server.batching import answer_together

Hits = list[dict[str, Any]]
Score = Callable[[Matrix], exact.Scores]  # a score of rows of vectors, higher is better
Lookups = Mapping[str, Collection]  # the collections lookup_from names, by name


def _listed(coll: Collection, s: models.Search) -> Hits:
    """A query without a vector lists points (scoring 1, as in Qdrant): in the order of a
    payload value, at random, or by id."""
    predicate = compile_filter(s.filter)
    shown: dict[str, Any] = {"with_payload": s.payload.enabled, "with_vector": s.with_vector}
    if s.order_by is not None:
        order = s.order_by
        rows = coll.ordered(
            order.key,
            s.offset + s.limit,
            predicate,
            descending=order.descending,
            start=order.start,
            datetimes=order.datetimes,
            **shown,
        )
        return [responses.scored_point(p, s.payload, value) for p, value in rows[s.offset :]]
    if s.sample:
        points = coll.sample(s.limit, predicate, **shown)
    else:
        points = coll.scroll(s.offset + s.limit, predicate=predicate, **shown)[0][s.offset :]
    return [responses.scored_point(p, s.payload) for p in points]


class _Examples:
    """Examples of a query as stored vectors (rows of the dense vector ``using``), and
    the ids among them that are points of the searched collection (``source`` holds the
    points ids stand for, their vector ``lookup_vector``: see ``_stored_vector``)."""

    def __init__(
        self, coll: Collection, source: Collection, using: str, lookup_vector: str | None
    ) -> None:
        self.coll, self.source, self.using = coll, source, using
        self.lookup_vector = lookup_vector
        self.ids: list[PointId] = []

    def rows(
        self, examples: Sequence[models.Example], fields: Sequence[str], prepared: bool = True
    ) -> Matrix:
        """The examples' vectors, each prepared as the metric wants a query (unit length
        for cosine), or, not ``prepared``, as given (a stored one as stored)."""
        coll, out = self.coll, []
        config = coll.dense_config(self.using, "using")
        metric, dim = config.metric, config.dimension
        for example, field in zip(examples, fields, strict=True):
            if isinstance(example, list):
                if prepared:
                    out.append(metric.vector(example, dim, field=field)[0])
                else:
                    row = validation.vector(example, dim, field)
                    out.append(validation.bounded(row, field, single=True)[0])
                continue
            stored = _stored_vector(
                coll, self.source, example, field, self.using, self.lookup_vector, prepared
            )
            out.append(stored[0])
            if self.source is coll:
                self.ids.append(example)
        return np.asarray(out, dtype=np.float32).reshape(len(out), dim)

    def listed(
        self, examples: Sequence[models.Example], field: str, then: str = "", prepared: bool = True
    ) -> Matrix:
        """``rows`` of examples listed at ``field`` (each ``field[i]`` + ``then``)."""
        fields = [f"{field}[{i}]{then}" for i in range(len(examples))]
        return self.rows(examples, fields, prepared)


def _stored_vector(
    coll: Collection,
    source: Collection,
    pid: PointId,
    field: str,
    using: str,
    lookup_vector: str | None = None,
    prepared: bool = True,
) -> Matrix:
    """The vector of point ``pid`` of ``source`` as a query of the dense vector ``using``
    of ``coll``: the point's vector ``lookup_vector`` (None: ``using``; ``""``: the
    collection's own), which must be a dense one of that vector's size (``source`` is
    ``coll``, or the collection ``lookup_from`` names); prepared as ``using``'s metric
    wants a query, or, not ``prepared``, as ``source`` stores it."""
    name = using if lookup_vector is None else lookup_vector
    if name and name == source.config.vector_name:  # (an earlier version's named own)
        name = ""
    # the field that named the vector, for errors
    at = "using" if source is coll else "lookup_from"
    if lookup_vector is not None:
        at = "lookup_from.vector"
    if name:
        source.check_named(name, at)
        found = _point_vector(source, pid, name, field)
        if not isinstance(found, np.ndarray):
            raise ValidationError(
                f"{name!r} of collection {source.name!r} is not a dense vector: it cannot "
                "stand for a query of a dense one",
                field=field,
            )
        vector: Matrix = found
    else:
        source.require_own(at)
        point = source.get(pid, with_vector=True)
        if point is None:
            raise point_not_found(pid)
        vector = np.asarray([point.vector], dtype=np.float32)
    if source is coll and name == using:  # (stored as the metric wants it)
        return vector
    config = coll.dense_config(using, "using")
    if not prepared:
        return validation.vector(vector[0], config.dimension, field=field)
    return config.metric.vector(vector[0].tolist(), config.dimension, field=field)


def _point_vector(coll: Collection, pid: PointId, name: str, field: str) -> Any:
    """Point ``pid``'s named vector ``name``, to query by: a 404 for a missing point, a
    400 for one without that vector."""
    if pid not in coll:
        raise point_not_found(pid)
    vector = coll.named_vector(pid, name)
    if vector is None:
        raise ValidationError(f"point {pid!r} has no vector {name!r} to query by", field=field)
    return vector


def _scorer(coll: Collection, s: models.Search, ex: _Examples) -> Score | list[float]:
    """How ``s`` scores points: a function of rows of vectors (recommendations other
    than ``average_vector``, context and discovery queries), or the query vector of an
    ``average_vector`` recommendation."""
    metric = coll.dense_config(s.using, "using").metric
    if s.context is not None:
        c = s.context
        positive = ex.listed([p for p, _ in c.pairs], c.field, ".positive")
        negative = ex.listed([n for _, n in c.pairs], c.field, ".negative")
        if c.target is None:
            return lambda rows: scoring.context(rows, positive, negative, metric)
        target = ex.rows([c.target], [c.field.removesuffix("context") + "target"])
        return lambda rows: scoring.discovery(rows, target, positive, negative, metric)
    rec = s.recommend
    assert rec is not None
    # (as in Qdrant, average_vector averages the examples as given or stored, and the
    # average is then prepared as a query: for cosine, normalized once, at the end)
    averaged = rec.strategy == "average_vector"
    positive = ex.listed(rec.positive, f"{rec.prefix}positive", prepared=not averaged)
    negative = ex.listed(rec.negative, f"{rec.prefix}negative", prepared=not averaged)
    if averaged:
        return _average(positive, negative)
    strategy = rec.strategy
    return lambda rows: scoring.recommendation(rows, positive, negative, metric, strategy)


def _average(positive: Matrix, negative: Matrix) -> list[float]:
    """``average_vector``'s query: avg(positive), or avg(positive) + (avg(positive) -
    avg(negative))."""
    query = positive.mean(axis=0)
    if negative.size:
        query = query + (query - negative.mean(axis=0))
    return [float(x) for x in query]


def plain_nearest(coll: Collection, s: models.Search) -> tuple[Matrix, dict[str, Any]] | None:
    """The query and ``Collection.search`` arguments of ``s`` if it is a plain nearest
    search (a dense vector, no filter, prefetch, examples, diversity or lookup_from,
    showing no named vector: those are read after the search, which a batch's waiting
    turns would let writes come between), which concurrent ones may answer together
    (``SearchBatcher``); None for any other search."""
    if (
        s.vector is None
        or responses.reads_named(coll, s.named_shown)
        or s.filter is not None
        or s.prefetch
        or s.point is not None
        or s.recommend is not None
        or s.context is not None
        or s.mmr is not None
        or s.lookup is not None  # (its collection is checked as the search runs)
        or s.sparse_query is not None
        or not coll.is_dense(s.using)
        or coll.is_multi(s.using)
        or models.is_multi(s.vector)
    ):
        return None
    config = coll.dense_config(s.using, _using_field(s))
    query = config.metric.vector(s.vector, config.dimension, field=s.field)
    return query, {
        "limit": s.limit,
        "offset": s.offset,
        "ef": s.ef,
        "exact_search": s.exact,
        "threshold": s.threshold,
        "with_payload": s.payload.enabled,
        "with_vector": s.with_vector,
        "using": s.using,
    }


def scored_points(hits: list[ScoredPoint], s: models.Search) -> Hits:
    """``hits`` as Qdrant shows them, with the payload ``s`` selects."""
    return [responses.scored_point(h, s.payload) for h in hits]


def run_searches(
    coll: Collection, searches: Sequence[models.Search], lookups: Lookups
) -> list[Hits]:
    """The hits of each of ``searches`` (a batch request's): the plain nearest ones that
    share their parameters in one graph pass on every core, the others one by one. (The
    plain ones are checked first: of two bad searches, a plain one's error is told.)"""
    plain = {
        i: asked for i, s in enumerate(searches) if (asked := plain_nearest(coll, s)) is not None
    }
    found = answer_together(coll, plain)
    return [
        scored_points(found[i], s) if i in found else run_search(coll, s, lookups)
        for i, s in enumerate(searches)
    ]


def run_search(coll: Collection, s: models.Search, lookups: Lookups | None = None) -> Hits:
    """The hits of ``s``, shown as it asks (payload, vector). ``lookups`` are the
    collections its ``lookup_from``s name (``lookup_names``), by name."""
    plain = plain_nearest(coll, s)
    if plain is not None:
        query, params = plain
        return scored_points(coll.search(query, **params), s)
    lookups = lookups or {}
    if s.prefetch:
        return _merged(coll, s, lookups)
    queries = (s.vector, s.point, s.sparse_query, s.recommend, s.context)
    if all(q is None for q in queries):
        return _listed(coll, s)
    if coll.is_sparse(s.using) or (s.sparse_query is not None and not coll.is_dense(s.using)):
        return _sparse_hits(coll, s)
    if coll.is_multi(s.using):
        return _multi_hits(coll, s)
    spec, raw = s.filter, s.vector
    config = coll.dense_config(s.using, _using_field(s))
    if s.sparse_query is not None or models.is_multi(raw):
        name = s.using or coll.config.vector_name  # (as the request named it)
        raise ValidationError(
            f"{name!r} is a dense vector: query it with a list of numbers or a point id",
            field=s.field,
        )
    shown: dict[str, Any] = {
        "with_payload": s.payload.enabled,
        "with_vector": s.with_vector,
        "using": s.using,
    }
    source = coll if s.lookup is None else lookups[s.lookup]
    # (as in Qdrant) the points whose vectors make the query are never hits (unless they
    # are another collection's, named by lookup_from)
    excluded: list[PointId] = []
    if s.recommend is not None or s.context is not None:
        examples = _Examples(coll, source, s.using, s.lookup_vector)
        scorer = _scorer(coll, s, examples)
        excluded = examples.ids
        if isinstance(scorer, list):
            raw = scorer
        else:
            found = coll.by_score(
                scorer,
                s.offset + s.limit + len(excluded),
                predicate=compile_filter(spec),
                threshold=s.threshold,
                **shown,
            )
            hits = _page(found, excluded, s.offset, s.limit)
            return scored_points(hits, s)
    elif s.point is not None:  # query by id: that point's vector
        raw = _stored_vector(coll, source, s.point, s.field, s.using, s.lookup_vector)[0].tolist()
        if source is coll:
            excluded = [s.point]
    query = config.metric.vector(raw, config.dimension, field=s.field)
    asked: dict[str, Any] = {"ef": s.ef, "exact_search": s.exact, "threshold": s.threshold}
    if s.mmr is not None:  # (the candidates are the excluded points' neighbours but them)
        predicate = compile_filter(models.exclude_ids(spec, excluded) if excluded else spec)
        candidates = s.limit if s.mmr.candidates is None else s.mmr.candidates
        hits = coll.diverse(
            query,
            s.limit,
            candidates,
            s.mmr.diversity,
            offset=s.offset,
            predicate=predicate,
            **asked,
            **shown,
        )
    else:
        limit = s.offset + s.limit + len(excluded)
        found = coll.search(query, limit, predicate=compile_filter(spec), **asked, **shown)
        hits = _page(found, excluded, s.offset, s.limit)
    return scored_points(hits, s)


def _page(
    hits: list[ScoredPoint], excluded: list[PointId], offset: int, limit: int
) -> list[ScoredPoint]:
    """``hits`` but the points ``excluded``, from ``offset``, at most ``limit``. (Asking
    for that many more hits and leaving those points out costs a search nothing; a
    filter excluding them would make it read every payload it meets.)"""
    if excluded:
        left_out = set(excluded)
        hits = [h for h in hits if h.id not in left_out]
    return hits[offset : offset + limit]


def _using_field(s: models.Search) -> str:
    """Where ``s`` names the vector it searches: a query's ``using``; the legacy search
    names it at ``vector.name``."""
    if s.field == "vector":
        return "vector.name"
    return s.field.removesuffix("query") + "using" if s.field.endswith("query") else "using"


def _only_nearest(s: models.Search, name: str, kind: str) -> None:
    """Refuse the queries that search dense vectors only, naming ``s``'s vector."""
    for what, given in (
        ("recommend", s.recommend),
        ("discover and context", s.context),
        ("mmr", s.mmr),
        ("lookup_from", s.lookup),
    ):
        if given is not None:
            raise ValidationError(
                f"{what} queries search dense vectors, and {name!r} is a {kind}",
                field=_using_field(s),
            )


def _multi_hits(coll: Collection, s: models.Search) -> Hits:
    """A nearest query of the multivector ``s.using``: by a list of vectors, or by the
    multivector a point of the collection has (never a hit itself)."""
    _only_nearest(s, s.using, "multivector")
    config = coll.dense_config(s.using, _using_field(s))
    spec, excluded = s.filter, []
    if s.point is not None:
        found: MultiVector = _point_vector(coll, s.point, s.using, s.field)
        query, excluded = found.rows, [s.point]
    else:
        if not models.is_multi(s.vector):
            raise ValidationError(
                f"{s.using!r} is a multivector: query it with a list of vectors or a point id",
                field=s.field,
            )
        rows = validation.matrix(cast(list[Any], s.vector), config.dimension, field=s.field)
        query = config.metric.prepare(rows, field=s.field)
    found_hits = coll.search_multi(
        s.using,
        query,
        s.offset + s.limit + len(excluded),
        predicate=compile_filter(spec),
        threshold=s.threshold,
        with_payload=s.payload.enabled,
        with_vector=s.with_vector,
    )
    hits = _page(found_hits, excluded, s.offset, s.limit)
    return scored_points(hits, s)


def _sparse_hits(coll: Collection, s: models.Search) -> Hits:
    """A nearest query of the sparse vector ``s.using``: by a sparse vector, or by the
    one a point of the collection has (never a hit itself, as for dense vectors)."""
    at = _using_field(s)
    name = coll.has_sparse(s.using, at)
    if s.vector is not None:
        raise ValidationError(
            f"{name!r} is a sparse vector: query it with {{indices, values}} or a point id",
            field=s.field,
        )
    _only_nearest(s, name, "sparse vector")
    query, excluded = s.sparse_query, []
    if query is None:
        assert s.point is not None  # (the parser lets nothing else through)
        query, excluded = _point_vector(coll, s.point, name, s.field), [s.point]
    found = coll.search_sparse(
        name,
        query,
        s.offset + s.limit + len(excluded),
        predicate=compile_filter(s.filter),
        threshold=s.threshold,
        with_payload=s.payload.enabled,
        with_vector=s.with_vector,
    )
    hits = _page(found, excluded, s.offset, s.limit)
    return scored_points(hits, s)


def lookup_names(searches: Sequence[models.Search]) -> set[str]:
    """The collections the ``lookup_from``s of ``searches`` (and their prefetches) name."""
    return {p.lookup for s in searches for p in s.tree() if p.lookup is not None}


def _merged(coll: Collection, s: models.Search, lookups: Lookups) -> Hits:
    """A query over prefetches: their lists fused or rescored by a formula, or the
    points they found ranked by the query (and only those, as in Qdrant: the query's
    filter was already theirs)."""
    lists = [
        [(hit["id"], hit["score"]) for hit in run_search(coll, p, lookups)] for p in s.prefetch
    ]
    if s.formula is not None:
        return _shown(coll, s, _rescored(coll, s.formula, lists))
    if s.fusion is None:
        found = list(dict.fromkeys(pid for ranked in lists for pid, _ in ranked))
        if not found:
            return []
        only = {"must": [{"has_id": found}]}
        return run_search(coll, dataclasses.replace(s, prefetch=(), filter=only), lookups)
    if s.fusion.method == "rrf":
        fused = fusion.rrf(lists, s.fusion.k, s.fusion.weights)
    else:
        directions = [_higher_is_better(coll, p) for p in s.prefetch]
        fused = fusion.dbsf(lists, directions)
    return _shown(coll, s, fused)


def _higher_is_better(coll: Collection, s: models.Search) -> bool:
    """Whether the scores of ``s`` are better higher: a sparse vector's, fused ones and
    those of recommendations by examples' scores, discovery and context queries are; a
    dense vector's distance as its metric says."""
    if s.fusion is not None or s.formula is not None or coll.is_sparse(s.using):
        return True
    if s.context is not None or (s.recommend and s.recommend.strategy != "average_vector"):
        return True  # (scores of examples: higher is better for every metric)
    return coll.dense_config(s.using, _using_field(s)).metric.higher_is_better


def _rescored(
    coll: Collection, formula: Formula, lists: list[list[tuple[PointId, float]]]
) -> list[tuple[PointId, float]]:
    """Every point the prefetches found, with its formula score, best first. Equal
    scores keep the order the prefetches found the points in (the first prefetch's
    best first), as qdrant-client's local mode does (Qdrant: hash order)."""
    found = list(dict.fromkeys(pid for ranked in lists for pid, _ in ranked))
    scores = [dict(ranked) for ranked in lists]
    checks = [_matching(coll, spec, found) for spec in formula.conditions]
    rescored = []
    for pid in found:
        point = coll.get(pid, with_vector=False)
        assert point is not None  # (found by the prefetches, on this same loop turn)
        score = formula.score(pid, point.payload, [m.get(pid) for m in scores], checks)
        rescored.append((pid, score))
    rescored.sort(key=lambda hit: -hit[1])  # (stable)
    return rescored


def _matching(coll: Collection, condition: Any, ids: list[PointId]) -> Predicate:
    """Whether a point among ``ids`` meets ``condition``, decided by the collection as it
    decides a filter (its payload and text indexes)."""
    meets = set(coll.ids_matching(_compiled({"must": [{"has_id": ids}, condition]})))
    return lambda pid, _payload: pid in meets


def _compiled(spec: dict[str, Any]) -> Predicate:
    predicate = compile_filter(spec)
    assert predicate is not None  # (a filter spec)
    return predicate


def _shown(coll: Collection, s: models.Search, ranked: list[tuple[PointId, float]]) -> Hits:
    """The page of ``ranked`` (id, score) best first that ``s`` asks for, above its
    threshold, shown as it asks."""
    if s.threshold is not None:  # (of the fused or formula score)
        ranked = [(pid, score) for pid, score in ranked if score >= s.threshold]
    hits = []
    for pid, score in ranked[s.offset : s.offset + s.limit]:
        point = coll.get(pid, with_vector=s.with_vector)
        assert point is not None  # (found by the prefetches, on this same loop turn)
        hit = ScoredPoint(pid, score, point.payload, point.vector)
        hits.append(responses.scored_point(hit, s.payload))
    return hits


def distance_matrix(
    coll: Collection, ask: models.MatrixAsk
) -> tuple[list[PointId], list[list[tuple[PointId, float]]]]:
    """Qdrant's distance matrix: ``ask.sample`` points drawn at random among those its
    filter accepts, in id order (integers first), and for each its ``ask.limit`` nearest
    among the others drawn, best first, by an exact search of the vector ``ask.using``
    (dense, sparse or multi; scores as a search gives them). Fewer than two points
    drawn: no matrix."""
    using = ask.using
    spec = ask.filter
    if using:  # (only points that have the vector)
        coll.check_named(using, "using")
        spec = {"must": [{"has_vector": using}, *([spec] if spec else [])]}
    drawn = coll.sample(ask.sample, compile_filter(spec), with_payload=False, with_vector=False)
    if len(drawn) < 2:
        return [], []
    drawn.sort(key=lambda p: (0, "", p.id) if isinstance(p.id, int) else (1, p.id, 0))
    ids = [p.id for p in drawn]
    among = compile_filter({"must": [{"has_id": ids}]})
    rows = []
    for pid in ids:
        # one more than asked: the point itself is among them (once), and not its own
        hits = _nearest_to(coll, pid, using, ask.limit + 1, among)
        rows.append([(hit.id, hit.score) for hit in hits if hit.id != pid][: ask.limit])
    return ids, rows


def _nearest_to(
    coll: Collection, pid: PointId, using: str, limit: int, among: Predicate | None
) -> list[ScoredPoint]:
    """The points ``among`` nearest to point ``pid`` by its vector ``using``, exactly."""
    if coll.is_sparse(using):
        query = _point_vector(coll, pid, using, "using")
        return coll.search_sparse(using, query, limit, predicate=among, with_payload=False)
    if coll.is_multi(using):
        multi: MultiVector = _point_vector(coll, pid, using, "using")
        return coll.search_multi(using, multi.rows, limit, predicate=among, with_payload=False)
    query = _stored_vector(coll, coll, pid, "using", using)  # (as the metric wants)
    return coll.search(
        query, limit, predicate=among, exact_search=True, with_payload=False, using=using
    )
