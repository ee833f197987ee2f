"""The operator end to end: a real API server, real pods, the operator as a process.

One VectorizerCluster (`vectors`) lives through the whole module and every test
builds on the state the previous one left (3 instances, scaled, reconfigured,
disrupted, deleted), like an operator's day; each test first waits for the cluster
to be Healthy, so a failure does not hide behind the next test's. Every point
written is recorded in `LEDGER` and checked on every instance at the end of each
step ("no data loss"). Every wait is bounded (`eventually`).
"""

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from e2e.harness.cluster import E2ECluster
from e2e.harness.kube import JsonDict, Kube, path
from e2e.harness.waiting import eventually
from e2e.operator_fixtures import Kubectl, KubectlError, Operator
from e2e.vzc import (
    COLLECTION,
    DIMENSION,
    Endpoint,
    Ledger,
    Nodes,
    caught_up,
    get_vzc,
    healthy,
    is_ready,
    live_pods,
    manifest,
    role_of,
    service_endpoints,
    vzc_path,
    wait_all_data,
    wait_healthy,
    write_through_rw,
)

NAME = "vectors"
APPS = "apps"
LEDGER = Ledger()

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
async def nodes(
    e2e_cluster: E2ECluster, kube: Kube, module_namespace: str, operator: Operator
) -> AsyncIterator[Nodes]:
    del operator  # every test here needs it running
    yield Nodes(e2e_cluster, kube, module_namespace)


def apply(kubectl: Kubectl, ns: str, obj: JsonDict, *extra: str) -> str:
    return kubectl.run("apply", "-n", ns, *extra, "-f", "-", stdin=json.dumps(obj)).stdout


async def check_everywhere(kube: Kube, nodes: Nodes, name: str = NAME) -> None:
    """Every point of the ledger on every instance, and each replica at the primary's sequence."""
    pods = [str(p["metadata"]["name"]) for p in await live_pods(kube, nodes.namespace, name)]
    await wait_all_data(nodes, pods, LEDGER.ids)
    primary = str((await get_vzc(kube, nodes.namespace, name))["status"]["currentPrimary"])
    for pod in pods:
        if pod != primary:

            async def synced(pod: str = pod) -> bool:
                return await caught_up(nodes, primary, pod)

            await eventually(synced, f"{pod} at the sequence of {primary}", limit=30.0)


async def test_three_instances_become_healthy_with_one_primary(
    kube: Kube, kubectl: Kubectl, nodes: Nodes
) -> None:
    ns = nodes.namespace
    apply(kubectl, ns, manifest(NAME, 3))
    obj = await wait_healthy(kube, nodes, NAME, 3, limit=120.0)

    status = obj["status"]
    pods = await live_pods(kube, ns, NAME)
    primaries = [p["metadata"]["name"] for p in pods if role_of(p) == "primary"]
    assert primaries == [status["currentPrimary"]]
    assert sorted(role_of(p) for p in pods) == ["primary", "replica", "replica"]
    reported = await nodes.status(status["currentPrimary"])
    assert reported is not None
    assert reported["role"] == "primary"
    assert reported["node_id"] == status["currentPrimary"]
    assert reported["epoch"] == status["epoch"]
    for pod in pods:
        if role_of(pod) == "replica":
            replica = await nodes.status(pod["metadata"]["name"])
            assert replica is not None and replica["role"] == "replica", replica
    # kubectl sees the same thing through the printer columns.
    table = kubectl.run("get", "vzc", NAME, "-n", ns).stdout
    assert "Healthy" in table and status["currentPrimary"] in table


