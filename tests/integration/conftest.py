from __future__ import annotations

from collections.abc import Iterator

import pytest
from qdrant_client import QdrantClient

from tests.servers import ServerProcess


@pytest.fixture
def client(server: ServerProcess) -> Iterator[QdrantClient]:
    """The official qdrant-client on the test's server. (Its version check passes, see
    test_version_check_passes, but it runs in a background thread that can outlive a
    short test and then warn about the stopped server: it is off here.)"""
    c = QdrantClient(url=server.url, prefix="qdrant", timeout=60, check_compatibility=False)
    yield c
    c.close()
