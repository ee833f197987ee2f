"""A small typed JSON client on top of kubernetes_asyncio's ApiClient.

kubernetes_asyncio handles kubeconfig loading, TLS and auth; its generated
models are untyped, so the harness speaks plain JSON dicts through one typed
entry point instead (`Kube.request`), plus a watch that survives reconnects.
"""

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any, Literal, Self, cast

import aiohttp
from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.config import load_kube_config

JsonDict = dict[str, Any]
PatchKind = Literal["merge", "strategic", "json"]
_PATCH_TYPES: Mapping[PatchKind, str] = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
}
log = logging.getLogger(__name__)


class KubeError(Exception):
    """A non-2xx answer from the apiserver."""

    def __init__(self, status: int, body: str) -> None:
        self.status = status
        self.body = body
        try:
            self.reason = str(json.loads(body).get("reason", ""))
        except ValueError:
            self.reason = ""
        super().__init__(f"HTTP {status}: {body[:500]}")


def path(
    resource: str,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
    group: str = "",
    version: str = "v1",
) -> str:
    """REST path of a resource.

    path("pods", "ns", "p", "status") == "/api/v1/namespaces/ns/pods/p/status"
    """
    parts = ["/api/v1" if not group else f"/apis/{group}/{version}"]
    if namespace:
        parts.append(f"namespaces/{namespace}")
    parts.append(resource)
    if name:
        parts.append(name)
    if subresource:
        parts.append(subresource)
    return "/".join(parts)


class Kube:
    """JSON in, JSON out; raises KubeError on HTTP errors."""

    def __init__(self, api: ApiClient) -> None:
        self.api = api

    @classmethod
    async def from_kubeconfig(cls, kubeconfig: Path) -> Self:
        config = Configuration()
        await load_kube_config(config_file=str(kubeconfig), client_configuration=config)
        # Each watch holds a connection for minutes; leave room for requests.
        config.connection_pool_maxsize = 64
        return cls(ApiClient(configuration=config))

    async def close(self) -> None:
        await self.api.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def _open(
        self,
        method: str,
        url: str,
        query: Mapping[str, str | int | bool] | None = None,
        body: object = None,
        content_type: str = "application/json",
        request_timeout: aiohttp.ClientTimeout | float | None = 30.0,
    ) -> aiohttp.ClientResponse:
        params = [
            (k, str(v).lower() if isinstance(v, bool) else str(v)) for k, v in (query or {}).items()
        ]
        response = await self.api.call_api(
            url,
            method,
            query_params=params,
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
            _preload_content=False,
            _request_timeout=request_timeout,
        )
        return cast(aiohttp.ClientResponse, response)

    async def request(
        self,
        method: str,
        url: str,
        query: Mapping[str, str | int | bool] | None = None,
        body: object = None,
        content_type: str = "application/json",
    ) -> JsonDict:
        response = await self._open(method, url, query, body, content_type)
        async with response:
            text = await response.text()
            if not 200 <= response.status < 300:
                raise KubeError(response.status, text)
            return cast(JsonDict, json.loads(text)) if text else {}

    async def get(self, url: str, **query: str | int | bool) -> JsonDict:
        return await self.request("GET", url, query)

    async def get_text(self, url: str) -> str:
        """A non-JSON GET, e.g. a pod's HTTP endpoint through pods/proxy."""
        response = await self._open("GET", url, content_type="application/json")
        async with response:
            text = await response.text()
            if not 200 <= response.status < 300:
                raise KubeError(response.status, text)
            return text

    async def get_or_none(self, url: str) -> JsonDict | None:
        try:
            return await self.get(url)
        except KubeError as e:
            if e.status == 404:
                return None
            raise

    async def create(self, url: str, body: JsonDict) -> JsonDict:
        return await self.request("POST", url, body=body)

    async def patch(self, url: str, body: object, kind: PatchKind = "merge") -> JsonDict:
        return await self.request("PATCH", url, body=body, content_type=_PATCH_TYPES[kind])

    async def delete(self, url: str, body: JsonDict | None = None) -> JsonDict | None:
        try:
            return await self.request("DELETE", url, body=body)
        except KubeError as e:
            if e.status == 404:
                return None
            raise

    async def watch(
        self,
        url: str,
        on_list: Callable[[list[JsonDict]], None] | None = None,
        **query: str | int | bool,
    ) -> AsyncIterator[tuple[str, JsonDict]]:
        """List then watch `url` forever, yielding (event type, object).

        A relist (after "410 Gone" or a broken stream) replays every current
        object as ADDED, so consumers must treat ADDED/MODIFIED alike; deletions
        missed meanwhile show only in the full listing passed to `on_list`.
        """
        resource_version = ""
        while True:
            try:
                if not resource_version:
                    listing = await self.get(url, **query)
                    if on_list:
                        on_list(listing.get("items", []))
                    for item in listing.get("items", []):
                        yield "ADDED", item
                    resource_version = str(listing["metadata"]["resourceVersion"])
                async for event, obj in self._watch_once(url, resource_version, query):
                    if event == "ERROR":
                        resource_version = ""  # usually 410 Gone: relist
                        break
                    resource_version = str(obj["metadata"].get("resourceVersion", resource_version))
                    if event != "BOOKMARK":
                        yield event, obj
            except (TimeoutError, aiohttp.ClientError, KubeError) as e:
                log.warning("watch %s interrupted: %s", url, e)
                resource_version = ""
                await asyncio.sleep(1)

    async def _watch_once(
        self, url: str, resource_version: str, query: Mapping[str, str | int | bool]
    ) -> AsyncIterator[tuple[str, JsonDict]]:
        params = {
            **query,
            "watch": True,
            "resourceVersion": resource_version,
            "allowWatchBookmarks": True,
            "timeoutSeconds": 300,
        }
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=330)
        response = await self._open("GET", url, params, request_timeout=timeout)
        async with response:
            if response.status != 200:
                raise KubeError(response.status, await response.text())
            async for line in response.content:
                if line.strip():
                    event = json.loads(line)
                    yield str(event["type"]), cast(JsonDict, event["object"])
