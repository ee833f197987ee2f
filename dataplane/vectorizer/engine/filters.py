"""Payload filters with Qdrant's semantics, compiled once per query into a predicate.

Supported: ``must`` / ``should`` / ``must_not`` / ``min_should`` (nested filters too);
field conditions with ``match`` (``value``, ``any``, ``except``, ``prefix``,
``substring``, and the full-text ``text``, ``text_any`` and ``phrase``: see ``text``),
``range`` (``gt``, ``gte``, ``lt``, ``lte``: numbers, or datetimes compared with
datetime strings in the payload, in Qdrant's formats and to the microsecond: see
``datetimes``), ``geo_radius``, ``geo_bounding_box`` and
``geo_polygon`` (see ``geo``) and ``values_count``; ``has_id``, ``has_vector``,
``is_empty``, ``is_null`` (also as a field condition's ``is_empty``/``is_null``
flags), ``slice``; and ``nested``, a filter that one element of an array of
objects must pass on its own.

Keys are Qdrant's JSON paths (``paths``): ``a.b`` steps into objects only, ``a[].b``
into every element of an array, ``a[2].b`` into one; an array value matches when any of
its elements does.

Beside its predicate, a filter has a ``Lookup`` (``lookup_of``): the part of it a
payload index can answer (matched values, ranges, ids, a text index's tokens), combined
by ``AllOf`` and ``AnyOf``. A lookup names exactly the points the filter accepts, unless
it is ``Partial`` (the filter also asks what no index answers: ``must_not``, ``except``,
geo, an unindexed key...): then a superset, which the predicate still decides point by
point.

How a full-text match reads a key depends on whether the collection has a ``text``
index there (its tokenizer), so a filter is compiled without that knowledge and
``bind`` recompiles it, once per query, for the collection that runs it.
"""

from __future__ import annotations

import dataclasses
import functools
import uuid
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import siphash24

from vectorizer.engine import geo, paths, sparse
from vectorizer.engine.datetimes import micros
from vectorizer.engine.text import DEFAULT, TextParams, has_phrase
from vectorizer.engine.validation import PointId, point_id
from vectorizer.errors import ValidationError

Payload = dict[str, Any]
Predicate = Callable[[PointId, Payload | None], bool]
Test = Callable[[Any], bool]

_MISSING = object()
_CLAUSES = ("must", "should", "must_not", "min_should")
_RANGE_OPS = ("gt", "gte", "lt", "lte")
_FIELD_KINDS = (
    "match",
    "range",
    "geo_radius",
    "geo_bounding_box",
    "geo_polygon",
    "values_count",
    "is_empty",
    "is_null",
)
_GEO: dict[str, Callable[[Any, str], Test]] = {
    "geo_radius": geo.radius,
    "geo_bounding_box": geo.bounding_box,
    "geo_polygon": geo.polygon,
}
_TEXT_MATCHES = ("text", "text_any", "phrase")
_FLAGS = ("is_empty", "is_null")  # a field condition's boolean forms of the conditions
_MAX_SLICES = 2**32 - 1
MAX_KEY_LENGTH = 1024  # characters of a payload key (a path) in a filter or an index
_ZERO_KEY = bytes(16)
_U64 = 2**64 - 1


@dataclass(frozen=True)
class Match:
    """Points with any of ``values`` (in ``hashable`` form) at ``key``."""

    key: str
    values: frozenset[tuple[str, Any]]


@dataclass(frozen=True)
class Range:
    """Points with a number (or, for ``datetimes``, a datetime string: its microseconds
    since the epoch, ``micros``) at ``key`` within the bounds."""

    key: str
    gt: int | float | None
    gte: int | float | None
    lt: int | float | None
    lte: int | float | None
    datetimes: bool


@dataclass(frozen=True)
class Ids:
    ids: frozenset[PointId]


@dataclass(frozen=True)
class Tokens:
    """Points whose texts at ``key``, as its text index tokenizes them, hold every one
    of ``tokens`` (or, with ``any``, at least one)."""

    key: str
    tokens: frozenset[str]
    any: bool


@dataclass(frozen=True)
class AllOf:
    parts: tuple[Lookup, ...]


@dataclass(frozen=True)
class AnyOf:
    parts: tuple[Lookup, ...]


