"""Smoke tests of the e2e cluster itself: controllers, process kubelet, network, volumes.

Containers run `python3 -m http.server` (images are ignored by the process
kubelet; on kind use an image that has python3, see README).
"""

import asyncio
import json
import time
import urllib.request
from ipaddress import IPv4Address
from typing import Any

import pytest

from e2e.harness.cluster import E2ECluster
from e2e.harness.kube import JsonDict, Kube, path
from e2e.harness.waiting import eventually

IMAGE = "python:3.11-slim"  # used on kind; ignored by the process kubelet
APPS = "apps"
WEB_COMMAND = (
    # The first incarnation leaves its uid on the volume; every one serves /data.
    "[ -f /data/first-uid ] || echo $(POD_UID) > /data/first-uid; "
    "echo $(POD_NAME) > /data/whoami; exec python3 -m http.server 8080 --directory /data"
)


def web_container(command: str = WEB_COMMAND) -> JsonDict:
    return {
        "name": "web",
        "image": IMAGE,
        "command": ["sh", "-c", command],
        "env": [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
        ],
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/whoami", "port": "http"}, "periodSeconds": 1},
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    }


def statefulset(name: str, replicas: int) -> JsonDict:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": {
            "serviceName": name,
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"terminationGracePeriodSeconds": 5, "containers": [web_container()]},
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}},
                    },
                }
            ],
        },
    }


def headless_service(name: str) -> JsonDict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "clusterIP": "None",
            "selector": {"app": name},
            "ports": [{"name": "http", "port": 8080}],
        },
    }


def is_ready(pod: JsonDict | None) -> bool:
    conditions = (pod or {}).get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


async def ready_pods(kube: Kube, ns: str, selector: str, count: int) -> list[JsonDict] | None:
    pods = (await kube.get(path("pods", ns), labelSelector=selector))["items"]
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    ready = [p for p in live if is_ready(p)]
    return ready if len(ready) == count == len(live) else None


async def http_get(
    cluster: E2ECluster, kube: Kube, ns: str, pod: JsonDict, port: int, url: str
) -> str:
    """GET from the pod: to its IP on the local cluster, else through the apiserver's proxy."""
    if cluster.local:
        address = f"http://{pod['status']['podIP']}:{port}{url}"

        def fetch() -> str:
            with urllib.request.urlopen(address, timeout=5) as response:
                return str(response.read().decode())

        return await asyncio.to_thread(fetch)
    proxy = path("pods", ns, f"{pod['metadata']['name']}:{port}", f"proxy{url}")
    return await kube.get_text(proxy)


async def test_statefulset_pods_network_endpoints_and_volumes(
    e2e_cluster: E2ECluster, kube: Kube, namespace: str
) -> None:
    ns, name = namespace, "web"
    await kube.create(path("services", ns), headless_service(name))
    await kube.create(path("statefulsets", ns, group=APPS), statefulset(name, 2))

    pods = await eventually(lambda: ready_pods(kube, ns, f"app={name}", 2), "2 ready pods")
    ips = {p["metadata"]["name"]: p["status"]["podIP"] for p in pods}
    assert sorted(ips) == [f"{name}-0", f"{name}-1"]
    assert len(set(ips.values())) == 2, ips
    for ip in ips.values():
        assert not IPv4Address(ip).is_loopback
    for pod in pods:
        statuses = pod["status"]["containerStatuses"]
        assert pod["status"]["phase"] == "Running"
        assert statuses[0]["ready"] and "running" in statuses[0]["state"]

    claims = (await kube.get(path("persistentvolumeclaims", ns)))["items"]
    assert {c["metadata"]["name"]: c["status"]["phase"] for c in claims} == {
        f"data-{name}-0": "Bound",
        f"data-{name}-1": "Bound",
    }

    async def sliced_ips() -> set[str] | None:
        selector = f"kubernetes.io/service-name={name}"
        slices = (
            await kube.get(
                path("endpointslices", ns, group="discovery.k8s.io"), labelSelector=selector
            )
        )["items"]
        found = {
            address
            for s in slices
            for e in s.get("endpoints") or []
            if e.get("conditions", {}).get("ready")
            for address in e["addresses"]
        }
        return found if found == set(ips.values()) else None

    await eventually(sliced_ips, "EndpointSlice listing both pod IPs")

    for pod in pods:
        body = await http_get(e2e_cluster, kube, ns, pod, 8080, "/whoami")
        assert body.strip() == pod["metadata"]["name"]

    # Delete web-0: the StatefulSet controller recreates it with the same claim.
    old = next(p for p in pods if p["metadata"]["name"] == f"{name}-0")
    await kube.delete(path("pods", ns, f"{name}-0"))

    async def replaced() -> JsonDict | None:
        pod = await kube.get_or_none(path("pods", ns, f"{name}-0"))
        new = pod and pod["metadata"]["uid"] != old["metadata"]["uid"] and is_ready(pod)
        return pod if new else None

    new = await eventually(replaced, f"{name}-0 recreated and ready")
    first_uid = await http_get(e2e_cluster, kube, ns, new, 8080, "/first-uid")
    assert first_uid.strip() == old["metadata"]["uid"], "the claim's data survived the pod"


async def test_deployment_replaces_deleted_pod(kube: Kube, namespace: str) -> None:
    ns = namespace
    container = web_container("mkdir -p /data && exec python3 -m http.server 8080 --directory /")
    container["readinessProbe"] = {"tcpSocket": {"port": 8080}, "periodSeconds": 1}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "api"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "api"}},
            "template": {
                "metadata": {"labels": {"app": "api"}},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "containers": [container],
                    "volumes": [{"name": "data", "emptyDir": {}}],
                },
            },
        },
    }
    await kube.create(path("deployments", ns, group=APPS), deployment)
    pods = await eventually(lambda: ready_pods(kube, ns, "app=api", 2), "2 ready pods")
    victim = pods[0]["metadata"]["name"]
    await kube.delete(path("pods", ns, victim))

    async def replaced() -> list[JsonDict] | None:
        ready = await ready_pods(kube, ns, "app=api", 2)
        names = {p["metadata"]["name"] for p in ready or []}
        return ready if ready and victim not in names else None

    await eventually(replaced, "a replacement pod")


