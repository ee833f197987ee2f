"""The memory guard: where the limit comes from, what counts as used, and the writes it
refuses (and the ones it lets through)."""

from __future__ import annotations

import dataclasses
import random
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from vectorizer.engine import field_index, memory, payloads, snapshot
from vectorizer.engine.aliases import CreateAlias
from vectorizer.engine.collection import (
    INITIAL_CAPACITY,
    POINT_OVERHEAD,
    Collection,
    memory_for,
)
from vectorizer.engine.config import CollectionConfig, HnswParams, IndexKind
from vectorizer.engine.store import Store, StoreOptions
from vectorizer.engine.text import TextParams
from vectorizer.engine.wal import FsyncPolicy
from vectorizer.errors import InsufficientMemory, error_class_for

UNLIMITED_V1 = "9223372036854771712\n"


def cgroup_fs(tmp_path: Path, cgroup: str, files: dict[str, str]) -> tuple[Path, Path]:
    proc, mount = tmp_path / "proc", tmp_path / "cgroup"
    proc.mkdir()
    (proc / "cgroup").write_text(cgroup)
    for name, text in files.items():
        (mount / name).parent.mkdir(parents=True, exist_ok=True)
        (mount / name).write_text(text)
    return proc, mount


def test_v2_takes_the_smallest_limit_from_the_cgroup_up_to_the_root(tmp_path: Path) -> None:
    proc, mount = cgroup_fs(
        tmp_path,
        "0::/kubepods/pod1/ctr\n",
        {
            "kubepods/pod1/ctr/memory.max": "max\n",
            "kubepods/pod1/memory.max": "2147483648\n",
            "kubepods/memory.max": "8589934592\n",
        },
    )
    assert memory.cgroup_limit(proc, mount) == 2 << 30


def test_v1_limit_and_its_no_limit_value(tmp_path: Path) -> None:
    proc, mount = cgroup_fs(
        tmp_path,
        "9:pids:/a\n4:memory:/a/b\n1:cpu,cpuacct:/a\n",
        {
            "memory/a/b/memory.limit_in_bytes": "536870912\n",
            "memory/a/memory.limit_in_bytes": UNLIMITED_V1,
        },
    )
    assert memory.cgroup_limit(proc, mount) == 512 << 20
    (mount / "memory/a/b/memory.limit_in_bytes").write_text(UNLIMITED_V1)
    assert memory.cgroup_limit(proc, mount) is None


def test_a_host_path_that_is_not_mounted_falls_back_to_the_mounts_root(tmp_path: Path) -> None:
    # A container without its own cgroup namespace sees the host's path in
    # /proc/self/cgroup, but its own cgroup mounted at the root.
    proc, mount = cgroup_fs(
        tmp_path, "4:memory:/docker/0123abcd\n", {"memory/memory.limit_in_bytes": "1073741824"}
    )
    assert memory.cgroup_limit(proc, mount) == 1 << 30


def test_no_cgroup_file_system_means_no_cgroup_limit(tmp_path: Path) -> None:
    assert memory.cgroup_limit(tmp_path / "nothing", tmp_path / "nothing") is None
    proc, mount = cgroup_fs(tmp_path, "0::/\n", {})
    assert memory.cgroup_limit(proc, mount) is None


def test_the_limit_is_at_most_the_machines_memory() -> None:
    assert 0 < memory.memory_limit() <= memory.physical_memory()