@dataclass(frozen=True)
class Partial:
    """The points ``part`` names hold those the filter accepts, and maybe others."""

    part: Lookup


Lookup = Match | Range | Ids | Tokens | AllOf | AnyOf | Partial
_Compiled = tuple[Predicate, Lookup | None]
_NOTHING = Ids(frozenset())  # a lookup naming no point: exactly what a never-true test takes
_LOOKUPS: weakref.WeakKeyDictionary[Predicate, Lookup] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class _Source:
    """What ``bind`` recompiles a filter from: its spec, the keys its full-text matches
    read (whole paths, also inside ``nested``) and the sparse vectors ``has_vector``
    names."""

    spec: Any
    field: str
    text_keys: frozenset[str]
    vector_names: frozenset[str]


# Whether a point has the sparse vector of a name: a collection's answer (``bind``).
VectorTest = Callable[[str], Callable[[PointId], bool]]

_SOURCES: weakref.WeakKeyDictionary[Predicate, _Source] = weakref.WeakKeyDictionary()
# a predicate -> what it was last bound to (text indexes, vector test), and the result
_BOUND: weakref.WeakKeyDictionary[
    Predicate, tuple[Mapping[str, TextParams], VectorTest | None, Predicate]
] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class _Context:
    """What compiling one condition needs beside it."""

    text: Mapping[str, TextParams]  # keys with a text index -> its tokenizer
    text_keys: set[str]  # (collects) the keys full-text matches read
    prefix: str = ""  # inside ``nested``: the array's path and ``[].``
    vectors: VectorTest | None = None  # the collection's sparse vectors, once bound
    vector_names: set[str] = dataclasses.field(default_factory=set)  # (collects)


def compile_filter(
    spec: Any,
    field: str = "filter",
    text: Mapping[str, TextParams] | None = None,
    vectors: VectorTest | None = None,
) -> Predicate | None:
    """A predicate for ``spec``, or None when the filter accepts everything. ``text``
    names the keys with a text index and their tokenizers, ``vectors`` tells which
    points have a sparse vector (see ``bind``)."""
    if spec is None:
        return None
    ctx = _Context(text or {}, set(), vectors=vectors)
    pred, lookup = _filter(spec, field, ctx)
    if lookup is not None:
        _LOOKUPS[pred] = lookup
    if ctx.text_keys or ctx.vector_names:
        names = frozenset(ctx.vector_names)
        _SOURCES[pred] = _Source(spec, field, frozenset(ctx.text_keys), names)
    return pred


def compile_condition(spec: Any, field: str) -> Predicate:
    """A predicate for one condition, any that a filter's ``must`` may list, its errors
    naming ``field``. Its full-text matches tokenize by default: only a filter (through
    ``bind``) reads them as a collection's text indexes do."""
    pred, _lookup = _condition(spec, field, _Context({}, set()))
    return pred


def lookup_of(predicate: Predicate) -> Lookup | None:
    """What a payload index can answer of the filter ``predicate`` was compiled from."""
    return _LOOKUPS.get(predicate)


def bind(
    predicate: Predicate, text: Mapping[str, TextParams], vectors: VectorTest | None = None
) -> Predicate:
    """``predicate`` for a collection whose text indexes are ``text`` and whose points'
    sparse vectors ``vectors`` tells: its full-text matches on those keys tokenize as
    the indexes do (and the indexes answer them), its ``has_vector`` conditions ask the
    collection. The same predicate when it has neither; recompiled once per ``text``
    and ``vectors`` otherwise (a collection keeps both the same objects)."""
    source = _SOURCES.get(predicate)
    if source is None:
        return predicate
    if not source.vector_names:
        vectors = None
        if source.text_keys.isdisjoint(text):
            return predicate
    cached = _BOUND.get(predicate)
    if cached is not None and cached[0] is text and cached[1] is vectors:
        return cached[2]
    bound = compile_filter(source.spec, source.field, text, vectors)
    assert bound is not None  # (the spec compiled before)
    _BOUND[predicate] = (text, vectors, bound)
    return bound


