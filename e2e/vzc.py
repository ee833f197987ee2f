"""Helpers of the operator suite: the resource, its children, its nodes and their data.

Nodes are reached with the SDK (`vectorizer.client.VectorizerClient`): on the local
cluster at the pod IP an EndpointSlice names, elsewhere through the apiserver's
`pods/proxy` (pod IPs are not routable from the host there).
"""

import base64
import json
import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from e2e.harness.cluster import E2ECluster
from e2e.harness.kube import JsonDict, Kube, KubeError, path
from e2e.harness.waiting import eventually
from vectorizer.client import Point, VectorizerClient

GROUP = "vectorizer.io"
VERSION = "v1alpha1"
PORT = 15002
COLLECTION = "e2e"
DIMENSION = 4
LABEL_CLUSTER = "vectorizer.io/cluster"
LABEL_ROLE = "vectorizer.io/role"
NODE_TIMEOUT = 10.0
CLUSTER_DOMAIN = "cluster.local"
TLS_ENV = "VECTORIZER_TLS_CERT_FILE"  # set on pods that serve HTTPS
AUTH_ENV = "VECTORIZER_AUTH_ENABLED"


def vzc_path(namespace: str, name: str | None = None, subresource: str | None = None) -> str:
    return path("vectorizerclusters", namespace, name, subresource, group=GROUP, version=VERSION)


def manifest(name: str, instances: int, **spec: Any) -> JsonDict:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "VectorizerCluster",
        "metadata": {"name": name},
        "spec": {"instances": instances, **spec},
    }


def is_ready(pod: JsonDict) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


async def live_pods(kube: Kube, ns: str, name: str) -> list[JsonDict]:
    listing = await kube.get(path("pods", ns), labelSelector=f"{LABEL_CLUSTER}={name}")
    pods = [p for p in listing["items"] if not p["metadata"].get("deletionTimestamp")]
    return sorted(pods, key=lambda p: str(p["metadata"]["name"]))


def role_of(pod: JsonDict) -> str:
    return str(pod["metadata"].get("labels", {}).get(LABEL_ROLE, ""))


@dataclass(frozen=True)
class Endpoint:
    pod: str
    ip: str
    port: int


async def service_endpoints(kube: Kube, ns: str, service: str) -> list[Endpoint]:
    """Ready endpoints of a Service, from its EndpointSlices (what kube-proxy would use)."""
    slices = await kube.get(
        path("endpointslices", ns, group="discovery.k8s.io"),
        labelSelector=f"kubernetes.io/service-name={service}",
    )
    found: list[Endpoint] = []
    for s in slices["items"]:
        ports = [p["port"] for p in s.get("ports") or [] if p.get("port")]
        port = ports[0] if ports else PORT
        for e in s.get("endpoints") or []:
            if not e.get("conditions", {}).get("ready"):
                continue
            pod = str((e.get("targetRef") or {}).get("name", ""))
            found.extend(Endpoint(pod, str(a), int(port)) for a in e["addresses"])
    return sorted(found, key=lambda e: e.pod)


@dataclass(frozen=True)
class Access:
    tls: bool
    api_key: str | None
    trust: ssl.SSLContext | None
    hostname: str  # the pod's DNS name, which its certificate carries

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"


def pod_fqdn(cluster: str, ns: str, pod: str) -> str:
    return f"{pod}.{cluster}-headless.{ns}.svc.{CLUSTER_DOMAIN}"


@dataclass
class Nodes:
    """Opens SDK clients to data-plane pods."""

    cluster: E2ECluster
    kube: Kube
    namespace: str

    def _proxy_ssl(self) -> ssl.SSLContext:
        config = self.kube.api.configuration
        context = ssl.create_default_context(cafile=config.ssl_ca_cert)
        if config.cert_file:
            context.load_cert_chain(config.cert_file, keyfile=config.key_file)
        if not config.verify_ssl:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    async def access(self, pod: JsonDict) -> Access:
        """How the pod's data plane wants to be called: its scheme, the cluster CA and the
        admin key, read from the Secrets the operator generated (absent when turned off)."""
        cluster = str(pod["metadata"]["labels"][LABEL_CLUSTER])
        env = {e["name"] for c in pod["spec"]["containers"] for e in c.get("env") or ()}
        tls = TLS_ENV in env
        key = None
        if AUTH_ENV in env:
            secret = await self.kube.get(path("secrets", self.namespace, f"{cluster}-admin-key"))
            key = base64.b64decode(secret["data"]["api-key"]).decode()
        trust = None
        if tls:
            secret = await self.kube.get(path("secrets", self.namespace, f"{cluster}-tls"))
            trust = ssl.create_default_context(
                cadata=base64.b64decode(secret["data"]["ca.crt"]).decode()
            )
        name = str(pod["metadata"]["name"])
        return Access(tls, key, trust, pod_fqdn(cluster, self.namespace, name))

    @asynccontextmanager
    async def client(
        self, pod: str, ip: str = "", port: int = PORT
    ) -> AsyncIterator[VectorizerClient]:
        obj = await self.kube.get(path("pods", self.namespace, pod))
        access = await self.access(obj)
        if self.cluster.local:
            ip = ip or str(obj["status"]["podIP"])
            async with VectorizerClient(
                f"{access.scheme}://{ip}:{port}",
                timeout=NODE_TIMEOUT,
                api_key=access.api_key,
                ssl=access.trust,
                server_hostname=access.hostname if access.tls else None,
            ) as vz:
                yield vz
            return
        # Through the apiserver's proxy: it speaks HTTPS to the pod (without verifying it)
        # and passes X-API-Key on.
        config = self.kube.api.configuration
        token = await config.get_api_key_with_prefix("BearerToken")
        headers = {"Authorization": str(token)} if token else {}
        target = f"{access.scheme}:{pod}:{port}" if access.tls else f"{pod}:{port}"
        url = f"{config.host}{path('pods', self.namespace, target, 'proxy')}"
        async with VectorizerClient(
            url,
            timeout=NODE_TIMEOUT,
            headers=headers,
            ssl=self._proxy_ssl(),
            api_key=access.api_key,
        ) as vz:
            yield vz

    async def status(self, pod: str) -> JsonDict | None:
        """The node's /replication/status, or None if it does not answer."""
        try:
            async with self.client(pod) as vz:
                return await vz.replication_status()
        except (OSError, TimeoutError, KubeError, Exception):  # noqa: BLE001 - any failure = no answer
            return None


