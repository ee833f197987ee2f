"""Points in the order of a numeric payload value (Qdrant's scroll ``order_by``).

As in Qdrant: a point is listed once per distinct number at the key (an array of
numbers lists it once for each), points without a number there are not listed, equal
values go by id, and ``start_from`` is inclusive (at least it ascending, at most it
descending). Paging goes by ``start_from``, not by an offset. Ordered by datetimes, the
values are the datetime strings at the key (in Qdrant's formats: see ``datetimes``), as
integer microseconds since the epoch (what Qdrant reports as ``order_value``, and what a
datetime index keeps); other values are not listed.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import Any

from vectorizer.engine.datetimes import micros
from vectorizer.engine.filters import Payload, values_at
from vectorizer.engine.validation import PointId, id_order

OrderValue = int | float


def order_values(payload: Payload | None, key: str) -> set[OrderValue]:
    """The distinct numbers at ``key`` (booleans are not numbers here)."""
    return {
        v for v in values_at(payload, key) if isinstance(v, int | float) and not isinstance(v, bool)
    }


def datetime_values(payload: Payload | None, key: str) -> set[OrderValue]:
    """The distinct datetimes at ``key``, in microseconds since the epoch."""
    return {
        t for v in values_at(payload, key) if isinstance(v, str) and (t := micros(v)) is not None
    }


def ordered(
    entries: Iterable[tuple[PointId, Payload | None]],
    key: str,
    *,
    descending: bool,
    start: OrderValue | None,
    limit: int,
    datetimes: bool = False,
) -> list[tuple[PointId, OrderValue]]:
    """The first ``limit`` (id, value) pairs of ``entries`` in the order of their values
    at ``key`` (numbers, or ``datetimes``), from ``start`` on."""
    values = datetime_values if datetimes else order_values
    pairs: Iterable[tuple[OrderValue, tuple[int, Any], PointId]] = (
        (value, id_order(pid), pid)
        for pid, payload in entries
        for value in values(payload, key)
        if start is None or (value <= start if descending else value >= start)
    )
    pick = heapq.nlargest if descending else heapq.nsmallest
    return [(pid, value) for value, _, pid in pick(limit, pairs, key=lambda p: (p[0], p[1]))]