def _filter(spec: Any, field: str, ctx: _Context) -> _Compiled:
    if not isinstance(spec, dict):
        raise ValidationError("a filter is an object with must/should/must_not", field=field)
    unknown = set(spec) - set(_CLAUSES)
    if unknown:
        raise ValidationError(f"unknown filter clause {sorted(unknown)[0]!r}", field=field)
    must_c = _conditions(spec.get("must"), f"{field}.must", ctx)
    should_c = _conditions(spec.get("should"), f"{field}.should", ctx)
    must = [c for c, _ in must_c]
    should = [c for c, _ in should_c]
    must_not = [c for c, _ in _conditions(spec.get("must_not"), f"{field}.must_not", ctx)]
    min_should = _min_should(spec.get("min_should"), f"{field}.min_should", ctx)
    # every `must` narrows; `should` narrows only when each of its conditions can
    narrowing = [lk for _, lk in must_c if lk is not None]
    should_lookups = [lk for _, lk in should_c]
    should_narrows = all(lk is not None for lk in should_lookups)
    if should_lookups and should_narrows:
        narrowing.append(AnyOf(tuple(lk for lk in should_lookups if lk is not None)))
    lookup: Lookup | None = None
    if narrowing:
        lookup = narrowing[0] if len(narrowing) == 1 else AllOf(tuple(narrowing))
        whole = len(narrowing) == len(must_c) + bool(should_lookups) and should_narrows
        if not whole or must_not or min_should is not None:
            lookup = Partial(lookup)

    def pred(pid: PointId, payload: Payload | None) -> bool:
        if any(not c(pid, payload) for c in must):
            return False
        if should and not any(c(pid, payload) for c in should):
            return False
        if any(c(pid, payload) for c in must_not):
            return False
        if min_should is not None:
            conds, count = min_should
            if sum(1 for c in conds if c(pid, payload)) < count:
                return False
        return True

    return pred, lookup


def _conditions(raw: Any, field: str, ctx: _Context) -> list[_Compiled]:
    if raw is None:
        return []
    items = raw if isinstance(raw, list) else [raw]
    return [_condition(c, f"{field}[{i}]", ctx) for i, c in enumerate(items)]


def _min_should(raw: Any, field: str, ctx: _Context) -> tuple[list[Predicate], int] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) != {"conditions", "min_count"}:
        raise ValidationError("min_should is {conditions: [...], min_count: n}", field=field)
    count = raw["min_count"]
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValidationError(
            "min_count must be a non-negative integer", field=f"{field}.min_count"
        )
    return [c for c, _ in _conditions(raw["conditions"], f"{field}.conditions", ctx)], count


def _condition(spec: Any, field: str, ctx: _Context) -> _Compiled:
    if not isinstance(spec, dict):
        raise ValidationError("a condition is an object", field=field)
    given, spec = spec, {k: v for k, v in spec.items() if v is not None}  # null = absent
    if not spec and not set(given) <= set(_CLAUSES):
        raise ValidationError("a condition is a non-empty object", field=field)
    if not spec or set(spec) & set(_CLAUSES):  # ({} is an empty filter: every point passes)
        return _filter(spec, field, ctx)
    if "has_id" in spec:
        _not_nested(ctx, "has_id", field)
        return _has_id(spec, field)
    if "has_vector" in spec:
        _not_nested(ctx, "has_vector", field)
        return _has_vector(spec, field, ctx), None
    if "nested" in spec:
        return _nested(spec, field, ctx), None
    if "slice" in spec:
        _not_nested(ctx, "slice", field)
        return _slice(spec, field), None
    if "is_empty" in spec and "key" not in spec:
        return _is_empty(_single_key(spec, "is_empty", field), f"{field}.is_empty"), None
    if "is_null" in spec and "key" not in spec:
        return _is_null(_single_key(spec, "is_null", field), f"{field}.is_null"), None
    if "key" in spec:
        return _field_condition(spec, field, ctx)
    raise ValidationError(f"unknown condition {sorted(spec)[0]!r}", field=field)


def _not_nested(ctx: _Context, name: str, field: str) -> None:
    # Qdrant documents these as unsupported in a nested filter (its engine reads them as
    # false for every element there, silently); refused, so that no filter means less
    # than it says.
    if ctx.prefix:
        raise ValidationError(
            f"{name} is not supported inside a nested filter: put it beside the nested condition",
            field=f"{field}.{name}",
        )


