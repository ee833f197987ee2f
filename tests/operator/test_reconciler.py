"""The reconcile pass end to end against the in-memory API server and nodes (fakes.Sim)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.operator.conftest import make_cluster
from tests.operator.fakes import NS, FakeKube, Sim, cluster_body, controller_reference
from vectorizer_operator import naming
from vectorizer_operator.dataplane_client import DataPlaneError
from vectorizer_operator.reconcile.cluster import ours
from vectorizer_operator.reconcile.ports import KubeApiError

CHILDREN = [
    ("v1", "ServiceAccount", "vz"),
    ("v1", "ConfigMap", "vz-config"),
    ("v1", "Service", "vz-headless"),
    ("v1", "Service", "vz-rw"),
    ("v1", "Service", "vz-ro"),
    ("v1", "Service", "vz-r"),
    ("apps/v1", "StatefulSet", "vz"),
    ("policy/v1", "PodDisruptionBudget", "vz"),
]


async def test_bootstrap_promotes_the_first_instance_and_the_others_follow() -> None:
    sim = Sim(instances=3)
    status = await sim.settle()
    assert status["phase"] == "Healthy"
    assert (status["currentPrimary"], status["targetPrimary"], status["epoch"]) == (
        "vz-0",
        "vz-0",
        1,
    )
    assert (status["instances"], status["readyInstances"]) == (3, 3)
    assert status["observedGeneration"] == 1
    assert status["writeService"] == "vz-rw" and status["readService"] == "vz-ro"
    assert sim.dp.of("promote") == [("vz-0", 1)]
    assert sorted(sim.dp.of("follow")) == [("vz-1", sim.url(0)), ("vz-2", sim.url(0))]
    assert sim.role_labels() == {"vz-0": "primary", "vz-1": "replica", "vz-2": "replica"}
    assert {p["metadata"]["labels"][naming.LABEL_POD_INSTANCE] for p in sim.pods()} == {
        "vz-0",
        "vz-1",
        "vz-2",
    }
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions == {
        "Ready": "True",
        "Progressing": "False",
        "Degraded": "False",
        "WritesRefused": "False",
        "MonitoringReady": "True",
    }
    assert ("Normal", "Promoted", "vz-0 is primary at epoch 1") in sim.kube.events


async def test_every_child_exists_and_is_owned() -> None:
    sim = Sim(instances=3)
    await sim.settle()
    for api, kind, name in CHILDREN:
        obj = sim.kube.find(api, kind, name)
        assert obj is not None, (kind, name)
        assert obj["metadata"]["ownerReferences"][0]["uid"] == "uid-vz"


async def test_a_healthy_cluster_is_left_alone() -> None:
    sim = Sim(instances=3)
    await sim.settle()
    versions = {k: o["metadata"]["resourceVersion"] for k, o in sim.kube.objects.items()}
    calls = len(sim.dp.calls)
    result = await sim.step()
    assert result.phase == "Healthy" and result.requeue_after == sim.settings.resync_s
    assert {k: o["metadata"]["resourceVersion"] for k, o in sim.kube.objects.items()} == versions
    assert len(sim.dp.calls) == calls


@pytest.mark.parametrize(("api", "kind", "name"), CHILDREN)
async def test_a_deleted_child_is_restored(api: str, kind: str, name: str) -> None:
    sim = Sim(instances=3)
    await sim.settle()
    before = sim.kube.find(api, kind, name)
    del sim.kube.objects[(api, kind, NS, name)]
    await sim.step()
    restored = sim.kube.find(api, kind, name)
    assert restored is not None
    assert restored.get("spec") == (before or {}).get("spec")


async def test_an_edited_child_is_restored() -> None:
    sim = Sim(instances=3)
    await sim.settle()
    svc = sim.kube.find("v1", "Service", "vz-rw")
    assert svc is not None
    svc["spec"]["selector"] = {"app": "something-else"}
    cm = sim.kube.find("v1", "ConfigMap", "vz-config")
    assert cm is not None
    cm["data"] = {"VECTORIZER_HNSW_M": "2"}
    await sim.step()
    assert sim.kube.find("v1", "Service", "vz-rw")["spec"]["selector"] == naming.role_selector(
        "vz", "primary"
    )  # type: ignore[index]
    assert sim.kube.find("v1", "ConfigMap", "vz-config")["data"] == {}  # type: ignore[index]


async def test_a_wrong_role_label_is_corrected() -> None:
    sim = Sim(instances=3)
    await sim.settle()
    pod = sim.pod(2)
    assert pod is not None
    pod["metadata"]["labels"][naming.LABEL_ROLE] = "primary"
    del sim.pod(1)["metadata"]["labels"][naming.LABEL_ROLE]  # type: ignore[index]
    await sim.step()
    assert sim.role_labels() == {"vz-0": "primary", "vz-1": "replica", "vz-2": "replica"}


async def test_resumes_after_an_operator_restart() -> None:
    sim = Sim(instances=3)
    await sim.settle()
    sim.reconciler = sim.new_reconciler()
    status = await sim.settle()
    assert status["currentPrimary"] == "vz-0" and sim.dp.of("promote") == [("vz-0", 1)]


async def test_a_restart_between_recording_and_promoting_keeps_the_decision() -> None:
    sim = Sim(instances=2)
    await sim.step()  # creates the children; the pods appear
    original = sim.dp.promote

    async def crash(url: str, epoch: int, access: object = None) -> None:
        raise DataPlaneError("operator died here")

    sim.dp.promote = crash  # type: ignore[method-assign]
    await sim.step()
    assert sim.status["targetPrimary"] == "vz-0" and "currentPrimary" not in sim.status
    sim.dp.promote = original  # type: ignore[method-assign]
    sim.reconciler = sim.new_reconciler()
    status = await sim.settle()
    assert status["currentPrimary"] == "vz-0" and sim.dp.of("promote") == [("vz-0", 1)]


async def test_a_lost_status_is_rebuilt_from_what_the_nodes_report() -> None:
    sim = Sim(instances=3)
    await sim.settle()
    sim.body["status"] = {}
    status = await sim.settle()
    assert (status["currentPrimary"], status["epoch"]) == ("vz-0", 1)
    assert sim.dp.of("promote") == [("vz-0", 1)]


async def test_scale_up_new_replicas_join_and_become_ready() -> None:
    sim = Sim(instances=3)
    await sim.settle()
    sim.write(100)
    sim.edit_spec(instances=5)
    result = await sim.step()
    assert result.phase == "Scaling"
    assert sim.kube.find("apps/v1", "StatefulSet", "vz")["spec"]["replicas"] == 5  # type: ignore[index]
    status = await sim.settle()
    assert status["readyInstances"] == 5
    assert sim.node(4).role == "replica" and sim.node(4).sequence == sim.node(0).sequence == 100
    assert sim.role_labels()["vz-4"] == "replica"


async def test_scale_down_removes_the_highest_replicas() -> None:
    sim = Sim(instances=4)
    await sim.settle()
    sim.edit_spec(instances=2)
    await sim.step()
    assert sim.kube.find("apps/v1", "StatefulSet", "vz")["spec"]["replicas"] == 2  # type: ignore[index]
    status = await sim.settle()
    assert sorted(sim.role_labels()) == ["vz-0", "vz-1"]
    assert status["currentPrimary"] == "vz-0" and status["instances"] == 2
    assert sim.claims_deleted == ["data-vz-2", "data-vz-3"]


async def test_scale_down_moves_the_primary_before_removing_it() -> None:
    sim = Sim(instances=3)
    # The primary is the highest ordinal (as after a failover).
    sim.body["status"] = {"targetPrimary": "vz-2"}
    await sim.settle()
    assert sim.status["currentPrimary"] == "vz-2"
    sim.write(40)
    sim.edit_spec(instances=2)
    phases = []
    for _ in range(20):
        result = await sim.step()
        phases.append(result.phase)
        replicas = sim.kube.find("apps/v1", "StatefulSet", "vz")["spec"]["replicas"]  # type: ignore[index]
        primary = sim.status.get("currentPrimary")
        assert naming.ordinal("vz", primary) < replicas  # type: ignore[arg-type, operator]
        if result.phase == "Healthy" and replicas == 2:
            break
    status = sim.status
    assert status["currentPrimary"] in ("vz-0", "vz-1") and status["epoch"] == 2
    assert "Switchover" in phases
    new = sim.node(naming.ordinal("vz", status["currentPrimary"]) or 0)
    assert new.role == "primary" and new.sequence == 40  # nothing lost
    assert ("vz-2", 1) in sim.dp.of("fence")


async def test_rolling_update_replicas_first_one_at_a_time_primary_last() -> None:
    sim = Sim(instances=3)
    await sim.settle()
    sim.edit_spec(image="vectorizer:v2")
    deleted: list[str] = []
    for _ in range(30):
        before = {p["metadata"]["name"] for p in sim.pods()}
        result = await sim.step()
        deleted += [
            c[2]
            for c in sim.kube.calls
            if c[0] == "delete" and c[1] == "Pod" and c[2] not in deleted
        ]
        sim.kube.calls.clear()
        assert len(before) >= 2, "never more than one instance down"
        if result.phase == "Healthy":
            break
    assert deleted == ["vz-2", "vz-1", "vz-0"]
    images = {p["spec"]["containers"][0]["image"] for p in sim.pods()}
    assert images == {"vectorizer:v2"}
    assert sim.status["currentPrimary"] == "vz-0"  # restarted in place, still primary
    assert sim.dp.of("promote") == [("vz-0", 1)]


async def test_rolling_update_waits_for_the_restarted_replica_to_catch_up() -> None:
    sim = Sim(instances=3)
    await sim.settle()
    sim.edit_spec(config={"hnsw_m": 32})
    await sim.step()  # the new template
    await sim.step()  # vz-2 deleted and recreated
    sim.node(2).streams = False  # it does not catch up
    sim.write(10)
    for _ in range(5):
        await sim.step()
    deletions = [c for c in sim.kube.calls if c[0] == "delete" and c[1] == "Pod"]
    assert deletions == [("delete", "Pod", "vz-2")]
    assert sim.status["phase"] == "Upgrading"
    sim.node(2).streams = True
    await sim.settle()
    cm = sim.kube.find("v1", "ConfigMap", "vz-config")
    assert cm is not None and cm["data"] == {"VECTORIZER_HNSW_M": "32"}


async def test_rolling_update_with_switchover_moves_the_primary_first() -> None:
    sim = Sim(instances=3, primaryUpdateMethod="switchover")
    await sim.settle()
    sim.edit_spec(image="vectorizer:v2")
    await sim.settle(60)
    status = sim.status
    assert status["currentPrimary"] != "vz-0" and status["epoch"] == 2
    assert {p["spec"]["containers"][0]["image"] for p in sim.pods()} == {"vectorizer:v2"}
    assert sim.node(0).role == "replica"


async def test_a_fix_reaches_pods_that_never_got_ready() -> None:
    """A bad revision crash-loops every pod; the corrected spec still rolls out."""
    sim = Sim(instances=3)
    sim.controllers()
    await sim.step()
    for ordinal, n in enumerate(sim.dp.nodes.values()):
        n.up = False  # the data plane crashes at start: never Ready
        sim.set_pod_ready(ordinal, False)
    for _ in range(3):
        await sim.step()
    assert sim.status["phase"] == "Setting up"
    sim.edit_spec(image="vectorizer:fixed")  # pods created from now on start fine
    status = await sim.settle(40)
    assert status["currentPrimary"] == "vz-0"
    assert {p["spec"]["containers"][0]["image"] for p in sim.pods()} == {"vectorizer:fixed"}


async def test_an_invalid_spec_is_reported_and_nothing_changes() -> None:
    sim = Sim(instances=3)
    await sim.settle()
    sim.edit_spec(config={"port": 1})
    applies = len([c for c in sim.kube.calls if c[0] == "apply"])
    await sim.step()
    await sim.step()
    assert len([c for c in sim.kube.calls if c[0] == "apply"]) == applies
    status = sim.status
    assert status["phase"] == "Failed"
    assert status["phaseReason"].startswith("spec.config.port:")
    assert status["currentPrimary"] == "vz-0"
    warnings = [e for e in sim.kube.events if e[1] == "InvalidSpec"]
    assert len(warnings) == 1  # not repeated every pass


async def test_a_deleted_or_deleting_cluster_is_left_to_the_garbage_collector() -> None:
    sim = Sim(instances=1)
    await sim.settle()
    sim.body["metadata"]["deletionTimestamp"] = "2030-01-01T00:00:00Z"
    sim.kube.calls.clear()
    result = await sim.step()
    assert result.requeue_after is None
    assert [c for c in sim.kube.calls if c[0] != "get"] == []
    del sim.kube.objects[(naming.API_VERSION, naming.KIND, NS, "vz")]
    assert (await sim.reconciler.reconcile(NS, "vz")).requeue_after is None


async def test_turning_the_pdb_off_deletes_it() -> None:
    sim = Sim(instances=3)
    await sim.settle()
    sim.edit_spec(podDisruptionBudget={"enabled": False})
    await sim.step()
    assert sim.kube.find("policy/v1", "PodDisruptionBudget", "vz") is None


async def test_growing_storage_resizes_the_claims_not_the_template() -> None:
    sim = Sim(instances=2)
    await sim.settle()
    sim.edit_spec(storage={"size": "5Gi"})
    await sim.step()
    claims = {
        c["metadata"]["name"]: c["spec"]["resources"]["requests"]["storage"]
        for c in sim.kube.of_kind("PersistentVolumeClaim")
    }
    assert claims == {"data-vz-0": "5Gi", "data-vz-1": "5Gi"}
    template = sim.kube.find("apps/v1", "StatefulSet", "vz")["spec"]["volumeClaimTemplates"][0]  # type: ignore[index]
    assert template["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert sim.status["phase"] == "Healthy"


async def test_a_refused_resize_is_a_warning_not_an_outage() -> None:
    sim = Sim(instances=2)
    await sim.settle()
    sim.kube.fail[("patch", "PersistentVolumeClaim")] = KubeApiError(
        403, "class does not allow expansion"
    )
    sim.edit_spec(storage={"size": "5Gi"})
    for _ in range(3):
        result = await sim.step()
    assert result.phase == "Healthy"
    warnings = [e for e in sim.kube.events if e[1] == "ResizeFailed"]
    assert len(warnings) == 2  # one per claim, not one per pass
    assert "does not allow expansion" in warnings[0][2]


async def test_an_api_failure_is_reported_and_retried() -> None:
    sim = Sim(instances=1)
    await sim.settle()
    sim.kube.fail[("apply", "Service")] = KubeApiError(500, "etcd is sad")
    sim.edit_spec(services={"type": "NodePort"})
    result = await sim.step()
    assert result.phase == "Degraded" and result.requeue_after == sim.settings.busy_resync_s
    assert "etcd is sad" in sim.status["phaseReason"]
    assert sim.status["observedGeneration"] == 1  # generation 2 not yet in effect
    del sim.kube.fail[("apply", "Service")]
    status = await sim.settle()
    assert status["observedGeneration"] == 2
    assert sim.kube.find("v1", "Service", "vz-rw")["spec"]["type"] == "NodePort"  # type: ignore[index]


async def test_a_silent_primary_is_degraded_and_recovers() -> None:
    sim = Sim(instances=3)
    await sim.settle()
    sim.node(0).up = False
    result = await sim.step()
    assert result.phase == "Degraded" and "vz-0" in sim.status["phaseReason"]
    assert sim.role_labels()["vz-0"] == "primary"  # Readiness, not us, takes it out
    sim.node(0).up = True
    status = await sim.settle()
    assert status["currentPrimary"] == "vz-0" and sim.dp.of("promote") == [("vz-0", 1)]


@pytest.mark.parametrize("ordinal", [0, 2])
async def test_a_pod_whose_cluster_label_was_removed_is_found_and_relabelled(
    ordinal: int,
) -> None:
    sim = Sim(instances=3)
    await sim.settle()
    pod = sim.pod(ordinal)
    assert pod is not None
    uid = pod["metadata"]["uid"]
    del pod["metadata"]["labels"][naming.LABEL_CLUSTER]  # released by the StatefulSet
    await sim.step()
    pod = sim.pod(ordinal)
    assert pod is not None and pod["metadata"]["uid"] == uid  # the same pod, not replaced
    assert pod["metadata"]["labels"][naming.LABEL_CLUSTER] == "vz"
    await sim.settle()
    name = naming.pod("vz", ordinal)
    entry = next(i for i in sim.status["instancesStatus"] if i["name"] == name)
    assert entry["phase"] == "Running" and entry["ready"]
    assert sim.role_labels()[name] == ("primary" if ordinal == 0 else "replica")


async def test_a_cluster_deleted_during_a_pass_is_not_an_error() -> None:
    sim = Sim(instances=1)
    await sim.settle()
    # The status write finds the resource gone (deleted after the pass read it).
    sim.kube.fail[("patch_status", naming.KIND)] = KubeApiError(404, "not found", "NotFound")
    assert (await sim.step()).requeue_after is None
    sim.edit_spec(config={"port": 1})  # an invalid spec takes the other path
    assert (await sim.step()).requeue_after is None


async def test_an_invalid_annotation_key_fails_the_spec_before_anything_changes() -> None:
    sim = Sim(instances=3)
    await sim.settle()
    sts = sim.kube.find("apps/v1", "StatefulSet", "vz")
    assert sts is not None
    template = sts["spec"]["template"]
    sim.edit_spec(config={"hnsw_m": 32}, services={"annotations": {"bad key!": "x"}})
    sim.kube.calls.clear()
    await sim.step()
    await sim.step()
    assert [c for c in sim.kube.calls if c[0] in ("apply", "delete")] == []
    sts = sim.kube.find("apps/v1", "StatefulSet", "vz")
    assert sts is not None and sts["spec"]["template"] == template  # nothing rolled out
    status = sim.status
    assert status["phase"] == "Failed"
    assert status["phaseReason"].startswith("spec.services.annotations['bad key!']:")
    assert {c["observedGeneration"] for c in status["conditions"]} == {status["observedGeneration"]}


async def test_conditions_observe_the_generation_the_status_observed() -> None:
    sim = Sim(instances=1)
    await sim.settle()
    sim.kube.fail[("apply", "Service")] = KubeApiError(422, "invalid")
    sim.edit_spec(config={"hnsw_m": 32})
    await sim.step()
    status = sim.status
    assert status["observedGeneration"] == 1  # the Services were not applied
    assert {c["observedGeneration"] for c in status["conditions"]} == {1}
    del sim.kube.fail[("apply", "Service")]
    status = await sim.settle()
    assert {c["observedGeneration"] for c in status["conditions"]} == {2}
    assert status["observedGeneration"] == 2


async def test_keys_added_to_the_configmap_are_removed() -> None:
    """spec.config is the one source of truth: a key added by hand never reaches a pod."""
    sim = Sim(instances=1, config={"hnsw_m": 32})
    await sim.settle()
    await sim.kube.patch(
        "v1", "ConfigMap", NS, "vz-config", {"data": {"VECTORIZER_SNAPSHOTS_RETAINED": "7"}}
    )
    await sim.step()
    cm = sim.kube.find("v1", "ConfigMap", "vz-config")
    assert cm is not None and cm["data"] == {"VECTORIZER_HNSW_M": "32"}
    sim.kube.calls.clear()
    await sim.step()
    assert not [c for c in sim.kube.calls if c[:2] == ("patch", "ConfigMap")]  # no churn


# ---- a spec the API server refuses ----------------------------------------------------------

REFUSED_MEMORY = (
    'the API server refuses StatefulSet vz: StatefulSet.apps "vz" is invalid: '
    'spec.template.spec.containers[0].resources.requests: Invalid value: "1Gi": '
    "must be less than or equal to memory limit of 100Mi"
)


def writes(sim: Sim) -> list[tuple[str, str, str]]:
    return [c for c in sim.kube.calls if c[0] in ("apply", "patch", "delete")]


async def test_a_statefulset_the_api_server_refuses_changes_nothing_until_fixed() -> None:
    """Never half a change: the ConfigMap is not updated ahead of a refused StatefulSet."""
    sim = Sim(instances=3)
    await sim.settle()
    config = sim.kube.find("v1", "ConfigMap", "vz-config")
    sts = sim.kube.find("apps/v1", "StatefulSet", "vz")
    assert config is not None and sts is not None
    data, template = dict(config["data"]), sts["spec"]["template"]
    sim.edit_spec(
        config={"hnsw_ef_search": 77},
        resources={"requests": {"memory": "1Gi"}, "limits": {"memory": "100Mi"}},
    )
    sim.kube.calls.clear()
    for _ in range(3):
        result = await sim.step()
    assert result.phase == "Failed"
    assert writes(sim) == []
    assert sim.kube.find("v1", "ConfigMap", "vz-config")["data"] == data  # type: ignore[index]
    sts = sim.kube.find("apps/v1", "StatefulSet", "vz")
    assert sts is not None and sts["spec"]["template"] == template
    status = sim.status
    assert status["phaseReason"] == REFUSED_MEMORY
    assert (status["observedGeneration"], status["currentPrimary"]) == (1, "vz-0")
    assert [e for e in sim.kube.events if e[1] == "InvalidSpec"] == [
        ("Warning", "InvalidSpec", REFUSED_MEMORY)  # once, not every pass
    ]
    sim.edit_spec(resources={"limits": {"memory": "2Gi"}})
    status = await sim.settle(40)
    assert status["observedGeneration"] == 3
    config = sim.kube.find("v1", "ConfigMap", "vz-config")
    assert config is not None and config["data"]["VECTORIZER_HNSW_EF_SEARCH"] == "77"
    resources = {"requests": {"memory": "1Gi"}, "limits": {"memory": "2Gi"}}
    assert [p["spec"]["containers"][0]["resources"] for p in sim.pods()] == [resources] * 3


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        (
            {"affinity": {"topologyKey": "bad key!"}},
            "spec.template.spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnored"
            'DuringExecution[0].podAffinityTerm.topologyKey: Invalid value: "bad key!": '
            "name part must consist of alphanumeric characters",
        ),
        (
            {"affinity": {"tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]}},
            'spec.template.spec.tolerations[0].operator: Invalid value: "v": '
            "value must be empty when `operator` is 'Exists'",
        ),
        (
            {"resources": {"limits": {"foo": "1"}}},
            'spec.template.spec.containers[0].resources.limits[foo]: Invalid value: "foo": '
            "must be a standard resource type or fully qualified",
        ),
        (
            {"resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}},
            'spec.template.spec.containers[0].resources.requests: Invalid value: "2": '
            "must be less than or equal to cpu limit of 1",
        ),
    ],
)
async def test_what_the_api_server_refuses_fails_the_spec(
    spec: dict[str, Any], reason: str
) -> None:
    sim = Sim(instances=1)
    await sim.settle()
    config = sim.kube.find("v1", "ConfigMap", "vz-config")
    assert config is not None
    sim.edit_spec(config={"hnsw_m": 32}, **spec)
    sim.kube.calls.clear()
    assert (await sim.step()).phase == "Failed"
    assert writes(sim) == []
    assert sim.kube.find("v1", "ConfigMap", "vz-config") == config
    assert reason in sim.status["phaseReason"]
    assert sim.status["phaseReason"].startswith("the API server refuses StatefulSet vz: ")


async def test_a_new_cluster_the_api_server_refuses_creates_nothing() -> None:
    sim = Sim(instances=1, affinity={"topologyKey": "bad key!"})
    assert (await sim.step()).phase == "Failed"
    created = {k[1] for k in sim.kube.objects} - {naming.KIND, "Secret"}
    assert created == set()  # but the Secrets, issued before the children are checked


async def test_dry_runs_only_for_children_that_changed() -> None:
    sim = Sim(instances=1)
    await sim.settle()
    sim.kube.calls.clear()
    await sim.step()
    assert [c for c in sim.kube.calls if c[0] == "dry-run"] == []  # the steady state
    sim.edit_spec(config={"hnsw_m": 32})
    await sim.step()
    assert [c for c in sim.kube.calls if c[0] == "dry-run"] == [
        ("dry-run", "ConfigMap", "vz-config"),
        ("dry-run", "StatefulSet", "vz"),
    ]
    sim.kube.calls.clear()
    sim.reconciler = sim.new_reconciler()  # an operator restart forgets what was accepted
    await sim.step()
    await sim.step()
    dry_runs = [c[1] for c in sim.kube.calls if c[0] == "dry-run"]
    assert sorted(dry_runs) == sorted(kind for _, kind, _ in CHILDREN)  # once each


async def test_a_dry_run_that_fails_applies_nothing_and_is_retried() -> None:
    sim = Sim(instances=1)
    await sim.settle()
    sim.kube.fail[("dry-run", "StatefulSet")] = KubeApiError(500, "etcd is sad")
    sim.edit_spec(config={"hnsw_m": 32})
    sim.kube.calls.clear()
    result = await sim.step()
    assert result.phase == "Degraded" and result.requeue_after == sim.settings.busy_resync_s
    assert "etcd is sad" in sim.status["phaseReason"]
    kinds = {kind for _, kind, _ in CHILDREN}
    assert [c for c in writes(sim) if c[1] in kinds] == []
    assert sim.status["observedGeneration"] == 1
    del sim.kube.fail[("dry-run", "StatefulSet")]
    status = await sim.settle()
    assert status["observedGeneration"] == 2
    config = sim.kube.find("v1", "ConfigMap", "vz-config")
    assert config is not None and config["data"] == {"VECTORIZER_HNSW_M": "32"}


# ---- a cluster created again under the same name ---------------------------------------------


async def test_a_recreated_cluster_does_not_count_the_old_clusters_pods() -> None:
    """``kubectl delete vzc vz --wait=false``, then the same name applied again."""
    sim = Sim(instances=3)
    await sim.settle()
    for key in [k for k in sim.kube.objects if k[1] not in ("Pod", "PersistentVolumeClaim")]:
        del sim.kube.objects[key]  # the garbage collector took the StatefulSet and the rest
    for pod in sim.pods():  # ... and deletes the pods, which take their time to stop
        pod["metadata"]["deletionTimestamp"] = "2030-01-01T00:00:00Z"
    again = cluster_body("vz", instances=3)
    again["metadata"]["uid"] = "uid-vz-again"
    sim.kube.put(again)
    calls, asked = len(sim.dp.calls), len(sim.dp.accesses)
    await sim.reconciler.reconcile(NS, "vz")
    status = sim.status
    assert (status["instances"], status["readyInstances"]) == (0, 0)
    assert {i["phase"] for i in status["instancesStatus"]} == {"Missing"}
    assert sim.dp.calls[calls:] == [] and sim.dp.accesses[asked:] == []  # old nodes left alone
    for pod in sim.pods():
        del sim.kube.objects[FakeKube.key_of(pod)]  # gone at last
    status = await sim.settle()
    assert (status["instances"], status["readyInstances"]) == (3, 3)
    assert status["currentPrimary"] == "vz-0"  # the claims were kept: its data is back


def test_ours_means_controlled_by_the_statefulset_that_exists_now() -> None:
    cluster = make_cluster()
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "vz", "uid": "s1"}}
    old = {**sts, "metadata": {"name": "vz", "uid": "s0"}}

    def pod(*owners: dict[str, Any], **labels: str) -> dict[str, Any]:
        refs = [controller_reference(o) for o in owners]
        return {"metadata": {"name": "vz-0", "labels": labels, "ownerReferences": refs}}

    assert ours(cluster, pod(sts), "s1")
    assert not ours(cluster, pod(old), "s1")  # a deleted cluster's, still terminating
    assert not ours(cluster, pod(sts), None)  # no StatefulSet now: whose ever it was, not ours
    other = {**sts, "kind": "ReplicaSet"}
    assert not ours(cluster, pod(other), "s1")
    # Released by the StatefulSet (no controller): ours by its labels.
    assert ours(cluster, pod(**{naming.LABEL_POD_INSTANCE: "vz-0"}), "s1")
    assert not ours(cluster, pod(), "s1")
