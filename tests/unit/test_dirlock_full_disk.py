"""The pid written into ``LOCK`` is only informational: a disk with no room for it does
not keep a node from starting (the lock is the flock)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from vectorizer.engine import dirlock
from vectorizer.engine.dirlock import DirLock
from vectorizer.errors import DataDirInUse


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_no_room_for_the_pid_still_takes_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    def full(fd: int, data: bytes) -> int:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(dirlock.os, "write", full)
    with DirLock(tmp_path):
        monkeypatch.undo()
        with pytest.raises(DataDirInUse):  # held all the same
            DirLock(tmp_path)
    DirLock(tmp_path).release()  # (and let go)


def test_other_write_errors_still_refuse_and_let_the_lock_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(fd: int, data: bytes) -> int:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(dirlock.os, "write", broken)
    with pytest.raises(OSError) as exc:
        DirLock(tmp_path)
    assert exc.value.errno == errno.EIO
    monkeypatch.undo()
    DirLock(tmp_path).release()