def _single_key(spec: dict[str, Any], name: str, field: str) -> str:
    if len(spec) != 1:
        raise ValidationError(f"{name} takes no sibling fields", field=field)
    inner = spec[name]
    if not isinstance(inner, dict) or set(inner) != {"key"} or not isinstance(inner["key"], str):
        raise ValidationError(f"{name} is {{key: 'path'}}", field=f"{field}.{name}")
    return payload_key(inner["key"], f"{field}.{name}.key")


def payload_key(key: Any, field: str) -> str:
    """``key`` once it is a payload path (Qdrant refuses any other: a typo such as
    ``a[`` or ``a..b`` must not quietly match nothing)."""
    checked = stored_key(key, field)
    paths.parse(checked, field)
    return checked


def stored_key(key: Any, field: str) -> str:
    """``key`` once it is a string a payload index may be stored under (a collection
    stored before keys were checked as paths may have any)."""
    if not isinstance(key, str) or not key:
        raise ValidationError("key must be a non-empty payload path", field=field)
    if len(key) > MAX_KEY_LENGTH:
        raise ValidationError(
            f"key is {len(key)} characters long; at most {MAX_KEY_LENGTH} allowed", field=field
        )
    return key


def _has_id(spec: dict[str, Any], field: str) -> _Compiled:
    raw = spec["has_id"]
    if len(spec) != 1 or not isinstance(raw, list):
        raise ValidationError("has_id is a list of ids", field=f"{field}.has_id")
    ids = frozenset(point_id(v, f"{field}.has_id[{i}]") for i, v in enumerate(raw))
    return (lambda pid, _payload: pid in ids), Ids(ids)


def _has_vector(spec: dict[str, Any], field: str, ctx: _Context) -> Predicate:
    """A vector's name asks the collection (``bind``): every point has its own dense
    vector, ``""`` (it cannot be deleted), if it has one; a name it does not have
    matches no point (as in Qdrant's local mode)."""
    name = spec["has_vector"]
    if len(spec) != 1 or not isinstance(name, str):
        raise ValidationError("has_vector is a vector name", field=f"{field}.has_vector")
    ctx.vector_names.add(sparse.name(name, f"{field}.has_vector") if name else name)
    if ctx.vectors is None:  # (not bound to a collection: it never reads points so)
        return lambda _pid, _payload: not name
    has = ctx.vectors(name)
    return lambda pid, _payload: has(pid)


def _nested(spec: dict[str, Any], field: str, ctx: _Context) -> Predicate:
    """Qdrant's nested condition: the inner filter holds for one element (an object) of
    the array at ``key`` on its own, its keys read from that element."""
    raw = spec["nested"]
    at = f"{field}.nested"
    if len(spec) != 1 or not isinstance(raw, dict) or set(raw) != {"key", "filter"}:
        raise ValidationError("nested is {key, filter}", field=at)
    key = payload_key(raw["key"], f"{at}.key")
    array = key[:-2] if key.endswith("[]") else key  # `a` and `a[]` name the same array
    if not array:
        raise ValidationError("key must be a non-empty payload path", field=f"{at}.key")
    inner_ctx = dataclasses.replace(ctx, prefix=f"{ctx.prefix}{array}[].")
    inner, _ = _filter(raw["filter"], f"{at}.filter", inner_ctx)
    path = paths.steps(array)

    def pred(pid: PointId, payload: Payload | None) -> bool:
        for value in paths.reach(payload, path):
            if isinstance(value, list):
                for element in value:
                    if isinstance(element, dict) and inner(pid, element):
                        return True
        return False

    return pred


def _is_empty(key: str, field: str, wanted: bool = True) -> Predicate:
    """Qdrant's is_empty: the key reaches no value, or only nulls and empty arrays (an
    array holding a null is not empty)."""
    path = paths.steps(key)

    def pred(_pid: PointId, payload: Payload | None) -> bool:
        empty = all(v is None or v == [] for v in paths.reach(payload, path))
        return empty is wanted

    return pred


