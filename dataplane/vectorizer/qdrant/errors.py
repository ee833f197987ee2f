"""Domain errors as Qdrant reports them: its statuses and its wording.

The error middleware renders any ``VectorizerError`` under ``/qdrant`` in Qdrant's body
shape; this module only adjusts what differs. Qdrant answers bad input with 400 where
the native API uses 422, and its client-visible messages name collections and points
in a fixed way ("Collection `x` doesn't exist!").
"""

from __future__ import annotations

from typing import cast

from vectorizer.engine.validation import PointId
from vectorizer.errors import (
    CollectionExists,
    CollectionNotFound,
    ValidationError,
    VectorizerError,
    VectorNotFound,
)


def for_qdrant(err: VectorizerError, collection: str | None) -> VectorizerError:
    """``err`` as the Qdrant layer reports it (same code, Qdrant's status and wording)."""
    if isinstance(err, ValidationError):
        message = f"{err.field}: {err.message}" if err.field else err.message
        return _bad_input(type(err))(message, field=err.field, **err.details)
    if (
        isinstance(err, CollectionNotFound)
        and not isinstance(err, _Worded)
        and collection is not None
    ):
        return collection_not_found(collection)
    if isinstance(err, CollectionExists) and collection is not None:
        return CollectionExists(f"Collection `{collection}` already exists!", field="name")
    return err


class _Worded(CollectionNotFound):
    """Already in Qdrant's words (about a collection other than the path's, perhaps)."""


def collection_not_found(name: str) -> CollectionNotFound:
    return _Worded(f"Collection `{name}` doesn't exist!", field="collection")


def point_not_found(pid: PointId) -> VectorNotFound:
    return VectorNotFound(f"No point with id {pid} found", field="id")


_BAD_INPUT: dict[type[ValidationError], type[ValidationError]] = {}


def _bad_input(cls: type[ValidationError]) -> type[ValidationError]:
    """A subclass of ``cls`` with the same code that answers 400 (one per class)."""
    if cls.status == 400:
        return cls
    if cls not in _BAD_INPUT:
        attrs = {"status": 400, "__module__": __name__, "__doc__": f"{cls.__name__}, as a 400."}
        _BAD_INPUT[cls] = cast(type[ValidationError], type(cls.__name__, (cls,), attrs))
    return _BAD_INPUT[cls]
