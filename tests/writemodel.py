"""A model of every kind of write, native and Qdrant, for tests that hold a node to it.

``Planner`` draws random writes of every kind (collections created and deleted, upserts in
both APIs and all their forms, conditional upserts, in-place updates, deletes by id and
by filter, the payload operations, vector updates, named vectors (dense and sparse)
written, updated and deleted, named vectors added to and removed from collections,
Qdrant's operation batches, payload indexes made and dropped, snapshots taken,
collections recovered from snapshot files of themselves or another) over one writer's
collections, each with what it does to the model. ``Writer`` sends them one after
another and keeps the model of what was acknowledged; a write cut short (the node
killed) leaves the states it may have left (a batch of operations: any prefix of it).
``read_state`` reads a node's collections back through the Qdrant routes;
``check_indexes`` asks the payload indexes what the payloads say. Each writer owns its
collections, so its model is exact whatever the others do.
"""

from __future__ import annotations

import asyncio
import copy
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np

DIM = 4
IDS = 40  # ids drawn from range(IDS), so writes meet existing points often
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
TAGS = ["red", "green", "blue"]
INDEX_TYPES = {"k": "integer", "tag": "keyword", "t": "text"}
# The sparse vectors of the Qdrant collections made with some (one with Qdrant's IDF)
SPARSE = {"i": {"modifier": "idf"}, "s": {}}
# A further dense vector of some Qdrant collections (Dot: stored as given), and a
# multivector of some
IMG, IMG_DIM = "img", 3
MV, MV_DIM = "mv", 2
# The named dense vector that some Qdrant collections have instead of one of their own
# (Euclid, DIM), optional on a point like the others
TEXT = "text"

Payload = dict[str, Any]
# A point's vectors as Qdrant shows them: the dense one plain, or (with named vectors)
# all of them by name, the collection's own as "" (a collection without one: by name,
# perhaps none).
Vectors = list[float] | dict[str, Any]


@dataclass
class Coll:
    points: dict[int, tuple[Vectors, Payload]] = field(default_factory=dict)
    indexes: dict[str, str] = field(default_factory=dict)  # key -> Qdrant data_type
    sparse: tuple[str, ...] = ()  # the names of its named vectors (sparse, IMG, MV, TEXT)
    own: bool = True  # whether it has a dense vector of its own (every point has it)


State = dict[str, Coll]  # a writer's collections that exist
Step = Callable[[State], None]  # what one acknowledged write does to the model


@dataclass
class Write:
    method: str
    path: str
    body: Any
    steps: list[Step]  # one per operation that commits on its own (a batch: several)
    # A collection to take a snapshot file of first: the body is then the recovery's,
    # from that file's download URL on the node.
    snapshot_of: str | None = None


def vector(rnd: random.Random) -> list[float]:
    # Values that float32 holds exactly, so stored vectors compare equal.
    return [rnd.randrange(-512, 512) / 64 for _ in range(DIM)]


def sparse_vector(rnd: random.Random) -> dict[str, list[Any]]:
    """Indices sorted and values float32 holds exactly: as the node stores them."""
    indices = sorted(rnd.sample(range(30), rnd.randint(1, 5)))
    return {"indices": indices, "values": [rnd.randrange(1, 256) / 32 for _ in indices]}


def named_vector(rnd: random.Random, name: str) -> Any:
    """A value of the named vector ``name``: IMG's or TEXT's dense one, MV's rows, or a
    sparse one."""
    if name == IMG:
        return [rnd.randrange(-512, 512) / 64 for _ in range(IMG_DIM)]
    if name == TEXT:
        return [rnd.randrange(-512, 512) / 64 for _ in range(DIM)]
    if name == MV:
        return [
            [rnd.randrange(-512, 512) / 64 for _ in range(MV_DIM)] for _ in range(rnd.randint(1, 3))
        ]
    return sparse_vector(rnd)


def with_dense(old: Vectors, dense: list[float]) -> Vectors:
    """A point's vectors once its dense one is replaced (its sparse ones kept)."""
    return {**old, "": dense} if isinstance(old, dict) else dense