def _is_null(key: str, field: str, wanted: bool = True) -> Predicate:
    """Qdrant's is_null: a value at the key is null, or an array holding a null (its
    #10101); a missing key is not null."""
    path = paths.steps(key)

    def pred(_pid: PointId, payload: Payload | None) -> bool:
        null = any(
            v is None or (isinstance(v, list) and None in v) for v in paths.reach(payload, path)
        )
        return null is wanted

    return pred


def _slice(spec: dict[str, Any], field: str) -> Predicate:
    """Qdrant's slice condition: the points whose id falls into slice ``index`` of
    ``total`` (SipHash-2-4 of the id's bytes, as Qdrant hashes them, modulo ``total``)."""
    raw, at = spec["slice"], f"{field}.slice"
    if len(spec) != 1 or not isinstance(raw, dict) or set(raw) != {"total", "index"}:
        raise ValidationError("slice is {total, index}", field=at)
    total, index = raw["total"], raw["index"]
    if isinstance(total, bool) or not isinstance(total, int) or not 1 <= total <= _MAX_SLICES:
        raise ValidationError(f"total is an integer in 1..{_MAX_SLICES}", field=f"{at}.total")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < total:
        raise ValidationError("index is an integer in 0..total-1", field=f"{at}.index")
    return lambda pid, _payload: _id_hash(pid) % total == index


@functools.lru_cache(maxsize=1 << 16)
def _id_hash(pid: PointId) -> int:
    """SipHash-2-4 (zero key) of an id as Qdrant hashes it: an integer's 8 little-endian
    bytes, a UUID's 16 bytes; another string id (which Qdrant does not have) its UTF-8."""
    if isinstance(pid, int):
        data = pid.to_bytes(8, "little")
    else:
        try:
            data = uuid.UUID(pid).bytes
        except ValueError:
            data = pid.encode()
    return int(siphash24.siphash24(data, key=_ZERO_KEY).intdigest()) & _U64


def _field_condition(spec: dict[str, Any], field: str, ctx: _Context) -> _Compiled:
    key = payload_key(spec["key"], f"{field}.key")
    kinds = set(spec) - {"key"}
    if len(kinds) != 1 or not kinds <= set(_FIELD_KINDS):
        raise ValidationError(
            f"a field condition has exactly one of {', '.join(_FIELD_KINDS)}", field=field
        )
    (kind,) = kinds
    arg, at = spec[kind], f"{field}.{kind}"
    if kind == "values_count":
        return _values_count(arg, key, at), None
    if kind in _FLAGS:  # {key, is_empty: true}: the same as {is_empty: {key}}; false: not
        if not isinstance(arg, bool):
            raise ValidationError(f"{kind} is true or false", field=at)
        return (_is_empty if kind == "is_empty" else _is_null)(key, at, arg), None
    if kind == "match" and isinstance(arg, dict) and len(arg) == 1 and set(arg) <= {*_TEXT_MATCHES}:
        return _text_match(arg, key, at, ctx)
    lookup: Lookup | None = None
    if kind == "match":
        test, lookup = _match(arg, key, at)
    elif kind == "range":
        test, lookup = _range(arg, key, at)
    else:
        test = _GEO[kind](arg, at)
    return _any_value(test, key), lookup


def _any_value(test: Test, key: str) -> Predicate:
    """Whether any value at ``key`` passes ``test``. A missing key matches nothing, not
    even `except`, as in Qdrant."""

    def pred(_pid: PointId, payload: Payload | None) -> bool:
        return any(test(v) for v in values_at(payload, key))

    def top_level(_pid: PointId, payload: Payload | None) -> bool:
        # ``pred`` for a top-level field, without a generator: filters run per point
        value = None if payload is None else payload.get(key)
        if isinstance(value, list):
            return any(test(v) for v in value if v is not None)
        return value is not None and test(value)

    return top_level if _top_level(key) else pred


def _top_level(key: str) -> bool:
    """Whether ``key`` names a top-level key as it is written (a quoted key, ``"a b"``,
    is a path: its quotes are not part of the name)."""
    return "." not in key and "[" not in key and '"' not in key


