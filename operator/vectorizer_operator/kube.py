"""The Kubernetes API as plain JSON, on kubernetes_asyncio's ApiClient.

kubernetes_asyncio loads the kubeconfig or the in-cluster service account and handles
TLS and tokens; its generated models are not used: the operator builds and reads
JSON, and every call goes through ``request`` with a REST path from ``path``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import cast

import aiohttp
from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.config import ConfigException, load_incluster_config, load_kube_config

from vectorizer_operator import naming
from vectorizer_operator.reconcile.ports import Json, KubeApiError

log = logging.getLogger(__name__)

RESOURCES: Mapping[tuple[str, str], str] = {
    ("v1", "Pod"): "pods",
    ("v1", "Service"): "services",
    ("v1", "ConfigMap"): "configmaps",
    ("v1", "Secret"): "secrets",
    ("v1", "ServiceAccount"): "serviceaccounts",
    ("v1", "PersistentVolumeClaim"): "persistentvolumeclaims",
    ("v1", "Event"): "events",
    ("apps/v1", "StatefulSet"): "statefulsets",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudgets",
    ("coordination.k8s.io/v1", "Lease"): "leases",
    (naming.API_VERSION, naming.KIND): naming.PLURAL,
    (naming.MONITORING_API_VERSION, "PodMonitor"): "podmonitors",
    (naming.MONITORING_API_VERSION, "PrometheusRule"): "prometheusrules",
    (naming.CERT_MANAGER_API_VERSION, "Certificate"): "certificates",
}
MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


def path(
    api_version: str,
    kind: str,
    namespace: str | None,
    name: str | None = None,
    sub: str | None = None,
) -> str:
    """REST path, e.g. ``path("apps/v1", "StatefulSet", "ns", "x")``."""
    plural = RESOURCES[(api_version, kind)]
    parts = ["/api/v1" if api_version == "v1" else f"/apis/{api_version}"]
    if namespace:
        parts.append(f"namespaces/{namespace}")
    parts.append(plural)
    if name:
        parts.append(name)
    if sub:
        parts.append(sub)
    return "/".join(parts)


async def load_configuration() -> Configuration:
    """In-cluster service account first, then the kubeconfig ($KUBECONFIG or ~/.kube/config)."""
    config = Configuration()
    try:
        load_incluster_config(client_configuration=config)  # type: ignore[no-untyped-call]
    except ConfigException:
        await load_kube_config(client_configuration=config)
    return config


class KubeClient:
    """Implements ``reconcile.ports.Kube`` (and what the leader election needs)."""

    def __init__(self, api: ApiClient, *, identity: str = naming.FIELD_MANAGER) -> None:
        self.api = api
        self.identity = identity

    @classmethod
    async def connect(cls, *, identity: str = naming.FIELD_MANAGER) -> KubeClient:
        return cls(ApiClient(configuration=await load_configuration()), identity=identity)

    async def close(self) -> None:
        await self.api.close()

    async def request(
        self,
        method: str,
        url: str,
        *,
        query: Mapping[str, str] | None = None,
        body: object = None,
        content_type: str = "application/json",
    ) -> Json:
        response = cast(
            aiohttp.ClientResponse,
            await self.api.call_api(
                url,
                method,
                query_params=list((query or {}).items()),
                header_params={"Content-Type": content_type, "Accept": "application/json"},
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=30.0,
            ),
        )
        async with response:
            text = await response.text()
            if not 200 <= response.status < 300:
                reason = ""
                try:
                    decoded = json.loads(text)
                    reason = str(decoded.get("reason", ""))
                    text = str(decoded.get("message", text))
                except ValueError:
                    pass
                raise KubeApiError(response.status, text[:500], reason)
            return cast(Json, json.loads(text)) if text else {}

    # ---- reconcile.ports.Kube --------------------------------------------------------------

    async def get(self, api_version: str, kind: str, namespace: str, name: str) -> Json | None:
        try:
            return await self.request("GET", path(api_version, kind, namespace, name))
        except KubeApiError as err:
            if err.status == 404:
                return None
            raise

    async def list(self, api_version: str, kind: str, namespace: str, selector: str) -> list[Json]:
        found = await self.request(
            "GET", path(api_version, kind, namespace), query={"labelSelector": selector}
        )
        return list(found.get("items") or [])

    async def apply(self, manifest: Json, *, dry_run: bool = False) -> Json:
        meta = manifest["metadata"]
        url = path(manifest["apiVersion"], manifest["kind"], meta.get("namespace"), meta["name"])
        query = {"fieldManager": naming.FIELD_MANAGER, "force": "true"}
        if dry_run:
            query["dryRun"] = "All"
        return await self.request(
            "PATCH", url, query=query, body=manifest, content_type=APPLY_PATCH
        )

    async def patch(
        self, api_version: str, kind: str, namespace: str, name: str, patch: Json
    ) -> Json:
        url = path(api_version, kind, namespace, name)
        return await self.request("PATCH", url, body=patch, content_type=MERGE_PATCH)

    async def patch_status(
        self, api_version: str, kind: str, namespace: str, name: str, status: Json
    ) -> None:
        url = path(api_version, kind, namespace, name, "status")
        await self.request("PATCH", url, body={"status": status}, content_type=MERGE_PATCH)

    async def delete(
        self, api_version: str, kind: str, namespace: str, name: str, *, uid: str | None = None
    ) -> None:
        body: Json = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "propagationPolicy": "Background",
        }
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            await self.request("DELETE", path(api_version, kind, namespace, name), body=body)
        except KubeApiError as err:
            if err.status != 404:
                raise

    async def emit_event(self, involved: Json, type_: str, reason: str, message: str) -> None:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "generateName": f"{involved['name']}.",
                "namespace": involved["namespace"],
            },
            "involvedObject": involved,
            "type": type_,
            "reason": reason,
            "message": message[:1000],
            "source": {"component": naming.FIELD_MANAGER},
            "reportingComponent": naming.FIELD_MANAGER,
            "reportingInstance": self.identity,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        await self.request("POST", path("v1", "Event", involved["namespace"]), body=event)

    async def serves(self, api_version: str, kind: str) -> bool:
        """API discovery (``GET /apis/<group>/<version>``; readable by every account)."""
        url = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        try:
            found = await self.request("GET", url)
        except KubeApiError as err:
            if err.status == 404:
                return False
            raise
        return any(r.get("kind") == kind for r in found.get("resources") or ())

    # ---- leases (leader election) -----------------------------------------------------------

    async def create(self, manifest: Json) -> Json:
        meta = manifest["metadata"]
        url = path(manifest["apiVersion"], manifest["kind"], meta.get("namespace"))
        return await self.request("POST", url, body=manifest)

    async def replace(self, manifest: Json) -> Json:
        """PUT with the object's resourceVersion: 409 if someone else wrote it first."""
        meta = manifest["metadata"]
        url = path(manifest["apiVersion"], manifest["kind"], meta.get("namespace"), meta["name"])
        return await self.request("PUT", url, body=manifest)
