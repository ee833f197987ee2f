"""Snapshot files: a write the disk refuses fails with its errno, even where the library
that writes (numpy, hnswlib) would not say so; large files are read and written without
a copy of them on the heap."""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson
import pytest

from tests.unit.test_wal import file_size_limit
from vectorizer.engine.collection import Collection
from vectorizer.engine.config import CollectionConfig, HnswParams, Metric
from vectorizer.engine.files import check_written, load_json, save_array, write_json_arrays
from vectorizer.engine.hnsw import HnswIndex


@pytest.mark.parametrize(
    "array",
    [
        np.arange(35, dtype=np.float32).reshape(5, 7),
        np.array([True, False, True]),
        np.zeros((0, 4), dtype=np.float32),
        np.arange(30, dtype=np.float32).reshape(10, 3)[:, :2],  # not contiguous
    ],
)
def test_arrays_are_written_as_np_save_writes_them(tmp_path: Path, array: np.ndarray) -> None:
    save_array(tmp_path / "ours.npy", array)
    np.save(tmp_path / "numpy.npy", array, allow_pickle=False)
    assert (tmp_path / "ours.npy").read_bytes() == (tmp_path / "numpy.npy").read_bytes()
    back = np.load(tmp_path / "ours.npy", allow_pickle=False)
    assert back.dtype == array.dtype and np.array_equal(back, array)


def test_an_array_the_disk_refuses_fails_with_its_errno(tmp_path: Path) -> None:
    array = np.ones((1000, 64), dtype=np.float32)
    with file_size_limit(100_000), pytest.raises(OSError) as refused:
        save_array(tmp_path / "a.npy", array)
    assert refused.value.errno == errno.EFBIG  # np.save raises one without an errno


def test_a_graph_written_short_fails_with_its_errno(tmp_path: Path) -> None:
    index = HnswIndex(16, Metric.EUCLIDEAN, HnswParams(16, 100, 64), capacity=2000)
    vectors = np.random.default_rng(3).normal(size=(2000, 16)).astype(np.float32)
    index.add(vectors, list(range(2000)))
    with file_size_limit(50_000), pytest.raises(OSError) as refused:
        index.save(tmp_path / "hnsw.bin")  # hnswlib itself reports nothing
    assert refused.value.errno == errno.EFBIG
    assert (tmp_path / "hnsw.bin").stat().st_size == 50_000
    index.save(tmp_path / "hnsw.bin")  # with room, the same graph saves whole


def test_a_short_file_with_room_to_spare_is_an_io_error(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x" * 10)
    check_written(tmp_path / "f", 10)
    with pytest.raises(OSError) as short:
        check_written(tmp_path / "f", 11)
    assert short.value.errno == errno.EIO and "10 of 11 bytes" in str(short.value)


@pytest.mark.parametrize("n", [0, 1, 4095, 4096, 4097, 10_001])
def test_json_arrays_are_written_as_orjson_writes_them(tmp_path: Path, n: int) -> None:
    arrays = {
        "ids": [i if i % 3 else f"p-{i}" for i in range(n)],
        "payloads": [None if i % 5 == 0 else {"n": i, "t": "é" * (i % 7)} for i in range(n)],
    }
    write_json_arrays(tmp_path / "points.json", arrays)
    assert (tmp_path / "points.json").read_bytes() == orjson.dumps(arrays)
    assert load_json(tmp_path / "points.json") == arrays


def test_an_empty_json_file_is_an_error_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "empty.json").write_bytes(b"")
    with pytest.raises(orjson.JSONDecodeError):
        load_json(tmp_path / "empty.json")


def peak_growth(work: Callable[[], object]) -> int:
    """How far the resident set rose above where it was while ``work`` ran (Linux: the
    peak is reset through /proc/self/clear_refs)."""
    Path("/proc/self/clear_refs").write_text("5")

    def kib(field: str) -> int:
        status = Path("/proc/self/status").read_text()
        return int(status.split(f"{field}:")[1].split()[0]) * 1024

    before = kib("VmRSS")
    work()
    return kib("VmHWM") - before


def test_a_snapshot_of_large_payloads_holds_no_encoded_copy_of_them(tmp_path: Path) -> None:
    n = 20_000
    config = CollectionConfig.parse({"dimension": 4, "index": "exact"}, HnswParams())
    coll = Collection("c", config)
    text = "x" * 4000  # ~80 MB of payloads as JSON
    coll.upsert(list(range(n)), np.ones((n, 4), dtype=np.float32), [{"text": text}] * n)
    (tmp_path / "snap").mkdir()
    grew = peak_growth(lambda: coll.export(tmp_path / "snap"))
    assert (tmp_path / "snap" / "points.json").stat().st_size > 80_000_000
    assert grew < 40 << 20, grew  # (a whole encoded copy: 80 MB)
    restored = Collection.restore(tmp_path / "snap", "c", config)
    assert len(restored) == n and restored.get(n - 1) == coll.get(n - 1)