def test_anonymous_memory_is_read_from_proc_and_grows_with_the_heap(tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text("Name:\tpython\nVmRSS:\t  9000 kB\nRssAnon:\t    1234 kB\nRssFile:\t 10 kB\n")
    assert memory.anonymous_resident(status) == 1234 * 1024
    before = memory.anonymous_resident()
    block = np.ones(64 << 20, dtype=np.uint8)  # 64 MiB, touched
    assert memory.anonymous_resident() - before > 60 << 20
    del block


def test_the_estimate_counts_vectors_graph_and_a_growths_copy() -> None:
    config = CollectionConfig.parse({"dimension": 128}, HnswParams())
    per_point = memory_for(config, 1)
    # slot array + graph copy + links + bookkeeping: about what make bench measures
    assert 1200 < per_point < 1700
    exact = CollectionConfig.parse({"dimension": 128, "index": "exact"}, HnswParams())
    assert memory_for(exact, 1) < per_point - 512
    coll = Collection("c", config)
    assert coll.memory_to_add(10) == 10 * per_point
    grown = coll.memory_to_add(INITIAL_CAPACITY + 1)
    assert grown == (INITIAL_CAPACITY + 1) * per_point + INITIAL_CAPACITY * 128 * 4
    # Points that fill freed slots take no new slot memory.
    coll.upsert(list(range(10)), np.ones((10, 128), dtype=np.float32), [None] * 10)
    coll.delete(list(range(4)))
    assert coll.memory_to_add(6) == 2 * per_point + 4 * POINT_OVERHEAD


async def guarded(tmp_path: Path, headroom: int) -> Store:
    """A store whose high-water mark sits ``headroom`` bytes above what is in use now
    (its limit given, not followed on the cgroup: the maintenance loop would put that
    back while a write waits for a graph link)."""
    options = StoreOptions(fsync=FsyncPolicy("never"), snapshot_interval_s=0)
    s = Store(tmp_path, options)
    await s.open()
    limit = int((memory.anonymous_resident() + headroom) / options.memory_high_water)
    s.options = dataclasses.replace(options, memory_limit_bytes=limit)
    s.memory_limit = limit
    return s


async def test_writes_are_refused_at_the_high_water_mark_and_deletes_go_on(tmp_path: Path) -> None:
    s = await guarded(tmp_path, 24 << 20)
    await s.create_collection("a", {"dimension": 128})
    await s.update_aliases([CreateAlias("live", "a")])  # a write through it is counted alike
    rng = np.random.default_rng(1)
    batch = 2000
    with pytest.raises(InsufficientMemory) as refused:
        for b in range(100):  # ~2.7 MB each: the guard must stop this well before 100
            ids = list(range(b * batch, (b + 1) * batch))
            await s.upsert("a", ids, rng.random((batch, 128), dtype=np.float32), [None] * batch)
    err = refused.value
    assert err.status == 507 and error_class_for(err.code) is InsufficientMemory
    assert s.writes_refused() == "insufficient_memory"  # (for the operator's status)
    assert "deletes are still taken" in err.message
    assert err.details["used_bytes"] + err.details["needed_bytes"] > err.details["high_water_bytes"]
    stored, seq = len(s.collection("a")), s.sequence
    assert 0 < stored < 100 * batch and stored % batch == 0  # nothing of the refused batch

    vectors = rng.random((batch, 128), dtype=np.float32)
    for write in (
        s.upsert("live", list(range(10**9, 10**9 + batch)), vectors, [None] * batch),
        s.upsert("a", list(range(10**9, 10**9 + batch)), vectors, [None] * batch),
        s.update_vectors("a", list(range(batch)), vectors),  # each update takes a fresh slot
        s.create_collection("b", {"dimension": 8192}),  # 1,024 slots of 64 KiB to start with
    ):
        with pytest.raises(InsufficientMemory):
            await write
    assert s.sequence == seq
    # What frees memory goes through, and so do alias changes (names only); a payload
    # change adds data and waits for room.
    await s.update_aliases([CreateAlias("other", "a")])
    assert (await s.delete_points("a", list(range(batch))))[0] == batch
    await s.set_payload("a", [batch], {}, overwrite=True)  # clearing a payload
    assert (await s.delete_payload("a", [batch + 1], None, ["x"]))[0] == 1
    stats = s.stats()["memory"]
    assert stats["limit_bytes"] == s.memory_limit
    assert stats["high_water_bytes"] == int(s.memory_limit * 0.9) and stats["used_bytes"] > 0
    await s.close(take_snapshot=False)


async def test_a_write_that_would_cross_the_mark_is_refused_before_it_is_applied(
    tmp_path: Path,
) -> None:
    s = await guarded(tmp_path, 16 << 20)
    await s.create_collection("a", {"dimension": 512})
    big = 20_000  # ~4 KiB per point: ~80 MiB, far over the 16 MiB left
    with pytest.raises(InsufficientMemory) as refused:
        await s.upsert("a", list(range(big)), np.ones((big, 512), dtype=np.float32), [None] * big)
    assert refused.value.details["needed_bytes"] > 64 << 20
    assert len(s.collection("a")) == 0
    del refused  # its traceback holds the request's arrays
    await s.upsert("a", [1], np.ones((1, 512), dtype=np.float32), [None])  # a small one fits
    await s.close(take_snapshot=False)


async def test_no_limit_means_no_guard(tmp_path: Path) -> None:
    s = Store(tmp_path, StoreOptions(fsync=FsyncPolicy("never"), memory_limit_bytes=0))
    await s.open()
    assert s.memory_high_water() == 0
    assert s.stats()["memory"]["limit_bytes"] == 0
    assert s.writes_refused() is None
    await s.create_collection("a", {"dimension": 2})
    await s.close(take_snapshot=False)


async def test_transient_work_is_measured_against_the_limit_itself(tmp_path: Path) -> None:
    s = await guarded(tmp_path, 8 << 20)  # high-water 8 MiB away, the limit ~20 MiB more
    left = s.memory_limit - memory.anonymous_resident()
    s.check_transient(left - (4 << 20), "this", "body")  # past the high-water mark: taken
    with pytest.raises(InsufficientMemory) as refused:
        s.check_transient(left + (4 << 20), "a request body of 9 MiB", "body")
    assert refused.value.field == "body" and "smaller parts" in refused.value.message
    s.memory_limit = 0  # no limit: nothing is refused
    s.check_transient(1 << 50, "anything", "body")
    await s.close(take_snapshot=False)


async def test_a_full_sync_counts_the_payload_indexes_it_will_rebuild(tmp_path: Path) -> None:
    primary = Store(tmp_path / "p", StoreOptions(fsync=FsyncPolicy("never"), snapshot_interval_s=0))
    await primary.open()
    await primary.create_collection("c", {"dimension": 4, "payload_indexes": {"k": "keyword"}})
    await primary.create_field_index("c", "n", "integer")
    await primary.create_field_index("c", "t", {"type": "text"})
    points = [{"k": "a", "n": i, "t": "red green blue"} for i in range(300)]
    await primary.upsert("c", list(range(300)), np.ones((300, 4), np.float32), points)
    snap = await primary.snapshot()
    # a value per point and key, and each point's three tokens in the text index
    assert snapshot.index_values(snap.path) == 300 * 3 + 300 * 3
    # a snapshot from older code did not count them: points times indexed keys
    manifest_path = snap.path / snapshot.MANIFEST
    manifest = orjson.loads(manifest_path.read_bytes())
    for entry in manifest["collections"]:
        del entry["index_values"]
    manifest_path.write_bytes(orjson.dumps(manifest))
    assert snapshot.index_values(snap.path) == 300 * 3
    await primary.close(take_snapshot=False)

    replica = await guarded(tmp_path / "r", 16 << 20)
    files = [("c/vectors.npy", 1 << 20)]
    replica.check_snapshot_fits(files, index_values=10_000)  # ~1 MiB more: it fits
    left = replica.memory_limit - memory.anonymous_resident()
    many = left // field_index.BYTES_PER_VALUE + 1
    with pytest.raises(InsufficientMemory) as refused:
        replica.check_snapshot_fits(files, index_values=many)
    assert f"payload indexes over {many} values" in refused.value.message
    await replica.close(take_snapshot=False)


def test_an_index_is_admitted_by_the_entries_it_will_hold() -> None:
    """Before an index exists, its entries are estimated from a sample of the payloads:
    a text index holds each point's distinct tokens, a keyword index over arrays each
    point's distinct values (not one entry per point, as the estimate once assumed)."""
    rng = random.Random(3)
    words = [f"w{i}" for i in range(500)]
    n = 3000
    coll = Collection("c", CollectionConfig(2, index=IndexKind.EXACT), capacity=8)
    payloads: list[dict[str, Any] | None] = [
        {"title": " ".join(rng.sample(words, rng.randint(4, 8))), "tags": ["a", "b", "c"]}
        for _ in range(n)
    ]
    coll.upsert(list(range(n)), np.ones((n, 2), np.float32), payloads)
    for key, schema in (("title", {"type": "text"}), ("tags", "keyword"), ("none", "integer")):
        estimate = coll.index_entries(key, schema)
        coll.create_field_index(key, schema)
        index = coll._fields.fields[key]
        built = sum(len(s) for s in index._by_value.values()) + index.token_entries
        assert abs(estimate - built) <= 0.1 * built, (key, estimate, built)
    assert coll.index_entries("title", {"type": "text"}) > 6 * n  # ~7 a point, not 1


@pytest.mark.parametrize(
    "make",
    [
        lambda i: {"lang": "en", "n": i, "tag": "abc"},
        lambda i: {"title": f"t{i}" * 10, "body": "word " * 40, "n": i},
        lambda i: {"a": {"b": {"c": [1, 2, {"d": "x"}]}}, "t": ["x", "y", f"{i}"]},
        lambda i: {"v": [i / 7 + j for j in range(50)]},
    ],
    ids=["flat", "text", "nested", "numbers"],
)
def test_the_payload_estimate_is_near_what_decoded_payloads_take(make: Any) -> None:
    encoded = orjson.dumps([make(i) for i in range(3000)])
    tracemalloc.start()
    try:
        held = orjson.loads(encoded)
        taken = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert held and taken <= payloads.heap_bytes(encoded) <= 2 * taken


def test_text_index_tokens_are_bounded_cheaply_and_counted_when_many() -> None:
    word, prefix = TextParams(), TextParams(tokenizer="prefix")
    small = {"t": "the quick brown fox", "other": "x" * 1000}
    assert field_index.text_entries({"t": word}, small) == 10  # (19 // 2 + 1 >= 4 words)
    assert field_index.text_entries({"t": prefix}, small) == 19  # (>= 16 prefixes)
    assert field_index.text_entries({}, small) == 0
    # set at a path: every string it holds may reach an index
    assert field_index.text_entries({"a.t": word}, small, key="a") == 10 + 501
    # past the bound's limit, the distinct tokens themselves
    rng = random.Random(5)
    text = " ".join(f"w{rng.randrange(10**6)}" for _ in range(60_000))
    big = {"t": text}
    exact = len(set(prefix.doc_tokens(text)))
    assert len(text) * field_index.BYTES_PER_VALUE > field_index.EXACT_TOKENS_ABOVE
    assert field_index.text_entries({"t": prefix}, big) == exact


async def test_a_text_heavy_write_is_counted_by_the_tokens_it_indexes(tmp_path: Path) -> None:
    """A prefix text index takes ~120 bytes a token: 50 points of 40,000 distinct words
    take ~2 GB. The estimate counted 50 points' vectors and one entry per index, and let
    it through; now it is refused before it is applied."""
    s = await guarded(tmp_path, 64 << 20)
    await s.create_collection("a", {"dimension": 4})
    await s.create_field_index("a", "t", {"type": "text", "tokenizer": "prefix"})
    rng = random.Random(9)
    docs: list[dict[str, Any] | None] = [
        {"t": " ".join(f"{rng.randrange(16**8):08x}" for _ in range(40_000))} for _ in range(50)
    ]
    with pytest.raises(InsufficientMemory) as refused:
        await s.upsert("a", list(range(50)), np.ones((50, 4), np.float32), docs)
    assert refused.value.details["needed_bytes"] > 1 << 30
    assert len(s.collection("a")) == 0
    del refused
    few: list[dict[str, Any] | None] = [{"t": "a few words"}] * 20
    await s.upsert("a", list(range(20)), np.ones((20, 4), np.float32), few)  # (small: fits)
    one = docs[0] or {}
    await s.set_payload("a", [0], one, overwrite=False)  # (~25 MB of tokens: fits)
    with pytest.raises(InsufficientMemory):  # the text set on many points: each indexes it
        await s.set_payload("a", list(range(20)), one, overwrite=False)
    assert s.collection("a").get(1).payload == {"t": "a few words"}  # type: ignore[union-attr]
    await s.close(take_snapshot=False)