def shown(vectors: dict[str, Any]) -> Vectors:
    """Vectors by name as Qdrant shows them: the dense one alone, plain."""
    return vectors[""] if set(vectors) == {""} else vectors


def payload(rnd: random.Random) -> Payload:
    p: Payload = {}
    if rnd.random() < 0.9:
        p["k"] = rnd.randrange(5)
    if rnd.random() < 0.8:
        p["tag"] = rnd.choice(TAGS)
    if rnd.random() < 0.7:
        p["t"] = " ".join(rnd.sample(WORDS, 3))
    if rnd.random() < 0.3:
        p["o"] = {"x": rnd.randrange(3), "arr": [rnd.randrange(9) for _ in range(2)]}
    if rnd.random() < 0.2:
        p["n"] = rnd.randrange(1000) / 8
    return p


def matches_k(p: Payload, value: int) -> bool:
    return p.get("k") == value


def k_filter(value: int) -> dict[str, Any]:
    return {"must": [{"key": "k", "match": {"value": value}}]}


def merge(p: Payload, new: Payload) -> None:
    """set_payload's merge: the new keys replace, a null removes its key."""
    for key, value in new.items():
        if value is None:
            p.pop(key, None)
        else:
            p[key] = copy.deepcopy(value)


def delete_path(p: Payload, key: str) -> None:
    head, _, rest = key.partition(".")
    if not rest:
        p.pop(head, None)
    elif isinstance(p.get(head), dict):
        delete_path(p[head], rest)


