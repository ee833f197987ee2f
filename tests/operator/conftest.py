"""Shared helpers for the operator tests."""

from __future__ import annotations

from typing import Any

import pytest

from tests.operator.fakes import NS, cluster_body
from vectorizer_operator.builders import BuildOptions
from vectorizer_operator.model import Cluster, parse_cluster

OPTIONS = BuildOptions(default_image="vectorizer:test", cluster_domain="cluster.local")


def make_cluster(name: str = "vz", status: dict[str, Any] | None = None, **spec: Any) -> Cluster:
    body = cluster_body(name, NS, **spec)
    if status is not None:
        body["status"] = status
    return parse_cluster(body)


@pytest.fixture
def cluster() -> Cluster:
    return make_cluster(instances=3)