async def test_writes_through_rw_are_read_through_ro(kube: Kube, nodes: Nodes) -> None:
    ns = nodes.namespace
    await wait_healthy(kube, nodes, NAME, 3)
    primary = (await get_vzc(kube, ns, NAME))["status"]["currentPrimary"]

    # EndpointSlices follow pod readiness and labels a moment later: wait for them.
    async def routed(service: str, want: int) -> list[Endpoint] | None:
        eps = await service_endpoints(kube, ns, f"{NAME}-{service}")
        pods = {e.pod for e in eps}
        right = (pods == {primary}) if service == "rw" else (primary not in pods)
        return eps if len(eps) == want and right else None

    rw = await eventually(lambda: routed("rw", 1), "-rw to list only the primary", limit=30.0)

    async with nodes.client(rw[0].pod, rw[0].ip, rw[0].port) as vz:
        await vz.create_collection(COLLECTION, DIMENSION, metric="cosine")
        await vz.upsert(COLLECTION, LEDGER.next_batch(50))

    ro = await eventually(lambda: routed("ro", 2), "-ro to list both replicas", limit=30.0)
    for ep in ro:

        async def visible(pod: str = ep.pod, ip: str = ep.ip) -> bool:
            try:
                async with nodes.client(pod, ip) as vz:
                    return await vz.count(COLLECTION) == len(LEDGER.ids)
            except Exception:  # noqa: BLE001 - the collection arrives asynchronously
                return False

        await eventually(visible, f"{len(LEDGER.ids)} points readable on {ep.pod}", limit=30.0)
        async with nodes.client(ep.pod, ep.ip) as vz:
            record = await vz.get(COLLECTION, 7)
            assert record.payload == {"n": 7}


async def test_scale_up_to_five_and_down_to_two_keeps_data(
    kube: Kube, kubectl: Kubectl, nodes: Nodes
) -> None:
    ns = nodes.namespace
    await wait_healthy(kube, nodes, NAME, 3)
    kubectl.run("scale", "vzc", NAME, "-n", ns, "--replicas=5")
    await write_through_rw(kube, nodes, NAME, LEDGER.next_batch(30))  # while scaling
    await wait_healthy(kube, nodes, NAME, 5, limit=120.0)
    await write_through_rw(kube, nodes, NAME, LEDGER.next_batch(30))
    await check_everywhere(kube, nodes)

    before = await get_vzc(kube, ns, NAME)
    old_primary = str(before["status"]["currentPrimary"])
    primary_uid = (await kube.get(path("pods", ns, old_primary)))["metadata"]["uid"]
    await kube.patch(vzc_path(ns, NAME), {"spec": {"instances": 2}})
    obj = await wait_healthy(kube, nodes, NAME, 2, limit=120.0)

    new_primary = obj["status"]["currentPrimary"]
    assert new_primary in {f"{NAME}-0", f"{NAME}-1"}
    if old_primary in {f"{NAME}-0", f"{NAME}-1"}:
        # The primary stayed: it must not have been restarted or replaced.
        assert new_primary == old_primary
        current = await kube.get(path("pods", ns, old_primary))
        assert current["metadata"]["uid"] == primary_uid
    await check_everywhere(kube, nodes)

    async def claims_of_removed_gone() -> bool:
        claims = (await kube.get(path("persistentvolumeclaims", ns)))["items"]
        names = {
            c["metadata"]["name"] for c in claims if not c["metadata"].get("deletionTimestamp")
        }
        return names == {f"data-{NAME}-0", f"data-{NAME}-1"}

    # whenScaled: Delete is the default retention.
    await eventually(claims_of_removed_gone, "claims of removed instances deleted", limit=60.0)


@dataclass
class PodWatch:
    """Polls the pods and records the order in which each got a new uid (its restart)."""

    kube: Kube
    ns: str
    uids: dict[str, str] = field(default_factory=dict)
    restarted: list[str] = field(default_factory=list)

    async def run(self) -> None:
        for _ in range(2000):  # bounded; cancelled by the test long before
            for pod in await live_pods(self.kube, self.ns, NAME):
                name, uid = str(pod["metadata"]["name"]), str(pod["metadata"]["uid"])
                if name in self.uids and self.uids[name] != uid and name not in self.restarted:
                    self.restarted.append(name)
                self.uids.setdefault(name, uid)
            await asyncio.sleep(0.3)


