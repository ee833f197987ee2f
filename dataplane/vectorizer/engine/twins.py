"""Twins: points whose vector equals one the HNSW graph already holds.

hnswlib keeps a node's neighbours at distance 0 without pruning them (a tie passes its
selection heuristic), so many copies of one vector fill each other's neighbour lists and
become an island with no links out. Once the graph's entry point lies on it (the node
that draws the highest level, likely one of many copies), every search ends there:
recall 0 with 8,000 copies beside 1,500 other points. Many documents embed alike (empty
texts, boilerplate), so this is not an exotic case.

So only one of a group of equal vectors is a graph node; the others are its *twins*,
kept here and never linked. A search expands each node it finds into the node and its
twins, all with the node's score (filters apply to each). When the node goes, one twin
becomes the node in its place (the index links it).

Vectors are told apart by the hash of their bytes, and a hash hit is checked against
the node's vector before a point joins its group: a collision only costs a link.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import chain

import numpy as np
import numpy.typing as npt

from vectorizer.engine.validation import Matrix

# What the twins' bookkeeping takes per graph node: its hash by slot, and its entry in
# the table of nodes by hash (a dict of ints took 128 bytes a node).
BYTES_PER_NODE = 24

Hits = list[tuple[int, float]]
Accept = Callable[[int], bool]
VectorOf = Callable[[int], "Matrix | None"]  # a node's vector, None when it has none
Ints = npt.NDArray[np.int64]

NONE = -1  # no slot

# The newest entries wait in a dict until there are this many, or a sixteenth as many as
# the arrays hold, then join the arrays in one merge.
_MERGE_AT = 1024


class NodeTable:
    """Each vector's hash -> the slot of its graph node, in 16 bytes a node: sorted
    arrays of hashes and slots, and a small dict of the newest entries merged into them
    in bulk. A dropped entry's slot is ``NONE`` until the next merge."""

    def __init__(self) -> None:
        self._keys: Ints = np.empty(0, dtype=np.int64)
        self._slots: Ints = np.empty(0, dtype=np.int64)
        self._newest: dict[int, int] = {}

    def reset(self, keys: Ints, slots: Ints) -> None:
        """Hold exactly these entries (``keys`` sorted and distinct)."""
        self._keys, self._slots, self._newest = keys, slots, {}

    def get_many(self, keys: list[int]) -> list[int]:
        """The node of each hash in ``keys`` (``NONE``: none)."""
        found = [NONE] * len(keys)
        if len(self._keys):
            wanted = np.asarray(keys, dtype=np.int64)
            at = np.minimum(np.searchsorted(self._keys, wanted), len(self._keys) - 1)
            found = np.where(self._keys[at] == wanted, self._slots[at], NONE).tolist()
        if self._newest:
            newest = self._newest
            found = [newest.get(key, slot) for key, slot in zip(keys, found, strict=True)]
        return found

    def get(self, key: int) -> int:
        slot = self._newest.get(key)
        if slot is not None:
            return slot
        at = self._at(key)
        return NONE if at is None else int(self._slots[at])

    def put(self, key: int, slot: int) -> None:
        at = self._at(key)
        if at is not None:
            self._slots[at] = slot
            return
        self._newest[key] = slot
        if len(self._newest) >= max(_MERGE_AT, len(self._keys) >> 4):
            self._merge()

    def pop(self, key: int) -> None:
        if self._newest.pop(key, None) is None:
            at = self._at(key)
            if at is not None:
                self._slots[at] = NONE

    def _at(self, key: int) -> int | None:
        at = int(np.searchsorted(self._keys, key))
        return at if at < len(self._keys) and self._keys[at] == key else None

    def _merge(self) -> None:
        keys = np.fromiter(self._newest, dtype=np.int64, count=len(self._newest))
        slots = np.fromiter(self._newest.values(), dtype=np.int64, count=len(keys))
        order = np.argsort(keys)
        live = self._slots != NONE  # (dropped entries leave the arrays here)
        old_keys, old_slots = self._keys[live], self._slots[live]
        at = np.searchsorted(old_keys, keys[order])
        self._keys = np.insert(old_keys, at, keys[order])
        self._slots = np.insert(old_slots, at, slots[order])
        self._newest = {}