def _match(spec: Any, key: str, field: str) -> tuple[Test, Lookup | None]:
    if not isinstance(spec, dict) or len(spec) != 1:
        raise ValidationError(
            "match has exactly one of value, any, except, text, text_any, phrase, prefix, "
            "substring",
            field=field,
        )
    ((kind, arg),) = spec.items()
    if kind == "value":
        # as in Qdrant: a string, an integer or a bool, matching values of its own kind
        # only (1 matches neither 1.0 nor true)
        if not isinstance(arg, str | int):  # (bool is an int)
            raise ValidationError(
                "match.value is a string, an integer or a bool", field=f"{field}.value"
            )
        wanted = hashable(arg)
        return (lambda v: hashable(v) == wanted), Match(key, frozenset([wanted]))
    if kind in ("any", "except"):
        if not _strings_or_integers(arg):
            raise ValidationError(
                f"match.{kind} is a list of strings or a list of integers",
                field=f"{field}.{kind}",
            )
        keys = frozenset(hashable(x) for x in arg)
        if kind == "any":
            return (lambda v: hashable(v) in keys), Match(key, keys)
        return (lambda v: hashable(v) not in keys), None
    if kind in ("prefix", "substring"):
        # Qdrant's keyword matches: case-sensitive, on strings only
        if not isinstance(arg, str):
            raise ValidationError(f"match.{kind} is a string", field=f"{field}.{kind}")
        if kind == "prefix":
            return (lambda v: isinstance(v, str) and v.startswith(arg)), None
        return (lambda v: isinstance(v, str) and arg in v), None
    raise ValidationError(f"unknown match kind {kind!r}", field=field)


def _text_match(spec: dict[str, Any], key: str, field: str, ctx: _Context) -> _Compiled:
    """Qdrant's full-text matches: ``text`` (every query token is a token of the text),
    ``text_any`` (one is) and ``phrase`` (they follow each other in it), tokenized by
    the key's text index, or with the default parameters where it has none. A query
    without tokens matches nothing; so does a phrase on an index without
    ``phrase_matching``, as Qdrant documents."""
    ((kind, query),) = spec.items()
    if not isinstance(query, str):
        raise ValidationError(f"match.{kind} is a string", field=f"{field}.{kind}")
    path = ctx.prefix + key
    ctx.text_keys.add(path)
    params = ctx.text.get(path)
    tokenizer = params or DEFAULT
    wanted = tokenizer.query_tokens(query)
    if not wanted or (kind == "phrase" and params is not None and not params.phrase_matching):
        return (lambda _pid, _payload: False), _NOTHING
    need = frozenset(wanted)
    if kind == "phrase":
        return _any_value(
            lambda v: isinstance(v, str) and has_phrase(_tokens(tokenizer, v), wanted), key
        ), (None if params is None or ctx.prefix else Partial(Tokens(key, need, False)))
    any_of = kind == "text_any"

    def holds(tokens: Iterable[str]) -> bool:
        return not need.isdisjoint(tokens) if any_of else need.issubset(tokens)

    if params is None or ctx.prefix:  # each string on its own
        return _any_value(lambda v: isinstance(v, str) and holds(_tokens(tokenizer, v)), key), None

    def pred(_pid: PointId, payload: Payload | None) -> bool:
        return holds(document_tokens(tokenizer, payload, key))

    return pred, Tokens(key, need, any_of)


def document_tokens(params: TextParams, payload: Payload | None, key: str) -> set[str]:
    """The tokens of the strings at ``key``: on a key with a text index a point's
    strings are one document, as Qdrant's index (and ours) holds them."""
    out: set[str] = set()
    for v in values_at(payload, key):
        if isinstance(v, str):
            out.update(_tokens(params, v))
    return out


@functools.lru_cache(maxsize=4096)  # (filters call it per point; texts repeat)
def _tokens(params: TextParams, text: str) -> tuple[str, ...]:
    return tuple(params.doc_tokens(text))