def dataplane_env(ns: str, pod: str) -> dict[str, str] | None:
    """The environment of the pod's `vectorizer serve` process (local cluster: a host process)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            raw = (proc / "environ").read_bytes()
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"serve" not in cmdline or f"VECTORIZER_NODE_ID={pod}".encode() not in raw:
            continue
        env = dict(
            item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item
        )
        if f".{ns}.svc" in env.get("VECTORIZER_ADVERTISE_URL", ""):
            return env
    return None


async def test_config_change_rolls_out_replicas_first(
    e2e_cluster: E2ECluster, kube: Kube, nodes: Nodes
) -> None:
    ns = nodes.namespace
    obj = await wait_healthy(kube, nodes, NAME, 2)
    primary = obj["status"]["currentPrimary"]
    watch = PodWatch(kube, ns)
    task = asyncio.create_task(watch.run())
    try:
        await asyncio.sleep(1.0)  # the watch knows every current uid
        await kube.patch(vzc_path(ns, NAME), {"spec": {"config": {"hnsw_ef_search": 77}}})

        async def rolled() -> JsonDict | None:
            done = await healthy(kube, nodes, NAME, 2)
            sts = await kube.get(path("statefulsets", ns, NAME, group=APPS))
            revision = sts["status"].get("updateRevision")
            pods = await live_pods(kube, ns, NAME)
            current = all(
                p["metadata"]["labels"].get("controller-revision-hash") == revision for p in pods
            )
            return done if current and len(watch.restarted) == 2 else None

        obj = await eventually(rolled, "every pod at the new revision", limit=150.0, interval=1.0)
    finally:
        task.cancel()
    # Replicas first, the primary last (restarted in place: it stays primary).
    assert watch.restarted[-1] == primary, watch.restarted
    assert obj["status"]["currentPrimary"] == primary

    cm = await kube.get(path("configmaps", ns, f"{NAME}-config"))
    assert cm["data"].get("VECTORIZER_HNSW_EF_SEARCH") == "77", cm["data"]
    sts = await kube.get(path("statefulsets", ns, NAME, group=APPS))
    template_hash = sts["spec"]["template"]["metadata"]["annotations"]["vectorizer.io/config-hash"]
    for pod in await live_pods(kube, ns, NAME):
        assert pod["metadata"]["annotations"]["vectorizer.io/config-hash"] == template_hash
        if e2e_cluster.local:
            env = dataplane_env(ns, pod["metadata"]["name"])
            assert env is not None, f"no process for {pod['metadata']['name']}"
            assert env.get("VECTORIZER_HNSW_EF_SEARCH") == "77"
    await write_through_rw(kube, nodes, NAME, LEDGER.next_batch(20))
    await check_everywhere(kube, nodes)


async def test_deleted_replica_comes_back_and_catches_up(kube: Kube, nodes: Nodes) -> None:
    ns = nodes.namespace
    obj = await wait_healthy(kube, nodes, NAME, 2)
    primary = obj["status"]["currentPrimary"]
    replica = next(p for p in await live_pods(kube, ns, NAME) if role_of(p) == "replica")
    name, uid = replica["metadata"]["name"], replica["metadata"]["uid"]
    await kube.delete(path("pods", ns, name), {"gracePeriodSeconds": 5})
    # Writes while the replica is away: it must fetch them when it returns.
    await write_through_rw(kube, nodes, NAME, LEDGER.next_batch(40))

    async def back() -> bool:
        pod = await kube.get_or_none(path("pods", ns, name))
        return bool(
            pod and pod["metadata"]["uid"] != uid and is_ready(pod) and role_of(pod) == "replica"
        )

    await eventually(back, f"{name} recreated and Ready", limit=90.0, interval=0.5)
    await eventually(lambda: caught_up(nodes, primary, name), f"{name} caught up", limit=60.0)
    await wait_healthy(kube, nodes, NAME, 2)
    await check_everywhere(kube, nodes)


async def test_deleted_service_and_statefulset_are_restored(kube: Kube, nodes: Nodes) -> None:
    ns = nodes.namespace
    await wait_healthy(kube, nodes, NAME, 2)
    svc = await kube.get(path("services", ns, f"{NAME}-ro"))
    await kube.delete(path("services", ns, f"{NAME}-ro"))

    async def service_back() -> bool:
        again = await kube.get_or_none(path("services", ns, f"{NAME}-ro"))
        return bool(again and again["metadata"]["uid"] != svc["metadata"]["uid"])

    await eventually(service_back, f"service {NAME}-ro recreated", limit=30.0)
    await eventually(
        lambda: service_endpoints(kube, ns, f"{NAME}-ro"), f"{NAME}-ro has endpoints", limit=30.0
    )

    sts = await kube.get(path("statefulsets", ns, NAME, group=APPS))
    # Orphan the pods: the operator must adopt the running instances, not restart them.
    await kube.delete(path("statefulsets", ns, NAME, group=APPS), {"propagationPolicy": "Orphan"})

    async def sts_back() -> bool:
        again = await kube.get_or_none(path("statefulsets", ns, NAME, group=APPS))
        return bool(again and again["metadata"]["uid"] != sts["metadata"]["uid"])

    await eventually(sts_back, f"statefulset {NAME} recreated", limit=30.0)
    new_uid = (await kube.get(path("statefulsets", ns, NAME, group=APPS)))["metadata"]["uid"]

    async def adopted() -> bool:
        pods = await live_pods(kube, ns, NAME)
        owners = [{o["uid"] for o in p["metadata"].get("ownerReferences") or []} for p in pods]
        return len(pods) == 2 and all(o == {new_uid} for o in owners)

    await eventually(adopted, "running pods adopted by the new statefulset", limit=60.0)
    await wait_healthy(kube, nodes, NAME, 2, limit=90.0)
    await write_through_rw(kube, nodes, NAME, LEDGER.next_batch(10))
    await check_everywhere(kube, nodes)


async def test_operator_killed_during_scale_up_converges(
    kube: Kube, nodes: Nodes, operator: Operator
) -> None:
    ns = nodes.namespace
    await wait_healthy(kube, nodes, NAME, 2)
    await kube.patch(vzc_path(ns, NAME), {"spec": {"instances": 3}})

    async def scaling_started() -> bool:
        sts = await kube.get(path("statefulsets", ns, NAME, group=APPS))
        return bool(sts["spec"]["replicas"] == 3)

    # The operator has acted (StatefulSet resized) but the new pod does not follow yet.
    await eventually(scaling_started, "statefulset resized to 3", limit=30.0, interval=0.1)
    mid = (await get_vzc(kube, ns, NAME))["status"]
    operator.kill()
    # Killed mid-way: the new instance was not yet serving as a replica.
    assert (mid.get("phase"), mid.get("readyInstances")) != ("Healthy", 3), mid
    await asyncio.sleep(2.0)  # the new pod starts meanwhile, told nothing
    operator.restart()
    await wait_healthy(kube, nodes, NAME, 3, limit=120.0)
    await write_through_rw(kube, nodes, NAME, LEDGER.next_batch(10))
    await check_everywhere(kube, nodes)


@pytest.mark.parametrize(
    ("spec", "field_path"),
    [
        ({"instances": 0}, "spec.instances"),
        ({"instances": 40}, "spec.instances"),
        ({"instances": 2, "replication": {"mode": "quorum"}}, "spec.replication.mode"),
        ({"instances": 1, "config": {"rate_limit_rps": 1e-6}}, "spec.config.rate_limit_rps"),
    ],
)
async def test_invalid_resource_is_rejected_with_its_field_path(
    kubectl: Kubectl, module_namespace: str, vzc_crd: str, spec: JsonDict, field_path: str
) -> None:
    del vzc_crd
    obj = {**manifest("invalid", 1), "spec": spec}
    with pytest.raises(KubectlError) as rejected:
        apply(kubectl, module_namespace, obj, "--dry-run=server")
    assert field_path in rejected.value.stderr, rejected.value.stderr
    assert "invalid" in rejected.value.stderr.lower()


CHILDREN = [
    ("statefulsets", APPS, NAME),
    ("services", "", f"{NAME}-rw"),
    ("services", "", f"{NAME}-ro"),
    ("services", "", f"{NAME}-r"),
    ("services", "", f"{NAME}-headless"),
    ("configmaps", "", f"{NAME}-config"),
    ("poddisruptionbudgets", "policy", NAME),
    ("serviceaccounts", "", NAME),
]


async def test_deleting_the_resource_removes_its_children(
    kube: Kube, kubectl: Kubectl, nodes: Nodes
) -> None:
    ns = nodes.namespace
    await wait_healthy(kube, nodes, NAME, 3)
    for resource, group, child in CHILDREN:
        assert await kube.get_or_none(path(resource, ns, child, group=group)), child
    kubectl.run("delete", "vzc", NAME, "-n", ns, "--wait=true", "--timeout=30s")

    async def gone() -> bool:
        for resource, group, child in CHILDREN:
            if await kube.get_or_none(path(resource, ns, child, group=group)):
                return False
        return not await live_pods(kube, ns, NAME)

    await eventually(gone, "children of the deleted cluster removed", limit=90.0, interval=0.5)
    # whenDeleted: Retain (the default) keeps the data.
    claims = (await kube.get(path("persistentvolumeclaims", ns)))["items"]
    assert {c["metadata"]["name"] for c in claims} >= {f"data-{NAME}-{i}" for i in range(3)}

    # whenDeleted: Delete removes the claims with the cluster.
    scratch = "scratch"
    retention = {"pvcRetentionPolicy": {"whenDeleted": "Delete", "whenScaled": "Delete"}}
    apply(kubectl, ns, manifest(scratch, 1, storage=retention))
    await wait_healthy(kube, nodes, scratch, 1, limit=90.0)

    async def claimed() -> bool:
        """The StatefulSet controller makes the claim its own (what lets the garbage
        collector delete it with the set) in a later pass than the pod's: deleted before
        that, the claim would stay, whatever the policy."""
        claim = await kube.get_or_none(path("persistentvolumeclaims", ns, f"data-{scratch}-0"))
        owners = (claim or {}).get("metadata", {}).get("ownerReferences") or []
        return any(o.get("kind") == "StatefulSet" for o in owners)

    await eventually(claimed, f"claim data-{scratch}-0 owned by its StatefulSet", limit=60.0)
    kubectl.run("delete", "vzc", scratch, "-n", ns, "--wait=true", "--timeout=30s")

    async def claim_gone() -> bool:
        return (
            await kube.get_or_none(path("persistentvolumeclaims", ns, f"data-{scratch}-0")) is None
        )

    await eventually(claim_gone, f"claim data-{scratch}-0 deleted", limit=90.0, interval=0.5)


async def test_recreated_from_kept_claims_without_the_first_it_keeps_every_write(
    kube: Kube, kubectl: Kubectl, nodes: Nodes
) -> None:
    """The cluster deleted above kept its claims. The first one is lost (a node with
    local storage gone), and the cluster is applied again: its first instance starts
    empty, on a new claim, and answers long before the others have recovered their data.
    It was promoted then, and the others full-synced from it: every acknowledged write
    lost (86,800 of 86,800 points in the hunt that found it). The operator waits for
    every node on a bound claim, and promotes the most advanced."""
    ns = nodes.namespace
    first = f"data-{NAME}-0"
    kubectl.run("delete", "pvc", first, "-n", ns, "--wait=true", "--timeout=60s")
    apply(kubectl, ns, manifest(NAME, 3))
    await wait_healthy(kube, nodes, NAME, 3, limit=180.0)
    primary = (await get_vzc(kube, ns, NAME))["status"]["currentPrimary"]
    assert primary != f"{NAME}-0", primary
    await check_everywhere(kube, nodes)
    await write_through_rw(kube, nodes, NAME, LEDGER.next_batch(10))
    await check_everywhere(kube, nodes)