class Twins:
    def __init__(self, capacity: int) -> None:
        self._hash: Ints = np.zeros(capacity, dtype=np.int64)  # by slot
        self._node = NodeTable()
        self._twins: dict[int, set[int]] = {}  # node -> its twins (never empty)
        self.count = 0  # twins in all

    def __bool__(self) -> bool:
        return self.count > 0

    def resize(self, capacity: int) -> None:
        grown = np.zeros(capacity, dtype=np.int64)
        grown[: len(self._hash)] = self._hash
        self._hash = grown

    def sort_out(self, vectors: Matrix, slots: list[int], vector_of: VectorOf) -> list[int]:
        """The rows of ``vectors`` (for ``slots``) to link into the graph: each one not
        equal to a node's vector. The others become that node's twins; a batch's first
        row of each vector is its node. ``vector_of`` reads a node outside the batch."""
        keys = [hash(row.tobytes()) for row in vectors]
        nodes = self._node.get_many(keys)
        fresh: dict[int, int] = {}  # hash -> node, of the nodes this batch made
        link: list[int] = []
        batch: dict[int, int] | None = None  # slot -> row, made at the first hash hit
        for row, (slot, key) in enumerate(zip(slots, keys, strict=True)):
            node = fresh.get(key, nodes[row])
            if node == NONE:
                self._node.put(key, slot)
                self._hash[slot] = key
                fresh[key] = slot
            elif node != slot:  # (a node of its own: a twin put in a gone node's place)
                if batch is None:
                    batch = {s: r for r, s in enumerate(slots)}
                at = batch.get(node)
                known = vectors[at] if at is not None else vector_of(node)
                if known is not None and np.array_equal(known.reshape(-1), vectors[row]):
                    self._twins.setdefault(node, set()).add(slot)
                    self._hash[slot] = key
                    self.count += 1
                    continue
                # A hash collision: a node of its own, not known here.
            link.append(row)
        return link

    def rebuild(
        self, vectors: Matrix, slots: list[int], linked: Callable[[int], bool]
    ) -> list[int]:
        """Find the groups among the points in ``slots`` (``vectors`` by slot) of a graph
        just loaded: the one of each that ``linked`` says is in the graph is its node,
        the others not in it its twins. Returns the nodes to link (a group none of which
        is in the graph)."""
        held = np.asarray(slots, dtype=np.int64)
        keys = np.fromiter((hash(vectors[s].tobytes()) for s in slots), np.int64, len(slots))
        self._hash[held] = keys
        order = np.argsort(keys, kind="stable")  # (a group's slots in their order)
        keys, held = keys[order], held[order]
        distinct, first, counts = np.unique(keys, return_index=True, return_counts=True)
        self._node.reset(distinct, held[first])
        unlinked = []
        for j in np.flatnonzero(counts > 1).tolist():
            group = held[first[j] : first[j] + counts[j]].tolist()
            same = [s for s in group if np.array_equal(vectors[s], vectors[group[0]])]
            nodes = [s for s in same if linked(s)]
            node = nodes[0] if nodes else same[0]
            if not nodes:
                unlinked.append(node)
            self._node.put(int(distinct[j]), node)
            # (Copies linked before twins were kept stay nodes, unknown here.)
            twins = {s for s in same if s != node and s not in nodes}
            if twins:
                self._twins[node] = twins
                self.count += len(twins)
        return unlinked

    def forget(self, slot: int) -> tuple[bool, int | None]:
        """Drop ``slot``: whether it is a node (not a twin), and the twin that takes its
        place as the node of its group (to link), if it had any."""
        key = int(self._hash[slot])
        node = self._node.get(key)
        if node == slot:
            twins = self._twins.pop(slot, None)
            if twins is None:
                self._node.pop(key)
                return True, None
            heir = twins.pop()
            self.count -= 1
            self._node.put(key, heir)
            if twins:
                self._twins[heir] = twins
            return True, heir
        twins = self._twins.get(node)
        if twins is not None and slot in twins:
            twins.discard(slot)
            self.count -= 1
            if not twins:
                del self._twins[node]
            return False, None
        return True, None  # a node not known here (its hash is a former slot holder's)

    def any_of(self, accept: Accept) -> Accept:
        """``accept`` for a node's whole group: a node is worth finding when it or one of
        its twins is accepted."""
        twins = self._twins

        def accept_group(slot: int) -> bool:
            return accept(slot) or any(map(accept, twins.get(slot, ())))

        return accept_group

    def expand(self, hits: Hits, k: int, accept: Accept | None) -> Hits:
        """``hits`` of nodes as hits of points: each node and then its twins, with its
        score, those ``accept`` takes; the first ``k``."""
        out: Hits = []
        twins = self._twins
        for node, score in hits:
            for slot in chain((node,), twins.get(node, ())):
                if accept is None or accept(slot):
                    out.append((slot, score))
                    if len(out) == k:
                        return out
        return out
