"""A collection's own dense vector by its name.

A collection may have a dense vector of its own (Qdrant's default vector, named
``""``: the name the parsing in ``models`` knows it by). Collections created before
named dense vectors became optional took the first dense vector of a create as their
own under its name (LlamaIndex's and Haystack's ``"text-dense"``, a multimodal
collection's ``"image"``); such collections live on in data directories, logs and
snapshots. Requests on one name it so: ``to_default`` renames it
to ``""`` wherever a request body names a vector of the collection (``using``,
``with_vector``, a point's or a batch's vectors, a named query vector, the vectors to
delete, ``has_vector`` in filters, a collection update), before the body is parsed.
``""`` is taken for it as well. What is shown names it back
(``responses.show_vectors``).
"""

from __future__ import annotations

from typing import Any, TypeVar

from vectorizer.engine.collection import Collection
from vectorizer.qdrant.schemas import UpdateCollection

T = TypeVar("T")

# Request fields holding a filter (``Filter`` objects)
_FILTERS = ("filter", "update_filter")


def by_default_name(coll: Collection, body: T) -> T:
    """``body`` (parsed, for ``coll``) with the collection's own dense vector named
    ``""`` in it, whatever its name."""
    if dense := coll.config.vector_name:
        to_default(body, dense)
    return body


def to_default(body: Any, name: str) -> None:
    """Rename the dense vector ``name`` to ``""`` in a parsed request body (a schema
    struct, changed in place)."""
    if getattr(body, "using", None) == name:
        body.using = ""
    for attr in ("with_vector", "with_vectors"):
        selected = getattr(body, attr, None)
        if isinstance(selected, list):
            setattr(body, attr, _renamed(selected, name))
    vector = getattr(body, "vector", None)
    if isinstance(vector, list) and all(isinstance(n, str) for n in vector):
        body.vector = _renamed(vector, name)  # (the names of the vectors to delete)
    elif isinstance(vector, dict) and vector.get("name") == name and "vector" in vector:
        vector["name"] = ""  # a named query vector
    for point in getattr(body, "points", None) or ():
        if isinstance(point, dict):
            _rekeyed(point.get("vector"), name)
    batch = getattr(body, "batch", None)
    if batch is not None:
        _rekeyed(batch.vectors, name)
    if isinstance(body, UpdateCollection):
        _rekeyed(body.vectors, name)
    for attr in _FILTERS:
        _filter(getattr(body, attr, None), name)
    _prefetch(getattr(body, "prefetch", None), name)
    for search in getattr(body, "searches", None) or ():
        to_default(search, name)


def _renamed(names: list[Any], name: str) -> list[Any]:
    return ["" if n == name else n for n in names]


def _rekeyed(vectors: Any, name: str) -> None:
    """Vectors by name, the dense one's renamed ``""``."""
    if isinstance(vectors, dict) and name in vectors and "" not in vectors:
        vectors[""] = vectors.pop(name)


def _prefetch(raw: Any, name: str) -> None:
    for prefetch in raw if isinstance(raw, list) else [raw]:
        if not isinstance(prefetch, dict):
            continue
        if prefetch.get("using") == name:
            prefetch["using"] = ""
        _filter(prefetch.get("filter"), name)
        _prefetch(prefetch.get("prefetch"), name)


def _filter(spec: Any, name: str) -> None:
    """``has_vector: name`` anywhere in a filter (its clauses, ``min_should``, nested
    filters) becomes ``has_vector: ""``."""
    if not isinstance(spec, dict):
        return
    for clause in ("must", "should", "must_not"):
        conditions = spec.get(clause)
        for condition in conditions if isinstance(conditions, list) else [conditions]:
            _condition(condition, name)
    min_should = spec.get("min_should")
    if isinstance(min_should, dict) and isinstance(min_should.get("conditions"), list):
        for condition in min_should["conditions"]:
            _condition(condition, name)


def _condition(condition: Any, name: str) -> None:
    if not isinstance(condition, dict):
        return
    if condition.get("has_vector") == name:
        condition["has_vector"] = ""
    nested = condition.get("nested")
    if isinstance(nested, dict):
        _filter(nested.get("filter"), name)
    _filter(condition, name)  # (a condition may be a filter itself)
