"""Payload indexes: for each payload key a user indexed, which slots hold which values.

A filter's ``Lookup`` (see ``filters``) is answered from them with a set of slots that
holds every point the filter can accept (often exactly those): a filtered count, scroll,
delete or facet then reads those points instead of every payload, and a filtered search
knows how many points can match without sampling.

Every index maps each scalar at its key (arrays flattened, as filters see them) to the
slots holding it, so ``match`` (value / any) is answered for any kind; ``integer`` and
``float`` indexes also keep their numbers in order for ``range``, and ``datetime``
indexes the instants of datetime strings (Qdrant's formats, see ``datetimes``) in
integer microseconds, as Qdrant keeps them, for datetime ranges and ordered listings.
``text`` indexes also map each token of the strings at their key (as their tokenizer
makes them: see ``text``) to the slots holding it, for full-text matches (exactly,
but for a prefix query word longer than ``text.PREFIX_CAP``: see ``text``). ``geo`` is
accepted (Qdrant's clients create it) and narrows only by value.

An index's schema is its type's name, or (a ``text`` index created with Qdrant's object
form) its ``TextParams`` as a dict: the form the log, snapshots and the collection's
config keep.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from sortedcontainers import SortedList

from vectorizer.engine import geo
from vectorizer.engine.datetimes import micros
from vectorizer.engine.filters import (
    AnyOf,
    Ids,
    Lookup,
    Match,
    Partial,
    Payload,
    Range,
    Tokens,
    document_tokens,
    hashable,
    values_at,
)
from vectorizer.engine.grouping import FacetKey, facet_key
from vectorizer.engine.text import LongPrefix, TextParams, parse_text_params
from vectorizer.engine.validation import PointId
from vectorizer.errors import ValidationError

SCHEMAS = ("keyword", "integer", "float", "bool", "datetime", "uuid", "text", "geo")
# The options of Qdrant's object form of each type but text (whose tokenizer is its own,
# see ``text.parse_text_params``): booleans that tune its storage, which this engine has
# no use for. They are checked, kept and shown back in ``payload_schema`` as given.
_OPTIONS: dict[str, tuple[str, ...]] = {
    "keyword": ("is_tenant", "on_disk", "enable_hnsw"),
    "integer": ("lookup", "range", "is_principal", "on_disk", "enable_hnsw"),
    "float": ("is_principal", "on_disk", "enable_hnsw"),
    "bool": ("on_disk", "enable_hnsw"),
    "datetime": ("is_principal", "on_disk", "enable_hnsw"),
    "uuid": ("is_tenant", "on_disk", "enable_hnsw"),
    "geo": ("on_disk", "enable_hnsw"),
}
# a type's name, or a text index's parameters (``TextParams.to_dict``)
Schema = str | dict[str, Any]
_NUMBERS = ("integer", "float")
# slots holding every point a lookup names, and whether exactly those
Narrowed = tuple[set[int], bool]
# An AllOf gathers a part's points only when it names at most this many times as many
# as its most selective part (and a few more): intersecting with a broad part costs more
# than reading the few points' payloads.
GATHER_RATIO = 4
# Roughly the heap one indexed value takes: its set entry, and a share of the dict entry,
# set and sorted-list slot of its value.
BYTES_PER_VALUE = 120


def _is_uuid(v: str) -> bool:
    try:
        uuid.UUID(v)
    except ValueError:
        return False
    return True


# What a value of each index type is (the values the index counts its points by).
_FITS: dict[str, Callable[[Any], bool]] = {
    "keyword": lambda v: isinstance(v, str),
    "text": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "datetime": lambda v: isinstance(v, str) and micros(v) is not None,
    "uuid": lambda v: isinstance(v, str) and _is_uuid(v),
    "geo": lambda v: geo.stored_point(v) is not None,
}


def entries_per_point(key: str, schema: Schema, payloads: Iterable[Payload | None]) -> float:
    """About how many entries an index of ``schema`` on ``key`` would hold per point,
    from these points' payloads: their distinct scalars there, and (a text index) their
    distinct tokens. What a memory estimate counts at ``BYTES_PER_VALUE`` before the
    index exists."""
    _, text = schema_parts(schema)
    points = entries = 0
    for payload in payloads:
        points += 1
        scalars = {hashable(v) for v in values_at(payload, key) if isinstance(v, str | int | float)}
        entries += len(scalars)
        if text is not None:
            entries += len(document_tokens(text, payload, key))
    return entries / points if points else 0.0


def parse_schema(raw: Any, field: str = "field_schema") -> Schema:
    """The index schema of ``raw``: a name (``"keyword"``) or Qdrant's object form
    (``{"type": "keyword", ...}``). A text index's object form keeps its tokenizer's
    parameters (``text.parse_text_params``); the other types' options (``_OPTIONS``)
    are checked and kept as given (none given: the name alone)."""
    name = raw.get("type") if isinstance(raw, dict) else raw
    if name not in SCHEMAS:
        raise ValidationError(f"an index type is one of {', '.join(SCHEMAS)}", field=field)
    if not isinstance(raw, dict):
        return str(name)
    if name == "text":
        return parse_text_params(raw, field).to_dict()
    allowed = _OPTIONS[name]
    for key, value in raw.items():
        if key != "type" and key not in allowed:
            raise ValidationError(
                f"a {name} index takes {', '.join(allowed)}", field=f"{field}.{key}"
            )
        if key != "type" and value is not None and not isinstance(value, bool):
            raise ValidationError(f"{key} is true or false", field=f"{field}.{key}")
    given = {k: v for k, v in raw.items() if k != "type" and v is not None}
    return {"type": name, **given} if given else str(name)


def schema_parts(schema: Schema) -> tuple[str, TextParams | None]:
    """An index's type, and (a text index) its tokenizer."""
    if isinstance(schema, dict):  # (parse_schema made it)
        name = str(schema["type"])
        return name, parse_text_params(schema, "schema") if name == "text" else None
    return schema, TextParams() if schema == "text" else None


