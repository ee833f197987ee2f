from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import ServerProcess


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[type[ServerProcess]]:
    """Start servers with ``server_factory(data_dir=..., args=[...]).start()``; all stopped after."""
    started: list[ServerProcess] = []

    class Tracked(ServerProcess):
        def start(self, wait_ready: bool = True, timeout: float = 60.0) -> ServerProcess:
            started.append(self)
            return super().start(wait_ready, timeout)

    yield Tracked
    for s in started:
        s.kill()


@pytest.fixture
def server(server_factory: type[ServerProcess], tmp_path: Path) -> ServerProcess:
    """A running server with a fresh data directory."""
    return server_factory(data_dir=tmp_path / "data").start()