class Planner:
    """Random writes a model can follow, for one writer's collections."""

    def __init__(self, rnd: random.Random, names: list[str]) -> None:
        self.rnd = rnd
        self.names = names

    def plan(self, state: State) -> Write:
        rnd = self.rnd
        name = rnd.choice(self.names)
        coll = state.get(name)
        if coll is None:
            return self.create(name)
        existing = sorted(coll.points)
        own = coll.own
        choices: list[tuple[int, Callable[[], Write]]] = [
            (1, lambda: self.drop(name)),
            (4, lambda: self.conditional_upsert(name, coll.sparse, own)),
            (3, lambda: self.delete_ids(name)),
            (2, lambda: self.delete_filter(name)),
            (2, lambda: self.set_payload_filter(name)),
            (3, lambda: self.index(name, coll)),
            (4, lambda: self.qdrant_upsert(name, coll.sparse, own)),
            (1, lambda: self.snapshot(name)),
            (1, lambda: self.recover(name, rnd.choice(sorted(state)))),
        ]
        if own:  # (the native API writes a collection's own vector)
            choices += [
                (10, lambda: self.native_upsert(name)),
                (6, lambda: self.qdrant_upsert(name)),
            ]
        if existing:
            choices += [
                (4, lambda: self.payload_write(name, existing)),
                (3, lambda: self.batch(name, existing, coll.sparse, own)),
            ]
        if existing and own:
            choices += [
                (4, lambda: self.native_update(name, existing)),
                (3, lambda: self.update_vectors(name, existing)),
            ]
        if coll.sparse:  # (a Qdrant collection)
            choices.append((1, lambda: self.add_or_drop_img(name, coll)))
        if existing and coll.sparse:
            choices += [
                (4, lambda: self.update_sparse(name, coll.sparse, existing, own)),
                (2, lambda: self.delete_sparse(name, coll.sparse, existing)),
            ]
        weights = [w for w, _ in choices]
        return rnd.choices([make for _, make in choices], weights)[0]()

    def points(
        self, n: int, sparse: tuple[str, ...] = (), own: bool = True
    ) -> list[tuple[int, Vectors, Payload]]:
        """``n`` points with random ids; with ``sparse`` names, some with those named
        vectors (without a vector of their own: any of them, or none)."""
        return [
            (self.rnd.randrange(IDS), self.vectors(sparse, own), payload(self.rnd))
            for _ in range(n)
        ]

    def vectors(self, sparse: tuple[str, ...], own: bool = True) -> Vectors:
        if not own:
            named = self.rnd.sample(sparse, self.rnd.randint(0, len(sparse)))
            return {n: named_vector(self.rnd, n) for n in sorted(named)}
        dense = vector(self.rnd)
        if not sparse or self.rnd.random() < 0.4:
            return dense
        named = self.rnd.sample(sparse, self.rnd.randint(1, len(sparse)))
        return {"": dense} | {n: named_vector(self.rnd, n) for n in sorted(named)}

    def some(self, existing: list[int]) -> list[int]:
        return self.rnd.sample(existing, min(len(existing), self.rnd.randint(1, 5)))

    # -- collections

    def create(self, name: str) -> Write:
        native = self.rnd.random() < 0.5  # (only the native create takes payload indexes)
        indexes = {k: t for k, t in INDEX_TYPES.items() if native and self.rnd.random() < 0.3}

        sparse = () if native else tuple(SPARSE)
        if not native and self.rnd.random() < 0.5:
            sparse += (IMG,)
        if not native and self.rnd.random() < 0.4:
            sparse += (MV,)
        own = native or self.rnd.random() < 0.6
        if not own:
            sparse += (TEXT,)

        def step(s: State) -> None:
            s[name] = Coll(indexes=dict(indexes), sparse=sparse, own=own)

        if native:
            body: Any = {"name": name, "dimension": DIM, "metric": "euclidean"}
            if indexes:
                body["payload_indexes"] = indexes
            return Write("POST", "/collections", body, [step])
        vectors: dict[str, Any] = {"size": DIM, "distance": "Euclid"}
        named = {
            TEXT: vectors,
            IMG: {"size": IMG_DIM, "distance": "Dot"},
            MV: {
                "size": MV_DIM,
                "distance": "Dot",
                "multivector_config": {"comparator": "max_sim"},
            },
        }
        named = {n: v for n, v in named.items() if n in sparse}
        if not own:  # (named vectors only)
            vectors = named
        elif named:  # (the collection's own first, or named "" anywhere)
            vectors = {"": vectors, **named}
            if self.rnd.random() < 0.5:
                vectors = {**named, "": vectors[""]}
        body = {"vectors": vectors}
        if sparse:
            body["sparse_vectors"] = SPARSE
        return Write("PUT", f"/qdrant/collections/{name}", body, [step])

    def add_or_drop_img(self, name: str, coll: Coll) -> Write:
        """The named dense vector IMG added to a collection (which no point has yet), or
        removed from it and its points."""
        path = f"/qdrant/collections/{name}/vectors/{IMG}"
        if IMG not in coll.sparse:

            def add(s: State) -> None:
                s[name].sparse += (IMG,)

            body = {"dense": {"size": IMG_DIM, "distance": "Dot"}}
            return Write("PUT", path, body, [add])

        def drop(s: State) -> None:
            s[name].sparse = tuple(n for n in s[name].sparse if n != IMG)
            for i, (v, p) in s[name].points.items():
                if isinstance(v, dict) and IMG in v:
                    s[name].points[i] = (shown({k: x for k, x in v.items() if k != IMG}), p)

        return Write("DELETE", path, None, [drop])

    def drop(self, name: str) -> Write:
        def step(s: State) -> None:
            del s[name]

        path = f"/collections/{name}" if self.rnd.random() < 0.5 else f"/qdrant/collections/{name}"
        return Write("DELETE", path, None, [step])

    def snapshot(self, name: str) -> Write:
        return Write("POST", f"/collections/{name}/snapshot", None, [lambda s: None])

    def recover(self, name: str, source: str) -> Write:
        """Collection ``name`` recovered from a snapshot file of ``source`` (perhaps
        itself) made just before: the points and indexes ``source`` has now."""

        def step(s: State) -> None:
            s[name] = copy.deepcopy(s[source])

        path = f"/qdrant/collections/{name}/snapshots/recover"
        return Write("PUT", path, None, [step], snapshot_of=source)

    def index(self, name: str, coll: Coll) -> Write:
        key = self.rnd.choice(sorted(INDEX_TYPES))
        if key in coll.indexes and self.rnd.random() < 0.6:

            def drop(s: State) -> None:
                s[name].indexes.pop(key, None)

            return Write("DELETE", f"/qdrant/collections/{name}/index/{key}", None, [drop])

        def make(s: State) -> None:
            s[name].indexes[key] = INDEX_TYPES[key]

        body = {"field_name": key, "field_schema": INDEX_TYPES[key]}
        return Write("PUT", f"/qdrant/collections/{name}/index", body, [make])

    # -- point writes

    def native_upsert(self, name: str) -> Write:
        pts = self.points(self.rnd.choice([1, 3, 20]))
        body = {"vectors": [{"id": i, "vector": v, "payload": p} for i, v, p in pts]}
        return Write("POST", f"/collections/{name}/vectors", body, [_upserted(name, pts)])

    def qdrant_upsert(self, name: str, sparse: tuple[str, ...] = (), own: bool = True) -> Write:
        pts = self.points(self.rnd.choice([1, 5, 20]), sparse, own)
        if self.rnd.random() < 0.5 or any(isinstance(v, dict) for _, v, _ in pts):
            body: Any = {"points": [{"id": i, "vector": v, "payload": p} for i, v, p in pts]}
        else:
            ids, vecs, pays = zip(*pts, strict=True)
            body = {"batch": {"ids": list(ids), "vectors": list(vecs), "payloads": list(pays)}}
        return Write("PUT", f"/qdrant/collections/{name}/points", body, [_upserted(name, pts)])

    def conditional_upsert(self, name: str, sparse: tuple[str, ...], own: bool) -> Write:
        pts = self.points(self.rnd.choice([1, 5, 10]), sparse, own)
        body: Any = {"points": [{"id": i, "vector": v, "payload": p} for i, v, p in pts]}
        mode = self.rnd.choice(["insert_only", "update_only", "filter"])
        value = self.rnd.randrange(5)
        if mode == "filter":
            body["update_filter"] = k_filter(value)
        else:
            body["update_mode"] = mode

        def step(s: State) -> None:
            have = s[name].points
            for i, v, p in pts:  # point by point, in order
                if i in have:
                    write = mode == "update_only" or (
                        mode == "filter" and matches_k(have[i][1], value)
                    )
                else:
                    write = mode != "update_only"
                if write:
                    have[i] = (v, copy.deepcopy(p))

        return Write("PUT", f"/qdrant/collections/{name}/points", body, [step])

    def native_update(self, name: str, existing: list[int]) -> Write:
        pid = self.rnd.choice(existing)
        body: Payload = {}
        what = self.rnd.choice(["vector", "payload", "both"])
        if what != "payload":
            body["vector"] = vector(self.rnd)
        if what != "vector":
            body["payload"] = payload(self.rnd)

        def step(s: State) -> None:
            v, p = s[name].points[pid]
            if "vector" in body:
                v = with_dense(v, body["vector"])
            s[name].points[pid] = (v, copy.deepcopy(body.get("payload", p)))

        return Write("PUT", f"/collections/{name}/vectors/{pid}", body, [step])

    def delete_ids(self, name: str) -> Write:
        ids = [self.rnd.randrange(IDS) for _ in range(self.rnd.randint(1, 6))]

        def step(s: State) -> None:
            for i in ids:
                s[name].points.pop(i, None)

        if self.rnd.random() < 0.5:
            return Write("POST", f"/collections/{name}/vectors/delete", {"ids": ids}, [step])
        return Write("POST", f"/qdrant/collections/{name}/points/delete", {"points": ids}, [step])

    def delete_filter(self, name: str) -> Write:
        value = self.rnd.randrange(5)

        def step(s: State) -> None:
            pts = s[name].points
            for i in [i for i, (_, p) in pts.items() if matches_k(p, value)]:
                del pts[i]

        if self.rnd.random() < 0.5:
            path, body = f"/collections/{name}/vectors/delete", {"filter": k_filter(value)}
        else:
            path, body = f"/qdrant/collections/{name}/points/delete", {"filter": k_filter(value)}
        return Write("POST", path, body, [step])

    def set_payload_filter(self, name: str) -> Write:
        value, extra = self.rnd.randrange(5), {"tag": self.rnd.choice(TAGS), "n": 1.5}

        def step(s: State) -> None:
            for _, p in s[name].points.values():
                if matches_k(p, value):
                    merge(p, extra)

        body = {"payload": extra, "filter": k_filter(value)}
        return Write("POST", f"/qdrant/collections/{name}/points/payload", body, [step])

    def payload_op(self, name: str, existing: list[int]) -> tuple[str, str, Payload, Step]:
        """One of set/overwrite/delete/clear payload: (route method, batch key, body, step)."""
        ids = self.some(existing)
        kind = self.rnd.choice(["set", "overwrite", "delete", "clear"])
        if kind == "set":
            new: Payload = payload(self.rnd)
            if self.rnd.random() < 0.3:  # a null removes its key
                new[self.rnd.choice(["k", "tag", "t", "o", "n"])] = None

            def merged(s: State) -> None:
                for i in ids:
                    if i in s[name].points:
                        merge(s[name].points[i][1], new)

            return "POST", "set_payload", {"payload": new, "points": ids}, merged
        if kind == "overwrite":
            new = payload(self.rnd)

            def overwrite(s: State) -> None:
                for i in ids:
                    if i in s[name].points:
                        s[name].points[i] = (s[name].points[i][0], copy.deepcopy(new))

            return "PUT", "overwrite_payload", {"payload": new, "points": ids}, overwrite
        if kind == "delete":
            keys = self.rnd.sample(["k", "tag", "t", "o.x", "n"], 2)

            def remove(s: State) -> None:
                for i in ids:
                    if i in s[name].points:
                        for key in keys:
                            delete_path(s[name].points[i][1], key)

            return "POST", "delete_payload", {"keys": keys, "points": ids}, remove

        def clear(s: State) -> None:
            for i in ids:
                if i in s[name].points:
                    s[name].points[i] = (s[name].points[i][0], {})

        return "POST", "clear_payload", {"points": ids}, clear

    def payload_write(self, name: str, existing: list[int]) -> Write:
        method, key, body, step = self.payload_op(name, existing)
        suffix = {"delete_payload": "/delete", "clear_payload": "/clear"}.get(key, "")
        return Write(method, f"/qdrant/collections/{name}/points/payload{suffix}", body, [step])

    def vectors_op(self, name: str, existing: list[int]) -> tuple[Payload, Step]:
        new = {i: vector(self.rnd) for i in self.some(existing)}

        def step(s: State) -> None:
            for i, v in new.items():
                old, p = s[name].points[i]
                s[name].points[i] = (with_dense(old, v), p)

        return {"points": [{"id": i, "vector": v} for i, v in new.items()]}, step

    def update_vectors(self, name: str, existing: list[int]) -> Write:
        body, step = self.vectors_op(name, existing)
        return Write("PUT", f"/qdrant/collections/{name}/points/vectors", body, [step])

    def update_sparse(
        self, name: str, sparse: tuple[str, ...], existing: list[int], own: bool
    ) -> Write:
        """New named vectors for some points (their own too, for some), the others they
        have kept."""
        new: dict[int, dict[str, Any]] = {}
        for i in self.some(existing):
            named = self.rnd.sample(sparse, self.rnd.randint(1, len(sparse)))
            new[i] = {n: named_vector(self.rnd, n) for n in named}
            if own and self.rnd.random() < 0.3:
                new[i][""] = vector(self.rnd)

        def step(s: State) -> None:
            for i, given in new.items():
                old, p = s[name].points[i]
                had = old if isinstance(old, dict) else {"": old}
                s[name].points[i] = (shown(had | copy.deepcopy(given)), p)

        body = {"points": [{"id": i, "vector": v} for i, v in new.items()]}
        return Write("PUT", f"/qdrant/collections/{name}/points/vectors", body, [step])

    def delete_sparse(self, name: str, sparse: tuple[str, ...], existing: list[int]) -> Write:
        """Some named vectors of some points (or of those a filter matches) removed."""
        names = self.rnd.sample(sparse, self.rnd.randint(1, len(sparse)))
        ids, value = self.some(existing), self.rnd.randrange(5)
        by_filter = self.rnd.random() < 0.3

        def step(s: State) -> None:
            pts = s[name].points
            chosen = [i for i, (_, p) in pts.items() if matches_k(p, value)] if by_filter else ids
            for i in chosen:
                old, p = pts[i]
                if isinstance(old, dict):
                    pts[i] = (shown({k: v for k, v in old.items() if k not in names}), p)

        body: Payload = {"vector": names}
        body.update({"filter": k_filter(value)} if by_filter else {"points": ids})
        return Write("POST", f"/qdrant/collections/{name}/points/vectors/delete", body, [step])

    def batch(self, name: str, existing: list[int], sparse: tuple[str, ...], own: bool) -> Write:
        """Qdrant's operation batch: each operation commits on its own, in order. Later
        operations only name points no earlier one can have deleted."""
        operations: list[Payload] = []
        steps: list[Step] = []
        for _ in range(self.rnd.randint(2, 4)):
            kind = self.rnd.choice(
                ["upsert", "payload", "vectors"] if own else ["upsert", "payload"]
            )
            if kind == "upsert":
                pts = self.points(3, () if own else sparse, own)
                body = {"points": [{"id": i, "vector": v, "payload": p} for i, v, p in pts]}
                operations.append({"upsert": body})
                steps.append(_upserted(name, pts))
            elif kind == "payload":
                _, key, body, step = self.payload_op(name, existing)
                operations.append({key: body})
                steps.append(step)
            else:
                body, step = self.vectors_op(name, existing)
                operations.append({"update_vectors": body})
                steps.append(step)
        if self.rnd.random() < 0.5:  # a delete last, so nothing after it names its points
            ids = self.some(existing)

            def gone(s: State) -> None:
                for i in ids:
                    s[name].points.pop(i, None)

            operations.append({"delete": {"points": ids}})
            steps.append(gone)
        body = {"operations": operations}
        return Write("POST", f"/qdrant/collections/{name}/points/batch", body, steps)