def infer_schema(payloads: Iterable[Payload | None], key: str, field: str = "field_schema") -> str:
    """The index type for the values at ``key`` in ``payloads``, as Qdrant infers one
    when it is not given: the kind of the values (all of one kind)."""
    kinds = set()
    for payload in payloads:
        for v in values_at(payload, key):
            if isinstance(v, bool):
                kinds.add("bool")
            elif isinstance(v, int):
                kinds.add("integer")
            elif isinstance(v, float):
                kinds.add("float")
            elif isinstance(v, str):
                kinds.add("datetime" if micros(v) is not None else "keyword")
            else:
                kinds.add("object")
    if kinds == {"integer", "float"}:
        return "float"
    if kinds == {"keyword", "datetime"}:
        return "keyword"
    if len(kinds) != 1 or kinds == {"object"}:
        found = "no values" if not kinds else f"values of kinds {', '.join(sorted(kinds))}"
        raise ValidationError(
            f"give {field}: {found} at {key!r} to infer an index type from", field=field
        )
    return kinds.pop()


class FieldIndex:
    """The values at one payload key."""

    def __init__(self, key: str, schema: str, text: TextParams | None = None) -> None:
        self.key, self.schema, self.text = key, schema, text
        self.points = 0  # points with at least one value here (a geo index: a geo point)
        self.token_entries = 0  # (a text index) the distinct tokens of each point, summed
        # floats with integral values (5.0): they share 5's place among the ordered
        # numbers, so an ordered listing cannot tell which it holds while any is here
        self._integral_floats = 0
        self._by_value: dict[tuple[str, Any], set[int]] = {}
        # numbers (or datetimes, in microseconds) in order, each once, for ranges
        self._ordered: SortedList[int | float] | None = None
        self._by_number: dict[int | float, set[int]] = {}
        if schema in _NUMBERS or schema == "datetime":
            self._ordered = SortedList()
        # a text index: each token of the strings here -> the slots holding it
        self._by_token: dict[str, set[int]] = {}

    def add(self, slot: int, payload: Payload | None) -> None:
        if self.text is not None:
            tokens = document_tokens(self.text, payload, self.key)
            for token in tokens:
                self._by_token.setdefault(token, set()).add(slot)
            self.token_entries += len(tokens)
        seen = False
        for h, number, integral in self._entries(payload):
            seen = True
            self._integral_floats += integral
            self._by_value.setdefault(h, set()).add(slot)
            if number is not None:
                slots = self._by_number.get(number)
                if slots is None:
                    slots = self._by_number[number] = set()
                    self._ordered.add(number)  # type: ignore[union-attr]
                slots.add(slot)
        self.points += self._counted(payload, seen)

    def remove(self, slot: int, payload: Payload | None) -> None:
        """Undo ``add`` of the same payload."""
        if self.text is not None:
            tokens = document_tokens(self.text, payload, self.key)
            for token in tokens:
                _discard(self._by_token, token, slot)
            self.token_entries -= len(tokens)
        seen = False
        for h, number, integral in self._entries(payload):
            seen = True
            self._integral_floats -= integral
            _discard(self._by_value, h, slot)
            if number is not None and _discard(self._by_number, number, slot):
                self._ordered.remove(number)  # type: ignore[union-attr]
        self.points -= self._counted(payload, seen)

    def _counted(self, payload: Payload | None, has_scalar: bool) -> bool:
        """Whether the point counts among ``points``: it holds a value of the index's
        type here (an integer index: an integer, not a string; a geo index: a geo
        point), as Qdrant counts the points an index holds."""
        if not has_scalar and self.schema != "geo":
            return False
        fits = _FITS[self.schema]
        return any(fits(v) for v in values_at(payload, self.key))

    def _entries(
        self, payload: Payload | None
    ) -> Iterator[tuple[tuple[str, Any], int | float | None, bool]]:
        """For each scalar at the key: its value as matched, where it sits in the ordered
        values (if this index orders it), and whether it is an integral float."""
        for v in values_at(payload, self.key):
            if isinstance(v, str | int | float):  # bool is an int
                integral = isinstance(v, float) and v.is_integer()
                yield hashable(v), self._number(v), integral

    def tokens(self, lookup: Tokens) -> set[int] | None:
        """Slots whose texts hold all (or any) of the tokens, and (a ``LongPrefix``
        among them: see ``exactly``) maybe others; None without a text index."""
        if self.text is None:
            return None
        index_token = self.text.index_token
        postings = [self._by_token.get(index_token(t), set()) for t in lookup.tokens]
        if lookup.any:
            return set().union(*postings)
        postings.sort(key=len)
        return set(postings[0]).intersection(*postings[1:]) if postings else set()

    @staticmethod
    def exactly(lookup: Tokens) -> bool:
        """Whether ``tokens`` names exactly the points holding the tokens: not when one
        is a prefix query word longer than the prefixes indexed on their own, looked up
        under its capped prefix (the filter reads those points' texts)."""
        return not any(isinstance(t, LongPrefix) for t in lookup.tokens)

    def _number(self, v: Any) -> int | float | None:
        """Where ``v`` sits in the ordered values, if this index orders it."""
        if self._ordered is None or isinstance(v, bool):
            return None
        if self.schema == "datetime":
            return micros(v) if isinstance(v, str) else None
        return v if isinstance(v, int | float) else None

    def match(self, values: Iterable[tuple[str, Any]]) -> set[int]:
        out: set[int] = set()
        for h in values:
            out.update(self._by_value.get(h, ()))
        return out

    def estimate(self, lookup: Match | Range | Tokens) -> int | None:
        """Slots ``match``, ``range`` or ``tokens`` would return, counted without
        building the set (a slot with several of the values counts for each)."""
        if isinstance(lookup, Match):
            return sum(len(self._by_value.get(h, ())) for h in lookup.values)
        if isinstance(lookup, Tokens):
            if self.text is None:
                return None
            index_token = self.text.index_token
            sizes = [len(self._by_token.get(index_token(t), ())) for t in lookup.tokens]
            return sum(sizes) if lookup.any else min(sizes, default=0)
        bounds = self._bounds(lookup)
        if bounds is None:
            return None
        return sum(len(self._by_number[n]) for n in bounds)

    def _bounds(self, lookup: Range) -> Iterator[int | float] | None:
        """The ordered numbers within the range, or None when this index does not order
        the kind the range compares (numbers, or datetimes)."""
        if self._ordered is None or lookup.datetimes != (self.schema == "datetime"):
            return None
        gt, gte, lt, lte = lookup.gt, lookup.gte, lookup.lt, lookup.lte
        low_open = gt is not None and (gte is None or gt >= gte)  # the tighter bound wins
        high_open = lt is not None and (lte is None or lt <= lte)
        low = gt if low_open else gte
        high = lt if high_open else lte
        return self._ordered.irange(low, high, (not low_open, not high_open))

    def facet_counts(self) -> dict[FacetKey, int]:
        """Points per string, integer and boolean value here (as ``grouping.facet``
        counts them: floats are not facets)."""
        counts: dict[FacetKey, int] = {}
        for (_kind, value), slots in self._by_value.items():
            key = facet_key(value)
            if key is not None:
                counts[key] = len(slots)
        return counts

    def in_order(
        self, descending: bool, start: int | float | None, datetimes: bool = False
    ) -> Iterator[tuple[int | float, set[int]]] | None:
        """(value, slots) in the order of the numbers (or ``datetimes``, in microseconds,
        as the index keeps them) here, from ``start`` (inclusive), as ``ordering.ordered``
        lists them; None when this index cannot list them so (it does not order that
        kind, or integers cannot be told from equal floats)."""
        if self._ordered is None or (self._integral_floats and not datetimes):
            return None
        if (self.schema == "datetime") != datetimes:
            return None
        if descending:
            keys = self._ordered.irange(maximum=start, reverse=True)
        else:
            keys = self._ordered.irange(minimum=start)
        by_number = self._by_number
        if datetimes:
            return ((n, by_number[n]) for n in keys)
        return ((_as_stored(n), by_number[n]) for n in keys)

    def range(self, lookup: Range) -> set[int] | None:
        """Slots with a value within the bounds (None: see ``_bounds``)."""
        bounds = self._bounds(lookup)
        if bounds is None:
            return None
        by_number = self._by_number
        return set().union(*(by_number[n] for n in bounds))