def _values_count(spec: Any, key: str, field: str) -> Predicate:
    """Qdrant's values_count: a value at ``key`` that is an array counts its elements, a
    null 0, anything else 1; a missing key counts 0; some value's count is in bounds."""
    if not isinstance(spec, dict) or set(spec) - set(_RANGE_OPS):
        raise ValidationError("values_count takes gt, gte, lt, lte", field=field)
    for op, bound in spec.items():
        if bound is not None and (
            isinstance(bound, bool) or not isinstance(bound, int) or bound < 0
        ):
            raise ValidationError(
                "values_count bounds are non-negative integers", field=f"{field}.{op}"
            )
    gt, gte, lt, lte = (spec.get(op) for op in _RANGE_OPS)
    path = paths.steps(key)

    def within(n: int) -> bool:
        return (
            (gt is None or n > gt)
            and (gte is None or n >= gte)
            and (lt is None or n < lt)
            and (lte is None or n <= lte)
        )

    def pred(_pid: PointId, payload: Payload | None) -> bool:
        counts = [_count(v) for v in paths.reach(payload, path)]
        return any(within(n) for n in counts or (0,))

    return pred


def _count(value: Any) -> int:
    if value is None:
        return 0
    return len(value) if isinstance(value, list) else 1


def _range(spec: Any, key: str, field: str) -> tuple[Callable[[Any], bool], Lookup]:
    """Numbers between number bounds, or (Qdrant's datetime range) datetime strings
    between datetime bounds, compared as Qdrant does, in whole microseconds (``micros``:
    Qdrant's formats; a time without a zone is UTC). Without bounds (``{}``, or only
    nulls) it is a number range, as Qdrant reads it: every number is in it."""
    if not isinstance(spec, dict) or set(spec) - set(_RANGE_OPS):
        raise ValidationError("range takes gt, gte, lt, lte", field=field)
    bounds: dict[str, int | float] = {}
    kinds = set()
    for op, bound in spec.items():
        if bound is None:
            continue
        if isinstance(bound, str):
            at = micros(bound)
            if at is None:
                raise ValidationError(
                    "a datetime bound is RFC 3339, like 2024-05-01T12:00:00Z",
                    field=f"{field}.{op}",
                )
            bounds[op], kind = at, "datetime"
        elif isinstance(bound, bool) or not isinstance(bound, int | float):
            raise ValidationError("range bounds are numbers or datetimes", field=f"{field}.{op}")
        else:
            bounds[op], kind = bound, "number"
        kinds.add(kind)
    if len(kinds) > 1:
        raise ValidationError("range bounds are all numbers or all datetimes", field=field)
    gt, gte, lt, lte = (bounds.get(op) for op in _RANGE_OPS)
    lookup = Range(key, gt, gte, lt, lte, datetimes="datetime" in kinds)

    def within(v: int | float) -> bool:  # Range.within, with the bounds in locals: per point
        return (
            (gt is None or v > gt)
            and (gte is None or v >= gte)
            and (lt is None or v < lt)
            and (lte is None or v <= lte)
        )

    if lookup.datetimes:
        return (
            lambda v: isinstance(v, str) and (at := micros(v)) is not None and within(at)
        ), lookup
    return (lambda v: not isinstance(v, bool) and isinstance(v, int | float) and within(v)), lookup


def _strings_or_integers(values: Any) -> bool:
    """Whether ``values`` is what Qdrant's ``any`` and ``except`` take: a list of strings
    or a list of integers (not bools, not floats, not both kinds)."""
    if not isinstance(values, list):
        return False
    return all(isinstance(v, str) for v in values) or all(
        isinstance(v, int) and not isinstance(v, bool) for v in values
    )


def hashable(value: Any) -> tuple[str, Any]:
    """``value`` as matched: each JSON kind apart, as Qdrant matches them (true is not 1,
    and 1.0 is a float, not the integer 1)."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int):
        return ("int", value)
    if isinstance(value, float):
        return ("float", value)
    if isinstance(value, str):
        return ("str", value)
    return ("other", id(value))


def values_at(payload: Payload | None, key: str) -> Iterable[Any]:
    """Every scalar value at ``key``; arrays are flattened one level, as Qdrant does."""
    if not _top_level(key):
        return _path_values(payload, key)
    # a top-level field, the common case, without generators (filters run per point)
    value = None if payload is None else payload.get(key)
    if isinstance(value, list):
        return [v for v in value if v is not None]
    return () if value is None else (value,)


def _path_values(payload: Payload | None, key: str) -> Iterator[Any]:
    for value in paths.reach(payload, paths.steps(key)):
        if isinstance(value, list):
            yield from (v for v in value if v is not None)
        elif value is not None:
            yield value