def _upserted(name: str, pts: list[tuple[int, Vectors, Payload]]) -> Step:
    def step(s: State) -> None:
        for i, v, p in pts:
            s[name].points[i] = (v, copy.deepcopy(p))

    return step


def applied(state: State, steps: list[Step]) -> State:
    after = copy.deepcopy(state)
    for step in steps:
        step(after)
    return after


@dataclass
class Writer:
    names: list[str]
    rnd: random.Random
    state: State = field(default_factory=dict)  # after every acknowledged write
    in_flight: list[State] | None = None  # the states a write cut short may have left
    writes: int = 0
    failures: list[str] = field(default_factory=list)

    async def run(
        self, http: aiohttp.ClientSession, url: str, stop: asyncio.Event | None = None
    ) -> None:
        """Write until the node goes away (or ``stop`` is set, or a write is refused)."""
        planner = Planner(self.rnd, self.names)
        while stop is None or not stop.is_set():
            write = planner.plan(self.state)
            try:
                body = write.body
                if write.snapshot_of is not None:
                    body = await _snapshot_file(http, url, write.snapshot_of)
                async with http.request(write.method, url + write.path, json=body) as r:
                    status, text = r.status, await r.text()
            except (TimeoutError, aiohttp.ClientError):  # the kill
                candidates = [self.state]
                for n in range(1, len(write.steps) + 1):
                    candidates.append(applied(self.state, write.steps[:n]))
                self.in_flight = candidates
                return
            if not 200 <= status < 300:
                self.failures.append(f"{write.method} {write.path} {write.body} -> {status} {text}")
                return
            self.state = applied(self.state, write.steps)
            self.writes += 1


