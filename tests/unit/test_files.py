"""Snapshot files: a write the disk refuses fails with its errno, even where the library
that writes (numpy, hnswlib) would not say so."""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pytest

from tests.unit.test_wal import file_size_limit
from vectorizer.engine.config import HnswParams, Metric
from vectorizer.engine.files import check_written, save_array
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