async def test_crashing_container_restarts_with_backoff(kube: Kube, namespace: str) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "crash"},
        "spec": {
            "restartPolicy": "OnFailure",
            "containers": [{"name": "c", "image": IMAGE, "command": ["sh", "-c", "exit 3"]}],
        },
    }
    await kube.create(path("pods", namespace), pod)

    async def restarted() -> JsonDict | None:
        status = (await kube.get(path("pods", namespace, "crash"))).get("status", {})
        statuses = status.get("containerStatuses", [])
        return statuses[0] if statuses and statuses[0]["restartCount"] >= 2 else None

    status = await eventually(restarted, "two restarts", limit=30)
    assert status["lastState"]["terminated"]["exitCode"] == 3


async def test_deletion_waits_for_grace_period_then_kills(kube: Kube, namespace: str) -> None:
    stubborn = "trap '' TERM; echo started; while :; do sleep 0.1; done"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "stubborn"},
        "spec": {
            "terminationGracePeriodSeconds": 2,
            "containers": [{"name": "c", "image": IMAGE, "command": ["sh", "-c", stubborn]}],
        },
    }
    await kube.create(path("pods", namespace), pod)

    async def running() -> bool:
        got = await kube.get(path("pods", namespace, "stubborn"))
        return bool(got.get("status", {}).get("phase") == "Running")

    await eventually(running, "pod running")
    started = time.monotonic()
    await kube.delete(path("pods", namespace, "stubborn"))

    async def gone() -> bool:
        return await kube.get_or_none(path("pods", namespace, "stubborn")) is None

    await eventually(gone, "pod removed after SIGKILL", limit=20)
    assert 1.5 <= time.monotonic() - started < 15


async def test_pod_to_pod_dns_configmap_and_token(
    e2e_cluster: E2ECluster, kube: Kube, namespace: str
) -> None:
    """A client pod resolves a StatefulSet pod by DNS and fetches from it; config is projected."""
    ns = namespace
    await kube.create(path("services", ns), headless_service("srv"))
    await kube.create(path("statefulsets", ns, group=APPS), statefulset("srv", 1))
    await eventually(lambda: ready_pods(kube, ns, "app=srv", 1), "server ready")
    await kube.create(
        path("configmaps", ns), {"metadata": {"name": "cfg"}, "data": {"target": "srv-0.srv"}}
    )
    script = (
        "import json, os, pathlib, ssl, urllib.request\n"
        "host = pathlib.Path('/etc/cfg/target').read_text()\n"
        "body = urllib.request.urlopen(f'http://{host}:8080/whoami', timeout=5).read()\n"
        "assert body.strip() == b'srv-0', body\n"
        # In-cluster API access, by env and by DNS name, verified against the projected CA.
        "sa = pathlib.Path('/var/run/secrets/kubernetes.io/serviceaccount')\n"
        "ctx = ssl.create_default_context(cafile=str(sa / 'ca.crt'))\n"
        "env = os.environ\n"
        "for base in (f\"https://{env['KUBERNETES_SERVICE_HOST']}:{env['KUBERNETES_SERVICE_PORT']}\",\n"
        "             'https://kubernetes.default.svc'):\n"
        "    req = urllib.request.Request(base + '/version')\n"
        "    req.add_header('Authorization', 'Bearer ' + (sa / 'token').read_text())\n"
        "    info = json.load(urllib.request.urlopen(req, context=ctx, timeout=5))\n"
        "    assert info['gitVersion'].startswith('v1.'), info\n"
    )
    client = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "client"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "c",
                    "image": IMAGE,
                    "command": ["python3", "-c", script],
                    "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg"}],
                }
            ],
            "volumes": [{"name": "cfg", "configMap": {"name": "cfg"}}],
        },
    }
    await kube.create(path("pods", ns), client)

    async def finished() -> str | None:
        got = await kube.get(path("pods", ns, "client"))
        phase = str(got.get("status", {}).get("phase", ""))
        return phase if phase in ("Succeeded", "Failed") else None

    phase = await eventually(finished, "client pod to finish", limit=60)
    assert phase == "Succeeded", await _describe(kube, ns, "client")


async def _describe(kube: Kube, ns: str, name: str) -> str:
    pod: Any = await kube.get(path("pods", ns, name))
    return json.dumps(pod.get("status", {}), indent=1)


@pytest.mark.parametrize("probe", ["httpGet", "exec"])
async def test_failing_liveness_probe_restarts_container(
    kube: Kube, namespace: str, probe: str
) -> None:
    handler: JsonDict = (
        {"httpGet": {"path": "/missing", "port": 8080}}
        if probe == "httpGet"
        else {"exec": {"command": ["test", "-f", "/nonexistent"]}}
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "unhealthy"},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "c",
                    "image": IMAGE,
                    "command": ["python3", "-m", "http.server", "8080"],
                    "livenessProbe": {**handler, "periodSeconds": 1, "failureThreshold": 2},
                }
            ],
        },
    }
    await kube.create(path("pods", namespace), pod)

    async def restarted() -> bool:
        got = await kube.get(path("pods", namespace, "unhealthy"))
        statuses = got.get("status", {}).get("containerStatuses", [])
        return bool(statuses) and int(statuses[0]["restartCount"]) >= 1

    await eventually(restarted, "a liveness restart", limit=30)