def _discard(index: dict[Any, set[int]], key: Any, slot: int) -> bool:
    """Take ``slot`` from ``index[key]``; True when that emptied (and dropped) the key."""
    slots = index.get(key)
    if slots is None:
        return False
    slots.discard(slot)
    if slots:
        return False
    del index[key]
    return True


def _as_stored(n: int | float) -> int | float:
    """A number key as the payloads hold it: while no integral float is held, an
    integral key stands for integers (the key is the first value that made it)."""
    return int(n) if isinstance(n, float) and n.is_integer() else n


# Above this many bytes of token entries by the bound, a write's text is tokenized to
# count them exactly (the bound can be a few times the count: it would refuse writes near
# the memory line that fit).
EXACT_TOKENS_ABOVE = 4 << 20


def text_entries(
    texts: Mapping[str, TextParams], payload: Payload | None, key: str | None = None
) -> int:
    """About how many token entries the text indexes ``texts`` (by key) gain from a point
    taking ``payload``: counted from the strings at their keys, or, when ``payload`` is
    set at the path ``key`` (``set_payload``), from every string in it. A bound (a word
    of n characters makes at most n prefixes; words take at least two characters with
    their separator) unless that is large, then the distinct tokens themselves."""
    if not texts or payload is None:
        return 0
    found = [(params, _strings(payload, None if key else at)) for at, params in texts.items()]
    bound = sum(
        sum(len(s) if params.tokenizer == "prefix" else len(s) // 2 + 1 for s in strings)
        for params, strings in found
    )
    if bound * BYTES_PER_VALUE <= EXACT_TOKENS_ABOVE:
        return bound
    return sum(len({t for s in strings for t in params.doc_tokens(s)}) for params, strings in found)


def _strings(payload: Payload, key: str | None) -> list[str]:
    """The strings at ``key`` (None: anywhere in ``payload``)."""
    if key is not None:
        return [v for v in values_at(payload, key) if isinstance(v, str)]
    out: list[str] = []
    level: list[Any] = [payload]
    while level:
        out += [v for v in level if isinstance(v, str)]
        level = [
            item
            for c in level
            if isinstance(c, dict | list)
            for item in (c.values() if isinstance(c, dict) else c)
        ]
    return out


class PayloadIndex:
    """The field indexes of one collection."""

    def __init__(self) -> None:
        self.fields: dict[str, FieldIndex] = {}
        # the text indexes' tokenizers by key: a new dict whenever an index comes or goes
        # (``filters.bind`` keys its cache on it)
        self.texts: dict[str, TextParams] = {}
        self._schemas: dict[str, Schema] = {}

    def __bool__(self) -> bool:
        return bool(self.fields)

    def values(self) -> int:
        """About how many entries the indexes hold (a value per point and key, and a
        text index's tokens): what memory estimates count at ``BYTES_PER_VALUE``."""
        return sum(i.points + i.token_entries for i in self.fields.values())

    def create(
        self, key: str, schema: Schema, payloads: Iterable[tuple[int, Payload | None]]
    ) -> None:
        name, text = schema_parts(schema)
        index = FieldIndex(key, name, text)
        for slot, payload in payloads:
            index.add(slot, payload)
        self.fields[key] = index
        self._schemas[key] = schema
        self._texts_changed()

    def drop(self, key: str) -> None:
        self.fields.pop(key, None)
        self._schemas.pop(key, None)
        self._texts_changed()

    def _texts_changed(self) -> None:
        self.texts = {k: i.text for k, i in self.fields.items() if i.text is not None}

    def add(self, slot: int, payload: Payload | None) -> None:
        if payload is not None:
            for index in self.fields.values():
                index.add(slot, payload)

    def remove(self, slot: int, payload: Payload | None) -> None:
        if payload is not None:
            for index in self.fields.values():
                index.remove(slot, payload)

    def candidates(self, lookup: Lookup, id_slots: Mapping[PointId, int]) -> Narrowed | None:
        """Slots that hold every point ``lookup`` names (a new set), and whether they are
        exactly those; None when the indexes cannot answer it."""
        if isinstance(lookup, Ids):
            return {s for pid in lookup.ids if (s := id_slots.get(pid)) is not None}, True
        if isinstance(lookup, Match | Range | Tokens):
            index = self.fields.get(lookup.key)
            if index is None:
                return None
            found: set[int] | None
            exactly = True
            if isinstance(lookup, Match):
                found = index.match(lookup.values)
            elif isinstance(lookup, Range):
                found = index.range(lookup)
            else:
                found, exactly = index.tokens(lookup), index.exactly(lookup)
            return None if found is None else (found, exactly)
        if isinstance(lookup, Partial):
            inner = self.candidates(lookup.part, id_slots)
            return None if inner is None else (inner[0], False)
        if isinstance(lookup, AnyOf):
            parts = [self.candidates(part, id_slots) for part in lookup.parts]
            if any(p is None for p in parts):
                return None
            answered = [p for p in parts if p is not None]
            return set().union(*(p[0] for p in answered)), all(p[1] for p in answered)
        # AllOf: gather the parts that name few points; a part that names many more than
        # the smallest costs more to gather than its points cost the predicate to read
        bounds = [(self.estimate(part, id_slots), part) for part in lookup.parts]
        known = [(n, part) for n, part in bounds if n is not None]
        if not known:
            return None
        fewest = min(n for n, _ in known)
        gathered = [
            got
            for n, part in known
            if n <= GATHER_RATIO * fewest + 64
            and (got := self.candidates(part, id_slots)) is not None
        ]
        if not gathered:  # (a part that can be counted can be gathered)
            return None
        gathered.sort(key=lambda got: len(got[0]))
        exact = len(gathered) == len(bounds) and all(got[1] for got in gathered)
        return gathered[0][0].intersection(*(got[0] for got in gathered[1:])), exact

    def estimate(self, lookup: Lookup, id_slots: Mapping[PointId, int]) -> int | None:
        """At most how many points ``candidates`` would name, without building the set
        (None when the indexes cannot answer ``lookup``)."""
        if isinstance(lookup, Ids):
            return len(lookup.ids)
        if isinstance(lookup, Match | Range | Tokens):
            index = self.fields.get(lookup.key)
            return None if index is None else index.estimate(lookup)
        if isinstance(lookup, Partial):
            return self.estimate(lookup.part, id_slots)
        parts = [self.estimate(part, id_slots) for part in lookup.parts]
        if isinstance(lookup, AnyOf):
            return None if any(p is None for p in parts) else sum(p or 0 for p in parts)
        return min((p for p in parts if p is not None), default=None)

    def schema(self) -> dict[str, dict[str, Any]]:
        """Qdrant's ``payload_schema``: each indexed key's type, the parameters it was
        created with (given in the object form) and its points."""
        return {
            k: {
                "data_type": i.schema,
                "params": s if isinstance(s := self._schemas[k], dict) else None,
                "points": i.points,
            }
            for k, i in self.fields.items()
        }
