"""The log's directory, made at the first start, is fsynced into its parent."""

from __future__ import annotations

from pathlib import Path

import pytest

from vectorizer.engine import files
from vectorizer.engine.wal import FsyncPolicy, WriteAheadLog


def test_the_log_directory_made_is_fsynced_into_its_parent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[Path] = []
    fsync = files.fsync_path

    def noted(path: Path) -> None:
        synced.append(Path(path))
        fsync(path)

    monkeypatch.setattr(files, "fsync_path", noted)
    wal = WriteAheadLog(tmp_path / "data" / "wal", FsyncPolicy("always"))
    wal.recover()
    assert (tmp_path / "data" / "wal").is_dir()
    assert tmp_path / "data" in synced and tmp_path in synced
    wal.close()