@dataclass
class Ledger:
    """Every point written so far; the suite's definition of "no data loss"."""

    ids: list[int] = field(default_factory=list)

    def next_batch(self, count: int) -> list[Point]:
        start = len(self.ids)
        batch = [
            Point(i, [float(i % 7 + 1), float(i % 5 + 1), 1.0, 0.5], {"n": i})
            for i in range(start, start + count)
        ]
        self.ids.extend(p.id for p in batch if isinstance(p.id, int))
        return batch


async def all_ids(vz: VectorizerClient, collection: str = COLLECTION) -> set[int]:
    ids: set[int] = set()
    offset: int | str | None = None
    for _ in range(1000):  # bounded: 1000 pages is far more than the suite writes
        records, offset = await vz.list_points(collection, limit=256, offset=offset)
        ids.update(int(r.id) for r in records)
        if offset is None:
            return ids
    msg = "paging did not end"
    raise AssertionError(msg)


async def missing_on(nodes: Nodes, pod: str, expected: Sequence[int]) -> set[int] | None:
    """Ids absent on the pod (empty set: all there); None if the pod does not answer."""
    try:
        async with nodes.client(pod) as vz:
            return set(expected) - await all_ids(vz)
    except Exception:  # noqa: BLE001 - a restarting pod answers later
        return None


async def wait_all_data(
    nodes: Nodes, pods: Sequence[str], expected: Sequence[int], limit: float = 60.0
) -> None:
    for pod in pods:

        async def complete(pod: str = pod) -> bool:
            return await missing_on(nodes, pod, expected) == set()

        await eventually(
            complete, f"all {len(expected)} points on {pod}", limit=limit, interval=0.5
        )


async def get_vzc(kube: Kube, ns: str, name: str) -> JsonDict:
    return await kube.get(vzc_path(ns, name))


async def healthy(kube: Kube, nodes: Nodes, name: str, instances: int) -> JsonDict | None:
    """The resource once it is Healthy at `instances` with its pods agreeing; else None."""
    ns = nodes.namespace
    obj = await get_vzc(kube, ns, name)
    status = obj.get("status") or {}
    if not (
        status.get("phase") == "Healthy"
        and status.get("readyInstances") == instances
        and status.get("instances") == instances
        and status.get("observedGeneration") == obj["metadata"]["generation"]
        and status.get("currentPrimary")
    ):
        return None
    pods = await live_pods(kube, ns, name)
    primaries = [p for p in pods if role_of(p) == "primary"]
    if len(pods) != instances or not all(is_ready(p) for p in pods) or len(primaries) != 1:
        return None
    if primaries[0]["metadata"]["name"] != status["currentPrimary"]:
        return None
    return obj


async def wait_healthy(
    kube: Kube, nodes: Nodes, name: str, instances: int, limit: float = 90.0
) -> JsonDict:
    try:
        return await eventually(
            lambda: healthy(kube, nodes, name, instances),
            f"{name} Healthy with {instances} ready instances",
            limit=limit,
            interval=0.5,
        )
    except AssertionError as e:
        raise AssertionError(f"{e}\n{await describe(kube, nodes.namespace, name)}") from None


async def describe(kube: Kube, ns: str, name: str) -> str:
    """The resource's status and its pods, for failure messages."""
    obj = await kube.get_or_none(vzc_path(ns, name))
    status = json.dumps((obj or {}).get("status"), indent=1, sort_keys=True)
    pods = [
        f"{p['metadata']['name']} role={role_of(p)} ready={is_ready(p)} "
        f"phase={p.get('status', {}).get('phase')}"
        for p in await live_pods(kube, ns, name)
    ]
    return f"status of {ns}/{name}: {status}\npods: {pods}"


async def primary_endpoint(kube: Kube, ns: str, name: str) -> Endpoint:
    async def one() -> Endpoint | None:
        eps = await service_endpoints(kube, ns, f"{name}-rw")
        return eps[0] if len(eps) == 1 else None

    return await eventually(one, f"exactly one ready endpoint of {name}-rw", limit=30.0)


async def write_through_rw(kube: Kube, nodes: Nodes, name: str, points: Sequence[Point]) -> int:
    """Upsert through the -rw Service's endpoint; returns the write's sequence."""
    ep = await primary_endpoint(kube, nodes.namespace, name)
    async with nodes.client(ep.pod, ep.ip, ep.port) as vz:
        return await vz.upsert(COLLECTION, points)


async def caught_up(nodes: Nodes, primary: str, replica: str) -> bool:
    p, r = await nodes.status(primary), await nodes.status(replica)
    return bool(p and r and r.get("role") == "replica" and r.get("sequence") == p.get("sequence"))
