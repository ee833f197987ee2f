"""Hold a system call at its edge, in-process: for tests of what happens while a write
or a snapshot waits for the disk."""

from __future__ import annotations

import os
import threading

import pytest


class HeldFsync:
    """``os.fsync`` whose first call once ``armed`` waits for ``released`` (in whatever
    thread makes it: the log's or a snapshot's executor); the others go through."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._real = os.fsync
        self.armed = False
        self.entered = threading.Event()
        self.released = threading.Event()
        monkeypatch.setattr(os, "fsync", self)

    def __call__(self, fd: int) -> None:
        if self.armed:
            self.armed = False
            self.entered.set()
            self.released.wait(10)
        self._real(fd)