async def _snapshot_file(http: aiohttp.ClientSession, url: str, name: str) -> Payload:
    """A new snapshot file of collection ``name``, as a recovery's location."""
    path = f"/qdrant/collections/{name}/snapshots"
    async with http.post(url + path) as r:
        assert r.status == 200, await r.text()
        file = (await r.json())["result"]["name"]
    return {"location": f"{url}{path}/{file}"}


async def read_state(http: aiohttp.ClientSession, url: str, names: list[str]) -> State:
    state: State = {}
    for name in names:
        async with http.get(f"{url}/qdrant/collections/{name}") as r:
            if r.status == 404:
                continue
            assert r.status == 200, await r.text()
            info = (await r.json())["result"]
        schema = info["payload_schema"]
        body = {"limit": 1000, "with_payload": True, "with_vector": True}
        async with http.post(f"{url}/qdrant/collections/{name}/points/scroll", json=body) as r:
            assert r.status == 200, await r.text()
            result = (await r.json())["result"]
        assert result["next_page_offset"] is None
        state[name] = Coll(
            points={p["id"]: (p["vector"], p["payload"]) for p in result["points"]},
            indexes={key: info["data_type"] for key, info in schema.items()},
        )
    return state


def same(a: State, b: State) -> bool:
    if a.keys() != b.keys():
        return False
    for name, ca in a.items():
        cb = b[name]
        if ca.indexes != cb.indexes or ca.points.keys() != cb.points.keys():
            return False
        for pid, (va, pa) in ca.points.items():
            vb, pb = cb.points[pid]
            if pa != pb or not _same_vectors(va, vb):
                return False
    return True


