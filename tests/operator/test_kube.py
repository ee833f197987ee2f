"""The JSON API client: paths, verbs, content types, errors (against a local HTTP server)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from kubernetes_asyncio.client import ApiClient, Configuration

from vectorizer_operator.kube import APPLY_PATCH, MERGE_PATCH, KubeClient, path
from vectorizer_operator.reconcile.ports import KubeApiError


def test_paths() -> None:
    assert path("v1", "Pod", "db", "vz-0") == "/api/v1/namespaces/db/pods/vz-0"
    assert path("apps/v1", "StatefulSet", "db") == "/apis/apps/v1/namespaces/db/statefulsets"
    assert (
        path("vectorizer.io/v1alpha1", "VectorizerCluster", "db", "vz", "status")
        == "/apis/vectorizer.io/v1alpha1/namespaces/db/vectorizerclusters/vz/status"
    )
    assert path("policy/v1", "PodDisruptionBudget", "db", "vz").startswith("/apis/policy/v1/")


@pytest.fixture
async def kube(aiohttp_server: Any) -> Any:
    seen: list[dict[str, Any]] = []

    async def handler(request: web.Request) -> web.Response:
        body = await request.text()
        seen.append(
            {
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "type": request.headers.get("Content-Type"),
                "auth": request.headers.get("Authorization"),
                "body": body,
            }
        )
        if request.path.endswith("/missing"):
            return web.json_response(
                {"kind": "Status", "reason": "NotFound", "message": "nope"}, status=404
            )
        if request.path.endswith("/broken"):
            return web.json_response(
                {"kind": "Status", "reason": "Invalid", "message": "bad spec"}, status=422
            )
        if request.method == "GET" and request.path.endswith("/pods"):
            return web.json_response({"items": [{"metadata": {"name": "vz-0"}}]})
        return web.json_response({"metadata": {"name": "x"}})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    server = await aiohttp_server(app)
    config = Configuration(host=str(server.make_url("")).rstrip("/"))
    config.api_key = {"BearerToken": "t0ken"}
    config.api_key_prefix = {"BearerToken": "Bearer"}
    client = KubeClient(ApiClient(configuration=config), identity="op-1")
    yield client, seen
    await client.close()


async def test_get_and_not_found(kube: Any) -> None:
    client, seen = kube
    assert await client.get("v1", "Pod", "db", "vz-0") == {"metadata": {"name": "x"}}
    assert await client.get("v1", "Pod", "db", "missing") is None
    assert seen[0]["auth"] == "Bearer t0ken"


async def test_list_with_a_selector(kube: Any) -> None:
    client, seen = kube
    items = await client.list("v1", "Pod", "db", "vectorizer.io/cluster=vz")
    assert items == [{"metadata": {"name": "vz-0"}}]
    assert seen[0]["query"] == {"labelSelector": "vectorizer.io/cluster=vz"}


@pytest.mark.parametrize(
    ("api_version", "kind", "name", "dry_run", "path"),
    [
        ("v1", "Service", "vz-rw", False, "/api/v1/namespaces/db/services/vz-rw"),
        # a dry run asks the API server to store nothing
        ("apps/v1", "StatefulSet", "vz", True, "/apis/apps/v1/namespaces/db/statefulsets/vz"),
    ],
    ids=["apply", "dry-run"],
)
async def test_apply_is_a_forced_server_side_apply(
    kube: Any, api_version: str, kind: str, name: str, dry_run: bool, path: str
) -> None:
    client, seen = kube
    manifest = {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, "namespace": "db"},
    }
    await client.apply(manifest, dry_run=dry_run)
    req = seen[0]
    assert (req["method"], req["path"], req["type"]) == ("PATCH", path, APPLY_PATCH)
    dry = {"dryRun": "All"} if dry_run else {}
    assert req["query"] == {"fieldManager": "vectorizer-operator", "force": "true", **dry}


async def test_status_patch_delete_and_event(kube: Any) -> None:
    client, seen = kube
    await client.patch_status(
        "vectorizer.io/v1alpha1", "VectorizerCluster", "db", "vz", {"phase": "Healthy"}
    )
    await client.patch("v1", "Pod", "db", "vz-0", {"metadata": {"labels": {"a": "b"}}})
    await client.delete("v1", "Pod", "db", "vz-0", uid="u1")
    await client.delete("v1", "Pod", "db", "missing")
    await client.emit_event(
        {"name": "vz", "namespace": "db", "kind": "VectorizerCluster"}, "Normal", "Promoted", "m"
    )
    assert (
        seen[0]["path"].endswith("/vectorizerclusters/vz/status") and seen[0]["type"] == MERGE_PATCH
    )
    assert '"status": {"phase": "Healthy"}' in seen[0]["body"]
    assert seen[1]["type"] == MERGE_PATCH
    assert seen[2]["method"] == "DELETE" and '"uid": "u1"' in seen[2]["body"]
    assert seen[4]["method"] == "POST" and seen[4]["path"] == "/api/v1/namespaces/db/events"
    assert '"reportingInstance": "op-1"' in seen[4]["body"]


async def test_errors_carry_status_and_reason(kube: Any) -> None:
    client, _ = kube
    with pytest.raises(KubeApiError) as err:
        await client.apply(
            {
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "metadata": {"name": "broken", "namespace": "db"},
            }
        )
    assert (err.value.status, err.value.reason, err.value.message) == (422, "Invalid", "bad spec")
    assert "bad spec" in str(err.value)


async def test_discovery(aiohttp_server: Any) -> None:
    async def group(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "kind": "APIResourceList",
                "groupVersion": "monitoring.coreos.com/v1",
                "resources": [
                    {"name": "podmonitors", "kind": "PodMonitor", "namespaced": True},
                    {"name": "prometheusrules", "kind": "PrometheusRule", "namespaced": True},
                ],
            }
        )

    async def missing(request: web.Request) -> web.Response:
        return web.json_response({"kind": "Status", "reason": "NotFound"}, status=404)

    app = web.Application()
    app.router.add_get("/apis/monitoring.coreos.com/v1", group)
    app.router.add_route("*", "/{tail:.*}", missing)
    server = await aiohttp_server(app)
    client = KubeClient(ApiClient(configuration=Configuration(host=str(server.make_url("")))))
    try:
        assert await client.serves("monitoring.coreos.com/v1", "PodMonitor") is True
        assert await client.serves("monitoring.coreos.com/v1", "PrometheusRule") is True
        assert await client.serves("monitoring.coreos.com/v1", "Probe") is False
        assert await client.serves("other.io/v1", "PodMonitor") is False
    finally:
        await client.close()
    assert path("monitoring.coreos.com/v1", "PodMonitor", "db", "vz") == (
        "/apis/monitoring.coreos.com/v1/namespaces/db/podmonitors/vz"
    )
