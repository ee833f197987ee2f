"""The audit log's file: every line put is written once, in order, within moments, the
files rotated by size; a disk that fails loses lines, not the writer."""

from __future__ import annotations

import logging
import shutil
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from vectorizer.security.auditfile import GATHER_S, RotatingLines


def written(root: Path, name: str) -> list[bytes]:
    """The lines of ``name`` and its rotated files, oldest first."""
    files = sorted(root.glob(f"{name}.*"), key=lambda p: -int(p.suffix[1:]))
    return [
        line for p in [*files, root / name] if p.exists() for line in p.read_bytes().splitlines()
    ]


def test_lines_from_many_threads_are_written_once_in_order_across_rotations(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.jsonl"
    out = RotatingLines(path, max_bytes=16 << 10, backups=1000)

    def writer(t: int) -> None:
        for i in range(3000):
            out.put(b"%d %05d %s\n" % (t, i, b"x" * (i % 50)))

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    out.close()
    lines = written(tmp_path, "audit.jsonl")
    assert len(lines) == 12_000
    for t in range(4):  # each thread's lines, in the order it put them
        mine = [int(line.split()[1]) for line in lines if line.startswith(b"%d " % t)]
        assert mine == list(range(3000))
    files = list(tmp_path.iterdir())
    assert len(files) > 10  # (rotated many times, batches crossing rotations)
    for p in files:
        assert p.stat().st_size < 16 << 10
        assert stat.S_IMODE(p.stat().st_mode) == 0o600


def test_the_oldest_files_beyond_the_backups_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    out = RotatingLines(path, max_bytes=1024, backups=2)
    for i in range(1000):
        out.put(b"%04d %s\n" % (i, b"p" * 40))
    out.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.log", "a.log.1", "a.log.2"]
    lines = written(tmp_path, "a.log")
    assert lines[-1].startswith(b"0999 ")
    assert [int(line[:4]) for line in lines] == list(range(1000 - len(lines), 1000))


def test_a_line_reaches_the_file_without_waiting_for_more_or_for_close(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    out = RotatingLines(path, max_bytes=1 << 20, backups=1)
    try:
        out.put(b"alone\n")
        deadline = time.monotonic() + 2.0
        while not (path.exists() and path.read_bytes() == b"alone\n"):
            assert time.monotonic() < deadline, "the line was not written"
            time.sleep(GATHER_S / 2)
    finally:
        out.close()


def test_an_existing_file_is_appended_to_and_counts_towards_its_size(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b"before\n" * 100)  # 700 bytes
    out = RotatingLines(path, max_bytes=1024, backups=1)
    for i in range(10):
        out.put(b"%03d %s\n" % (i, b"z" * 60))  # 65 bytes each
    out.close()
    rotated = (tmp_path / "audit.jsonl.1").read_bytes()
    assert rotated.startswith(b"before\n" * 100) and len(rotated) < 1024
    assert written(tmp_path, "audit.jsonl")[-1].startswith(b"009 ")


def test_a_failing_disk_loses_its_lines_says_so_once_and_the_writer_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "audit"
    root.mkdir()
    path = root / "audit.jsonl"
    out = RotatingLines(path, max_bytes=64, backups=1)
    try:
        with caplog.at_level(logging.DEBUG, logger="vectorizer.security.auditfile"):
            out.put(b"first %s\n" % (b"." * 33))  # 40 bytes
            _until(lambda: path.exists() and path.stat().st_size == 40)
            shutil.rmtree(root)
            root.write_bytes(b"")  # a file where the directory was: nothing can be written
            for i in range(3):  # the first needs a rotation, which fails; the rest an open
                out.put(b"lost %d %s\n" % (i, b"." * 32))
                time.sleep(GATHER_S * 3)
            _until(lambda: any(r.levelno == logging.ERROR for r in caplog.records))
            root.unlink()
            root.mkdir()
            out.put(b"back\n")
            _until(lambda: path.exists() and path.read_bytes() == b"back\n")
            # (logged by the writer thread after its write: waited for, not raced)
            _until(lambda: any("written again" in r.getMessage() for r in caplog.records))
            # Every line before "back" was handled by then (one queue, in order): the
            # failures were said once.
            errors = [r for r in caplog.records if r.levelno == logging.ERROR]
            assert len(errors) == 1 and "cannot be written" in errors[0].getMessage()
    finally:
        out.close()


def _until(done: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.01)