def _same_vectors(a: Vectors, b: Vectors) -> bool:
    """The same dense vector in float32 (the model's are exact there, and the named
    ones' too), or none, and the same named ones."""
    da, db = (v.get("") if isinstance(v, dict) else v for v in (a, b))
    sa, sb = ({k: x for k, x in v.items() if k} if isinstance(v, dict) else {} for v in (a, b))
    if da is None or db is None:
        return sa == sb and da is db
    return sa == sb and np.array_equal(np.asarray(da, np.float32), np.asarray(db, np.float32))


def diff(actual: State, model: State) -> str:
    lines = [f"collections: actual {sorted(actual)} model {sorted(model)}"]
    for name in sorted(actual.keys() & model.keys()):
        a, m = actual[name], model[name]
        if a.indexes != m.indexes:
            lines.append(f"{name} indexes: actual {a.indexes} model {m.indexes}")
        for pid in sorted(a.points.keys() | m.points.keys()):
            if a.points.get(pid) != m.points.get(pid):
                lines.append(f"{name}/{pid}: actual {a.points.get(pid)} model {m.points.get(pid)}")
    return "\n".join(lines[:20])


async def check_indexes(http: aiohttp.ClientSession, url: str, state: State) -> None:
    """Filtered counts on indexed keys agree with the payloads (the index was rebuilt)."""
    for name, coll in state.items():
        probes: list[tuple[dict[str, Any], Callable[[Payload], bool]]] = []
        if "k" in coll.indexes:
            probes += [(k_filter(v), _equals("k", v)) for v in range(5)]
        if "tag" in coll.indexes:
            probes += [
                ({"must": [{"key": "tag", "match": {"value": t}}]}, _equals("tag", t)) for t in TAGS
            ]
        if "t" in coll.indexes:
            probes += [
                ({"must": [{"key": "t", "match": {"text": w}}]}, _has_word(w)) for w in WORDS[:3]
            ]
        for flt, holds in probes:
            body = {"filter": flt, "exact": True}
            async with http.post(f"{url}/qdrant/collections/{name}/points/count", json=body) as r:
                assert r.status == 200, await r.text()
                count = (await r.json())["result"]["count"]
            expected = sum(holds(p) for _, p in coll.points.values())
            assert count == expected, (name, flt, count, expected)


def _equals(key: str, value: Any) -> Callable[[Payload], bool]:
    return lambda p: p.get(key) == value


def _has_word(word: str) -> Callable[[Payload], bool]:
    return lambda p: isinstance(p.get("t"), str) and word in p["t"].split()
